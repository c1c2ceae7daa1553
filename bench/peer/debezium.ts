/**
 * Peer mode of the end-to-end benchmark: the workload and the measurements of
 * bench/e2e-bench.ts and bench/reader-bench.ts run through Debezium instead of cityshare,
 * on the same Kafka broker, MariaDB and PostgreSQL.
 *
 *   MariaDB `<run>_civil.citizens`, `<run>_transport.bus_card_taps` -> Debezium MariaDB source
 *   connector -> Kafka topics `<run>.<db>.<table>` -> Debezium JDBC sink
 *   -> PostgreSQL `"<run>_dept_health".citizens`, `.bus_card_taps` (upsert and delete by record
 *   key, tables created by schema evolution)
 *
 * Profiles (bench/peer/debezium-profiles.ts): `defaults` (JSON with schemas, one sink task,
 * stock batch and poll sizes), `tuned` (still JSON with schemas; one sink task per partition,
 * large sink batches and polls, a larger source queue, no tombstones, producer batching and
 * lz4 on the source) and `tuned-avro` (tuned, with Avro through the stack's registry).
 *
 * Both connectors run in one Kafka Connect standalone worker (a JVM child process started
 * like bin/connect-standalone.sh would: -Xms256M -Xmx2G, G1), its REST API on a free local
 * port. The JVM jars come from Maven Central through bench/peer/debezium/pom.xml (fetched here
 * once; versions are read from that file). What a run does, on the smart-city mix of
 * bench/workload.ts (same Workload, LoadDriver, preload as ours):
 * 0. preload as e2e-bench.ts; the preloaded rows go through Debezium (snapshot.mode=initial)
 *    until PostgreSQL holds what MariaDB holds (the warm-up; not timed).
 * 1. saturation: a burst of `rows` row changes (LoadDriver.burst); time from the start until
 *    PostgreSQL's content equals MariaDB's (polled every 500 ms, as e2e-bench.ts polls its
 *    sink) -> e2e_rows_per_s; latency of the inserted rows by measureLatency (500 ms polls).
 * 2. fixed rate: `rate` row changes/s for `seconds` s (LoadDriver.steady); per-row latency
 *    of every inserted row, both tables, by bench/latency.ts measureLatency -> p50/p95/p99,
 *    latency_series (per second of commit time: mean, max, rows; as ours).
 * 3. reader alone, as reader-bench.ts: sink paused, source connector stopped through the
 *    Connect REST API (paused if stopping fails), a backlog of `readerRows` row changes
 *    committed, source resumed; rate from the first 100 ms sample in which Debezium's topics
 *    grew until they hold the whole backlog -> reader_rows_per_s.
 * Peak RSS is the JVM's VmHWM. Everything the run created (databases, PG schema, topics,
 * the sink's consumer group, temp files) is removed at the end, also after a failure or Ctrl-C.
 *
 * Overrides (optional, JSON objects merged into the generated configs, after the profile's):
 * DEBEZIUM_PEER_WORKER_CONFIG, DEBEZIUM_PEER_SOURCE_CONFIG, DEBEZIUM_PEER_SINK_CONFIG;
 * DEBEZIUM_PEER_HEAP_OPTS (default "-Xms256M -Xmx2G"); JAVA_HOME selects the JVM.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Admin } from 'kafkajs';
import type pg from 'pg';
import { PipelineRun } from '../../scripts/support/pipeline-run.js';
import { freePort } from '../../scripts/support/service-process.js';
import { adminKafka, kafkaPasswordFile } from '../../scripts/support/kafka-security.js';
import { stack } from '../../scripts/support/stack.js';
import { profileSettings, type PeerProfile } from './debezium-profiles.js';
import { burstSummary, measureE2ePhases, steadySummary, windowed, type BurstSummary, type CpuPerRow, type SteadySummary } from '../latency.js';
import { peakRssMiB, sleep, sustainedRate, waitFor } from '../support.js';
import { LoadDriver, Workload, loadTables, preload, preloadFor } from '../workload.js';

export interface PeerFigures {
  /** The configuration profile of this run (bench/peer/debezium-profiles.ts). */
  profile: PeerProfile;
  /** The connector and worker settings the profile set (connection and security settings left out). */
  settings: { worker: Record<string, string | number | boolean>; source: Record<string, string | number | boolean>; sink: Record<string, string | number | boolean> };
  /**
   * Checked once after the fixed-rate phase: every column of every row of both department
   * tables equals MariaDB's (`content_equal`), and the column types the sink created.
   */
  target_check?: { content_equal: boolean; columns: Record<string, string[]> };
  /** Saturation: burst row changes / (start of the burst to PostgreSQL holding all of them). */
  e2e_rows_per_s: number;
  /** At the fixed rate, per inserted row of both tables. */
  e2e_latency_ms: { p50: number; p95: number; p99: number };
  /** Binlog to Debezium's topics, the source connector alone on a backlog. */
  reader_rows_per_s?: number;
  snapshot_rows_per_s?: number;
  rss_mib: Record<string, number>;
  /** CPU microseconds per row change of each process taking part, at saturation and at the fixed rate (bench/cpu.ts). */
  cpu_us_per_row?: CpuPerRow;
  /** Per second of commit time in the fixed-rate phase: mean latency, max and rows (the same series as e2e-bench.ts's). */
  latency_series: Array<{ t_s: number; latency_ms: number; max_ms?: number; rows?: number }>;
  versions: Record<string, string>;
  /** Latency of the inserted rows during the burst (as e2e-bench.ts's burst.latency_ms). */
  e2e_saturation_latency_ms?: { p50: number; p95: number; p99: number };
  burst?: BurstSummary;
  steady?: SteadySummary;
  latency_windows?: Array<{ t_s: number; latency_ms: number; p99_ms: number; rows: number }>;
  reader?: { rows: number; deletes: number; transactions: number; generate_seconds: number; seconds: number; rows_per_s: number; source_connector: 'stopped' | 'paused' };
  /** Peak RSS at the end of the fixed-rate phase (before the reader backlog). */
  e2e_rss_mib?: Record<string, number>;
  preloaded?: { citizens: number; taps: number };
}

const POM = join(stack.root, 'bench', 'peer', 'debezium', 'pom.xml');
const CONVERTER_POM = join(stack.root, 'bench', 'peer', 'debezium', 'avro-converter', 'pom.xml');
const CACHE = join(stack.root, 'deploy', 'local', '.cache', 'debezium');
const TOPIC_PARTITIONS = 3; // as deploy/local/pipeline.yaml gives cityshare's topics
const log = (msg: string) => console.error(`[debezium-peer] ${msg}`);

interface Versions { debezium: string; sourceArtifact: string; sourceVersion: string; jdbcVersion: string; connect: string }

/** A <property> of a pom, so each version is written down once (in the pom that fetches it). */
function pomProperty(pomFile: string, name: string): string {
  const m = new RegExp(`<${name.replaceAll('.', '\\.')}>([^<]+)</`).exec(readFileSync(pomFile, 'utf8'));
  if (!m) throw new Error(`${pomFile} has no <${name}>`);
  return m[1]!.trim();
}

/** The versions pom.xml fetches (its <properties>). */
function pomVersions(): Versions {
  const prop = (name: string) => pomProperty(POM, name);
  return { debezium: prop('debezium.version'), sourceArtifact: prop('debezium.source.artifact'), sourceVersion: prop('debezium.source.version'), jdbcVersion: prop('debezium.jdbc.version'), connect: prop('kafka.connect.version') };
}

interface Layout { connectLibs: string; sourcePlugin: string; jdbcPlugin: string; converterVersion: string; converterPlugin: string }

function layout(v: Versions): Layout {
  const converterVersion = pomProperty(CONVERTER_POM, 'apicurio.converter.version');
  return {
    connectLibs: join(CACHE, `connect-${v.connect}`, 'libs'),
    sourcePlugin: join(CACHE, 'plugins', `${v.sourceArtifact}-${v.sourceVersion}`),
    jdbcPlugin: join(CACHE, 'plugins', `debezium-connector-jdbc-${v.jdbcVersion}`),
    converterVersion,
    converterPlugin: join(CACHE, 'plugins', `apicurio-converter-${converterVersion}`),
  };
}

/** Runs a pom once when a jar it fetches is missing. */
function fetchOnce(pomFile: string, needed: string[], what: string): void {
  if (needed.every((f) => existsSync(f))) return;
  log(`fetching ${what} from Maven Central`);
  // Maven's output goes to stderr: stdout carries the CLI's JSON.
  execFileSync('mvn', ['-q', '-B', '-Dstyle.color=never', '-f', pomFile, 'initialize'], { cwd: stack.root, stdio: ['ignore', 2, 2] });
  const missing = needed.filter((f) => !existsSync(f));
  if (missing.length) throw new Error(`still missing after mvn -f ${pomFile}: ${missing.join(', ')}`);
}

/** The worker, both connectors and, when the profile uses Avro, the Apicurio converter plugin. */
function ensureJars(v: Versions, l: Layout, avro: boolean): void {
  fetchOnce(POM, [
    join(l.connectLibs, `connect-runtime-${v.connect}.jar`),
    join(l.connectLibs, `connect-json-${v.connect}.jar`),
    join(l.sourcePlugin, v.sourceArtifact, `${v.sourceArtifact}-${v.sourceVersion}.jar`),
    join(l.jdbcPlugin, 'debezium-connector-jdbc', `debezium-connector-jdbc-${v.jdbcVersion}.jar`),
  ], `Kafka Connect ${v.connect}, ${v.sourceArtifact} ${v.sourceVersion}, debezium-connector-jdbc ${v.jdbcVersion}`);
  if (avro) fetchOnce(CONVERTER_POM, [join(l.converterPlugin, 'apicurio-converter', `apicurio-registry-utils-converter-${l.converterVersion}.jar`)], `the Apicurio Avro converter ${l.converterVersion}`);
}

const javaBin = () => (process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java');

function javaVersion(): string {
  const out = spawnSync(javaBin(), ['-version'], { encoding: 'utf8' });
  return /version "([^"]+)"/.exec(`${out.stderr}${out.stdout}`)?.[1] ?? 'unknown';
}

/** A .properties file as java.util.Properties reads it (ISO-8859-1, so non-ASCII as \uXXXX). */
function writeProperties(file: string, props: Record<string, string | number | boolean>): void {
  const esc = (s: string, key: boolean) =>
    s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(key ? /[=:\s]/g : /^\s/, (c) => `\\${c}`).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  writeFileSync(file, Object.entries(props).map(([k, val]) => `${esc(k, true)}=${esc(String(val), false)}`).join('\n') + '\n');
}

function envJson(name: string): Record<string, string> {
  const raw = process.env[name];
  return raw ? (JSON.parse(raw) as Record<string, string>) : {};
}

/** A profile's settings with the environment's overrides on top, as the run applied them. */
const effective = (fromProfile: Record<string, string | number | boolean>, env: string) => ({ ...fromProfile, ...envJson(env) });

interface ConnectorStatus { name: string; connector: { state: string; trace?: string; version?: string }; tasks: Array<{ id: number; state: string; trace?: string; version?: string }> }

/** Kafka Connect standalone as a child JVM, with its REST API on a free port. */
class ConnectWorker {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private port = 0;

  constructor(
    private readonly libs: string,
    private readonly dir: string,
    readonly logFile: string,
  ) {}

  get pid(): number {
    return this.child!.pid!;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(worker: Record<string, string | number | boolean>, connectors: Array<Record<string, string | number | boolean>>): Promise<void> {
    this.port = await freePort();
    const workerFile = join(this.dir, 'connect-standalone.properties');
    writeProperties(workerFile, { ...worker, listeners: `http://127.0.0.1:${this.port}` });
    const files = connectors.map((c) => {
      const f = join(this.dir, `${c.name}.properties`);
      writeProperties(f, c);
      return f;
    });
    const heap = (process.env.DEBEZIUM_PEER_HEAP_OPTS ?? '-Xms256M -Xmx2G').split(/\s+/).filter(Boolean);
    const jvm = ['-server', '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-XX:InitiatingHeapOccupancyPercent=35', '-XX:+ExplicitGCInvokesConcurrent', '-Djava.awt.headless=true'];
    const logging = ['-Dorg.slf4j.simpleLogger.showDateTime=true', '-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS'];
    mkdirSync(dirname(this.logFile), { recursive: true });
    const out = createWriteStream(this.logFile, { flags: 'a' });
    const child = spawn(javaBin(), [...heap, ...jvm, ...logging, '-cp', join(this.libs, '*'), 'org.apache.kafka.connect.cli.ConnectStandalone', workerFile, ...files], {
      cwd: this.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  async rest<T>(path: string): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${this.port}${path}`);
    if (!res.ok) throw new Error(`Connect REST ${path}: ${res.status} ${(await res.text()).slice(0, 500)}`);
    return (await res.json()) as T;
  }

  /** PUT without a body (pause, resume, stop); Connect answers 202 Accepted. */
  async put(path: string): Promise<void> {
    const res = await fetch(`http://127.0.0.1:${this.port}${path}`, { method: 'PUT' });
    if (!res.ok) throw new Error(`Connect REST PUT ${path}: ${res.status} ${(await res.text()).slice(0, 500)}`);
  }

  /** Waits until the named connector is in `state` (RUNNING, PAUSED, STOPPED). */
  async waitState(name: string, state: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = (await this.assertHealthy())[name];
      const tasksOk = state === 'STOPPED' ? true : (status?.tasks.length ?? 0) > 0 && status!.tasks.every((t) => t.state === state);
      if (status?.connector.state === state && tasksOk) return;
      if (Date.now() > deadline) throw new Error(`connector ${name} not ${state} after ${timeoutMs} ms: ${JSON.stringify(status)}`);
      await sleep(100);
    }
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Throws when the worker died or a connector or task failed. */
  async assertHealthy(): Promise<Record<string, ConnectorStatus>> {
    if (!this.running) throw new Error(`Kafka Connect exited (${this.child?.exitCode ?? this.child?.signalCode}); see ${this.logFile}:\n${this.logTail()}`);
    const all = await this.rest<Record<string, { status: ConnectorStatus }>>('/connectors?expand=status');
    const out: Record<string, ConnectorStatus> = {};
    for (const [name, { status }] of Object.entries(all)) {
      out[name] = status;
      const failed = [status.connector, ...status.tasks].find((s) => s.state === 'FAILED');
      if (failed) throw new Error(`connector ${name} FAILED: ${(failed.trace ?? '').slice(0, 2000)}`);
    }
    return out;
  }

  /** Waits until every named connector and its tasks are RUNNING. */
  async waitRunning(names: string[], timeoutMs: number): Promise<Record<string, ConnectorStatus>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) await this.assertHealthy();
      const status = await this.assertHealthy().catch((err: Error) => {
        // REST not listening yet, or Jetty up before Connect registered its resources (404/503).
        if (/fetch failed|ECONNREFUSED|: (404|503) /.test(`${err.message} ${String(err.cause)}`)) return undefined;
        throw err;
      });
      if (status && names.every((n) => status[n]?.connector.state === 'RUNNING' && status[n]!.tasks.length > 0 && status[n]!.tasks.every((t) => t.state === 'RUNNING'))) return status;
      if (Date.now() > deadline) throw new Error(`connectors not RUNNING after ${timeoutMs} ms; see ${this.logFile}`);
      await sleep(250);
    }
  }

  /** SIGTERM (Connect stops its connectors), SIGKILL after 20 s. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGTERM');
    const killed = await Promise.race([this.exited.then(() => false), sleep(20_000).then(() => true)]);
    if (killed) {
      this.child!.kill('SIGKILL');
      await this.exited;
    }
  }

  killNow(): void {
    if (this.running) this.child!.kill('SIGKILL');
  }
}

/** Messages on the topics: the sum of their partitions' high watermarks (Debezium does not write transactionally here). */
async function topicMessages(admin: Admin, topics: string[]): Promise<number> {
  let n = 0;
  for (const topic of topics) n += (await admin.fetchTopicOffsets(topic)).reduce((a, p) => a + Number(p.high), 0);
  return n;
}

/**
 * Content of the two bench tables, computed the same way in MariaDB and in PostgreSQL: rows,
 * sum of ids, and (citizens, the only table the mix updates) the sum of a 32-bit slice of the
 * MD5 of the columns its UPDATEs change. PostgreSQL equals MariaDB once every change of the
 * load (inserts, updates, deletes) has been applied by the sink, whatever the order of the
 * topics and partitions the sink read them in.
 */
interface Fingerprint { citizens: [number, number, number]; taps: [number, number] }

const UPDATED = 'address, phone, district';

async function sourceFingerprint(run: PipelineRun): Promise<Fingerprint> {
  const t = loadTables(run);
  const [c] = (await run.source.query(`SELECT COUNT(*) AS n, COALESCE(SUM(id), 0) AS s, COALESCE(SUM(CONV(LEFT(MD5(CONCAT_WS('|', ${UPDATED})), 8), 16, 10)), 0) AS h FROM ${t.citizens}`)) as unknown as [Array<{ n: unknown; s: unknown; h: unknown }>];
  const [b] = (await run.source.query(`SELECT COUNT(*) AS n, COALESCE(SUM(id), 0) AS s FROM ${t.taps}`)) as unknown as [Array<{ n: unknown; s: unknown }>];
  return { citizens: [Number(c[0]!.n), Number(c[0]!.s), Number(c[0]!.h)], taps: [Number(b[0]!.n), Number(b[0]!.s)] };
}

/** The same fingerprint of the department tables; undefined while the sink has not created them. */
async function targetFingerprint(client: pg.Client, schema: string): Promise<Fingerprint | undefined> {
  try {
    const c = await client.query<{ n: string; s: string; h: string }>(`SELECT count(*) AS n, coalesce(sum(id), 0) AS s, coalesce(sum(('x' || left(md5(concat_ws('|', ${UPDATED})), 8))::bit(32)::bigint), 0) AS h FROM "${schema}".citizens`);
    const b = await client.query<{ n: string; s: string }>(`SELECT count(*) AS n, coalesce(sum(id), 0) AS s FROM "${schema}".bus_card_taps`);
    return { citizens: [Number(c.rows[0]!.n), Number(c.rows[0]!.s), Number(c.rows[0]!.h)], taps: [Number(b.rows[0]!.n), Number(b.rows[0]!.s)] };
  } catch (err) {
    if ((err as { code?: string }).code === '42P01') return undefined; // not created yet
    throw err;
  }
}

const sameFingerprint = (a: Fingerprint | undefined, b: Fingerprint) => a !== undefined && JSON.stringify(a) === JSON.stringify(b);

/**
 * Every column of every row, the same text on both sides (NULL as '∅', dates and times in
 * ISO form with microseconds, decimals as stored), hashed per row and summed: equal only when
 * the department tables hold exactly MariaDB's rows, whatever the converter and the column
 * types the sink chose. Slower than the fingerprint, so checked once, not polled.
 */
const ROW_TEXT = {
  citizens: {
    mariadb: `CONCAT_WS('|', id, name, id_card, IFNULL(phone, '∅'), IFNULL(DATE_FORMAT(birth_date, '%Y-%m-%d'), '∅'), district, IFNULL(address, '∅'), DATE_FORMAT(registered_at, '%Y-%m-%d %H:%i:%s.%f'))`,
    pg: `concat_ws('|', id, name, id_card, coalesce(phone, '∅'), coalesce(to_char(birth_date, 'YYYY-MM-DD'), '∅'), district, coalesce(address, '∅'), to_char(registered_at, 'YYYY-MM-DD HH24:MI:SS.US'))`,
  },
  bus_card_taps: {
    mariadb: `CONCAT_WS('|', id, card_no, route, stop_name, DATE_FORMAT(tapped_at, '%Y-%m-%d %H:%i:%s.%f'), fare)`,
    pg: `concat_ws('|', id, card_no, route, stop_name, to_char(tapped_at, 'YYYY-MM-DD HH24:MI:SS.US'), fare)`,
  },
} as const;

async function checkTargetContent(run: PipelineRun): Promise<NonNullable<PeerFigures['target_check']>> {
  const t = loadTables(run);
  const source = { citizens: t.citizens, bus_card_taps: t.taps };
  let equal = true;
  for (const table of ['citizens', 'bus_card_taps'] as const) {
    const [m] = (await run.source.query(`SELECT COUNT(*) AS n, COALESCE(SUM(CONV(LEFT(MD5(${ROW_TEXT[table].mariadb}), 8), 16, 10)), 0) AS h FROM ${source[table]}`)) as unknown as [Array<{ n: unknown; h: unknown }>];
    const p = await run.pg.query<{ n: string; h: string }>(`SELECT count(*) AS n, coalesce(sum(('x' || left(md5(${ROW_TEXT[table].pg}), 8))::bit(32)::bigint), 0) AS h FROM "${run.pgSchema}".${table}`);
    const same = Number(m[0]!.n) === Number(p.rows[0]!.n) && String(m[0]!.h) === String(p.rows[0]!.h);
    if (!same) log(`target check: ${table} differs from MariaDB (rows ${m[0]!.n} / ${p.rows[0]!.n})`);
    equal &&= same;
  }
  const cols = await run.pg.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, ordinal_position`,
    [run.pgSchema],
  );
  const columns: Record<string, string[]> = {};
  for (const c of cols.rows) (columns[c.table_name] ??= []).push(`${c.column_name} ${c.data_type}`);
  return { content_equal: equal, columns };
}

/** Apicurio Registry's v2 API on the stack's registry (the stack gives its Confluent-compatible URL). */
function registryV2Url(): string {
  return `${new URL(stack.registryUrl).origin}/apis/registry/v2`;
}

/** Removes the Avro schemas the converter registered for the run's topics (best effort: the registry may refuse deletes). */
async function deleteRunSchemas(topics: string[]): Promise<void> {
  const refused: string[] = [];
  for (const artifact of topics.flatMap((t) => [`${t}-key`, `${t}-value`])) {
    const res = await fetch(`${registryV2Url()}/groups/default/artifacts/${encodeURIComponent(artifact)}`, { method: 'DELETE' }).catch(() => undefined);
    if (res && !res.ok && res.status !== 404) refused.push(`${artifact} (${res.status})`);
  }
  if (refused.length) log(`the registry kept the run's schemas: ${refused.join(', ')}`);
}

/** Connector class and the value that turns TLS off, by source artifact (MariaDB's connector is the one used). */
const SOURCE_CONNECTORS: Record<string, { connectorClass: string; sslOff: string }> = {
  'debezium-connector-mariadb': { connectorClass: 'io.debezium.connector.mariadb.MariaDbConnector', sslOff: 'disable' },
  'debezium-connector-mysql': { connectorClass: 'io.debezium.connector.mysql.MySqlConnector', sslOff: 'disabled' },
};

export interface PeerOptions {
  /** Row changes of the saturation burst (as e2e-bench.ts `rows`). */
  rows: number;
  /** Offered row changes per second of the fixed-rate phase, for `seconds` s (as e2e-bench.ts). */
  rate: number;
  seconds: number;
  /** Row changes of the backlog for reader_rows_per_s (as reader-bench.ts `burstRows`); `rows` unless given; 0 skips it. */
  readerRows?: number;
  /** Configuration profile (bench/peer/debezium-profiles.ts); `defaults` unless given. */
  profile?: PeerProfile;
}

/** Java client settings for the local stack's SASL_SSL listener, as its administrator. */
function javaClientSecurity(): Record<string, string> {
  const password = readFileSync(kafkaPasswordFile('admin'), 'utf8');
  return {
    'security.protocol': 'SASL_SSL',
    'sasl.mechanism': 'SCRAM-SHA-512',
    'sasl.jaas.config': `org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${password}";`,
    'ssl.truststore.type': 'PEM',
    'ssl.truststore.location': stack.caFile,
  };
}

export async function runDebeziumPeer(o: PeerOptions): Promise<PeerFigures> {
  const v = pomVersions();
  const l = layout(v);
  const profileName = o.profile ?? 'defaults';
  const profile = profileSettings(profileName, { partitions: TOPIC_PARTITIONS, registryV2Url: registryV2Url() });
  ensureJars(v, l, profile.avro);
  const source = SOURCE_CONNECTORS[v.sourceArtifact];
  if (!source) throw new Error(`no connector class known for ${v.sourceArtifact}`);
  const readerRows = o.readerRows ?? o.rows;
  log(`profile ${profileName}`);

  const run = new PipelineRun({ id: `dbz${randomBytes(4).toString('hex')}` });
  const tmp = mkdtempSync(join(tmpdir(), `${run.id}-connect-`));
  const topics = [`${run.prefix}.${run.civilDb}.citizens`, `${run.prefix}.${run.transportDb}.bus_card_taps`];
  const historyTopic = `${run.prefix}.schema-history`;
  const sourceName = `${run.id}-source`;
  const sinkName = `${run.id}-sink`;
  const connect = new ConnectWorker(l.connectLibs, tmp, join(stack.root, '.stack', 'logs', 'bench', `${run.id}-debezium-connect.log`));
  const kafka = adminKafka(`${run.id}-peer`);
  const admin = kafka.admin();
  const driver = LoadDriver.open();
  let driverClosed = false;
  const closeDriver = async () => {
    if (driverClosed) return;
    driverClosed = true;
    await driver.close();
  };

  // Ctrl-C or SIGTERM: stop the JVM and the load at once and let the run fail into its clean-up.
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    connect.killNow();
    closeDriver().catch(() => undefined);
  };
  const onExit = () => connect.killNow();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', onExit);
  const check = async () => {
    if (interrupted) throw new Error('interrupted');
    await connect.assertHealthy();
  };
  /** Waits (polls every 500 ms, as e2e-bench.ts waits for its sink) until PostgreSQL holds what MariaDB holds. */
  const waitForTarget = async (want: Fingerprint, timeoutMs: number) =>
    waitFor(async () => {
      await check();
      return sameFingerprint(await targetFingerprint(run.pg, run.pgSchema), want);
    }, timeoutMs).catch(async (err: Error) => {
      if (err.message === 'benchmark step timed out') throw new Error(`PostgreSQL did not reach the source's content: want ${JSON.stringify(want)}, have ${JSON.stringify(await targetFingerprint(run.pg, run.pgSchema))}`);
      throw err;
    });

  try {
    await run.setUp();
    await run.pg.query(`CREATE SCHEMA "${run.pgSchema}"`);
    // Preloaded as e2e-bench.ts does (plus the rows the reader backlog updates and deletes).
    const preloaded = preloadFor(o.rows + o.rate * o.seconds + readerRows);
    preloaded.citizens = Math.max(preloaded.citizens, 20_000);
    await preload(run, preloaded);
    await admin.connect();
    // Created up front (the broker does not auto-create), so the sink subscribes to them from the start.
    await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: TOPIC_PARTITIONS, replicationFactor: 1 })), waitForLeaders: true });

    const pgUrl = new URL(stack.postgresUrl);
    // The same secured transport as ours (SASL_SSL, SCRAM-SHA-512, the stack's CA) for every
    // Java client Connect and Debezium open, as the stack's administrator.
    const secured = javaClientSecurity();
    const prefixed = (prefix: string) => Object.fromEntries(Object.entries(secured).map(([k, v]) => [`${prefix}${k}`, v]));
    const worker = {
      'bootstrap.servers': stack.kafkaBrokers.join(','),
      ...secured,
      ...prefixed('producer.'),
      ...prefixed('consumer.'),
      ...prefixed('admin.'),
      'offset.storage.file.filename': join(tmp, 'connect.offsets'),
      'offset.flush.interval.ms': 10_000,
      'plugin.path': [l.sourcePlugin, l.jdbcPlugin, ...(profile.avro ? [l.converterPlugin] : [])].join(','),
      ...profile.worker,
      ...envJson('DEBEZIUM_PEER_WORKER_CONFIG'),
    };
    const sourceConfig = {
      name: sourceName,
      'connector.class': source.connectorClass,
      'database.hostname': stack.source.host,
      'database.port': stack.source.port,
      'database.user': stack.source.user,
      'database.password': stack.source.password,
      'database.server.id': randomInt(100_000, 2 ** 31),
      'database.ssl.mode': source.sslOff,
      'topic.prefix': run.prefix,
      'database.include.list': `${run.civilDb},${run.transportDb}`,
      'table.include.list': `${run.civilDb}.citizens,${run.transportDb}.bus_card_taps`,
      // The preloaded rows go through first (as cityshare's snapshot in e2e-bench.ts, also the
      // warm-up). No global read lock on the shared server: nothing writes these tables meanwhile.
      'snapshot.mode': 'initial',
      'snapshot.locking.mode': 'none',
      'include.schema.changes': false,
      'schema.history.internal.kafka.bootstrap.servers': stack.kafkaBrokers.join(','),
      ...prefixed('schema.history.internal.producer.'),
      ...prefixed('schema.history.internal.consumer.'),
      'schema.history.internal.kafka.topic': historyTopic,
      'topic.creation.default.replication.factor': 1,
      'topic.creation.default.partitions': TOPIC_PARTITIONS,
      ...profile.source,
      ...envJson('DEBEZIUM_PEER_SOURCE_CONFIG'),
    };
    const sinkConfig = {
      name: sinkName,
      'connector.class': 'io.debezium.connector.jdbc.JdbcSinkConnector',
      topics: topics.join(','),
      'connection.url': `jdbc:postgresql://${pgUrl.hostname}:${pgUrl.port || 5432}${pgUrl.pathname || '/postgres'}`,
      'connection.username': decodeURIComponent(pgUrl.username || 'postgres'),
      'connection.password': decodeURIComponent(pgUrl.password),
      'insert.mode': 'upsert',
      'delete.enabled': true,
      'primary.key.mode': 'record_key',
      'schema.evolution': 'basic',
      'collection.name.format': `${run.pgSchema}.\${source.table}`,
      ...profile.sink,
      ...envJson('DEBEZIUM_PEER_SINK_CONFIG'),
    };

    const startedAt = Date.now();
    await connect.start(worker, [sourceConfig, sinkConfig]);
    const status = await connect.waitRunning([sourceName, sinkName], 180_000);
    log(`Kafka Connect up in ${((Date.now() - startedAt) / 1000).toFixed(1)} s (pid ${connect.pid}, log ${connect.logFile})`);

    // Snapshot of the preloaded rows, end to end: the binlog reader is streaming and the sink
    // has created both tables before anything is timed (e2e-bench.ts waits for the same rows).
    log(`${(preloaded.citizens + preloaded.taps).toLocaleString('en')} preloaded rows through Debezium (snapshot, warm-up)`);
    await waitForTarget(await sourceFingerprint(run), 900_000);

    const workload = new Workload(loadTables(run), preloaded);

    // Saturation and fixed rate, as e2e-bench.ts: done when PostgreSQL's content equals MariaDB's.
    const { burstLoad, burstSeconds, e2eRate, burstLatency, steadyLoad, steady, cpuPerRow } = await measureE2ePhases({
      driver, workload, pgSchema: run.pgSchema, rows: o.rows, rate: o.rate, seconds: o.seconds, log,
      arrival: async () => async (_rows, timeoutMs) => waitForTarget(await sourceFingerprint(run), timeoutMs),
    });
    await check();
    const e2eRss = peakRssMiB(connect.pid);
    // Everything has arrived (measureE2ePhases waited for the fingerprint): compare every column once.
    const targetCheck = await checkTargetContent(run);
    log(`target check: PostgreSQL ${targetCheck.content_equal ? 'equals' : 'DIFFERS FROM'} MariaDB in every column; columns ${JSON.stringify(targetCheck.columns)}`);

    // Reader alone, as reader-bench.ts: the source connector stopped (paused if this Connect
    // cannot stop one), a backlog of the mix committed, then resumed; rate from the first
    // 100 ms sample in which Debezium's topics grew to the one that holds the whole backlog.
    // The sink is paused meanwhile, so the source has the machine as cityshare's reader has.
    let reader: PeerFigures['reader'];
    if (readerRows > 0) {
      await connect.put(`/connectors/${sinkName}/pause`);
      await connect.waitState(sinkName, 'PAUSED', 60_000);
      let how: 'stop' | 'pause' = 'stop';
      try {
        await connect.put(`/connectors/${sourceName}/stop`);
        await connect.waitState(sourceName, 'STOPPED', 60_000);
      } catch (err) {
        log(`could not stop the source connector (${(err as Error).message.slice(0, 200)}); pausing it instead`);
        how = 'pause';
        await connect.put(`/connectors/${sourceName}/pause`);
        await connect.waitState(sourceName, 'PAUSED', 60_000);
      }
      const rowsBefore = await sourceFingerprint(run);
      const load = await driver.burst(workload, readerRows);
      const rowsAfter = await sourceFingerprint(run);
      // Debezium writes a delete event per deleted row, and a tombstone after it unless the
      // profile turned them off: the topics' messages to wait for.
      const deleted = rowsBefore.citizens[0] + rowsBefore.taps[0] + load.inserted - rowsAfter.citizens[0] - rowsAfter.taps[0];
      log(`reader: ${load.rows.toLocaleString('en')} row changes (${deleted.toLocaleString('en')} deletes) in ${load.transactions.toLocaleString('en')} transactions committed in ${load.seconds.toFixed(1)} s with the source connector ${how === 'stop' ? 'stopped' : 'paused'}`);
      const before = await topicMessages(admin, topics);
      await connect.put(`/connectors/${sourceName}/resume`);
      const tombstones = String((sourceConfig as Record<string, unknown>)['tombstones.on.delete'] ?? true) !== 'false' ? deleted : 0;
      const target = before + load.rows + tombstones;
      const rate = await sustainedRate(
        async () => {
          await check();
          return topicMessages(admin, topics);
        },
        async (n) => n >= target,
        1_800_000,
        100,
      );
      // Messages/s to row changes/s (the tombstones are not row changes).
      const rowsPerS = Math.round((rate.rate * load.rows) / (load.rows + tombstones));
      reader = { rows: load.rows, deletes: deleted, transactions: load.transactions, generate_seconds: load.seconds, seconds: rate.seconds, rows_per_s: rowsPerS, source_connector: how === 'stop' ? 'stopped' : 'paused' };
      log(`reader: binlog -> Debezium's topics ${rowsPerS.toLocaleString('en')} rows/s (${(rate.last - rate.first).toLocaleString('en')} messages in ${rate.seconds.toFixed(2)} s)`);
    }

    const rss = peakRssMiB(connect.pid);
    const root = await connect.rest<{ version: string }>('/');
    const pgDriver = readdirSync(join(l.jdbcPlugin, 'debezium-connector-jdbc')).find((f) => /^postgresql-.*\.jar$/.test(f))?.replace(/^postgresql-|\.jar$/g, '') ?? 'unknown';
    const mariadbVersion = (await run.source.query('SELECT VERSION() AS v'))[0] as Array<{ v: string }>;
    const pgVersion = (await run.pg.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
    return {
      profile: profileName,
      settings: { worker: effective(profile.worker, 'DEBEZIUM_PEER_WORKER_CONFIG'), source: effective(profile.source, 'DEBEZIUM_PEER_SOURCE_CONFIG'), sink: effective(profile.sink, 'DEBEZIUM_PEER_SINK_CONFIG') },
      target_check: targetCheck,
      e2e_rows_per_s: e2eRate,
      e2e_latency_ms: { p50: steady.p50, p95: steady.p95, p99: steady.p99 },
      ...(reader ? { reader_rows_per_s: reader.rows_per_s } : {}),
      rss_mib: { kafka_connect: rss },
      cpu_us_per_row: cpuPerRow,
      latency_series: steady.per_second,
      e2e_saturation_latency_ms: { p50: burstLatency.p50, p95: burstLatency.p95, p99: burstLatency.p99 },
      burst: burstSummary(burstLoad, burstSeconds, burstLatency),
      steady: steadySummary(steadyLoad, steady),
      latency_windows: windowed(steady.series),
      ...(reader ? { reader } : {}),
      e2e_rss_mib: { kafka_connect: e2eRss },
      preloaded,
      versions: {
        debezium_requested: v.debezium,
        debezium_source: `${v.sourceArtifact} ${status[sourceName]!.connector.version ?? v.sourceVersion}`,
        debezium_sink: `debezium-connector-jdbc ${status[sinkName]!.connector.version ?? v.jdbcVersion}`,
        kafka_connect: root.version,
        java: javaVersion(),
        postgresql_jdbc: pgDriver,
        mariadb: mariadbVersion[0]!.v,
        postgresql: pgVersion,
      },
    };
  } catch (err) {
    if (existsSync(connect.logFile)) log(`failed; Kafka Connect log: ${connect.logFile}`);
    throw err;
  } finally {
    await closeDriver().catch(() => undefined);
    await connect.stop().catch(() => undefined);
    const created = await admin.listTopics().then((all) => all.filter((t) => t.startsWith(`${run.prefix}.`)), () => []);
    if (created.length) await admin.deleteTopics({ topics: created }).catch((err: Error) => log(`could not delete topics ${created.join(', ')}: ${err.message}`));
    await admin.deleteGroups([`connect-${sinkName}`]).catch(() => undefined);
    if (profile.avro) await deleteRunSchemas(topics);
    await admin.disconnect().catch(() => undefined);
    await run.tearDown().catch((err: Error) => log(`clean-up of databases failed: ${err.message}`));
    rmSync(tmp, { recursive: true, force: true });
    rmSync(dirname(run.keyringFile), { recursive: true, force: true }); // PipelineRun made a keyring the peer never uses
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }
}
