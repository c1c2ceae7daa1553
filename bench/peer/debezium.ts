/**
 * Peer mode of the end-to-end benchmark: the workload of bench/e2e-bench.ts run through
 * Debezium instead of cityshare, on the same Kafka broker, MariaDB and PostgreSQL.
 *
 *   MariaDB `<run>_civil.citizens` -> Debezium MariaDB source connector -> Kafka topic
 *   `<run>.<run>_civil.citizens` (JSON, schemas enabled) -> Debezium JDBC sink -> PostgreSQL
 *   `"<run>_dept_health".citizens` (upsert by record key, table created by schema evolution)
 *
 * Both connectors run in one Kafka Connect standalone worker (a JVM child process started
 * like bin/connect-standalone.sh would: -Xms256M -Xmx2G, G1). The JVM jars come from Maven
 * Central through bench/peer/debezium/pom.xml (fetched here once; versions are read from
 * that file). What a run measures, after one warm-up row proved the whole path live:
 * 1. burst: `rows` rows in INSERTs of 5,000 (same rows as e2e-bench.ts); time from the first
 *    INSERT until all are in PostgreSQL -> e2e_rows_per_s; until all are on Debezium's topic
 *    (sum of the partitions' high watermarks) -> reader_rows_per_s.
 * 2. steady: `rate` rows/s for `seconds` s, one INSERT per 100 ms; per-row latency from
 *    commit to PostgreSQL with bench/peer/latency-probe.ts -> p50/p95/p99 and a per-second
 *    series (mean latency of the rows committed in that second, t_s from the first commit).
 * Peak RSS is the JVM's VmHWM. Everything the run created (databases, PG schema, topics,
 * the sink's consumer group, temp files) is removed at the end, also after a failure.
 *
 * Overrides (optional, JSON objects merged into the generated configs):
 * DEBEZIUM_PEER_WORKER_CONFIG, DEBEZIUM_PEER_SOURCE_CONFIG, DEBEZIUM_PEER_SINK_CONFIG;
 * DEBEZIUM_PEER_HEAP_OPTS (default "-Xms256M -Xmx2G"); JAVA_HOME selects the JVM.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { PipelineRun } from '../../test/support/pipeline-run.js';
import { stack } from '../../test/support/stack.js';
import { peakRssMiB } from '../support.js';
import { LatencyProbe, waitForRowCount } from './latency-probe.js';

export interface PeerFigures { e2e_rows_per_s: number; e2e_latency_ms: { p50: number; p95: number; p99: number }; reader_rows_per_s?: number; snapshot_rows_per_s?: number; rss_mib: Record<string, number>; latency_series: Array<{ t_s: number; latency_ms: number }>; versions: Record<string, string> }

const POM = join(stack.root, 'bench', 'peer', 'debezium', 'pom.xml');
const CACHE = join(stack.root, 'deploy', 'local', '.cache', 'debezium');
const TOPIC_PARTITIONS = 3; // as deploy/local/pipeline.yaml gives cityshare's topics
const BATCH = 5000;
const TICK_MS = 100;

/** Same row as bench/e2e-bench.ts. */
const row = (id: number) => `(${id}, '市民${id}', '110101199001010000', '13800000000', '1990-01-01', '${id % 4 === 0 ? '海淀' : '东城'}', '北京市东城区王府井大街${id}号', NOW(6))`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => console.error(`[debezium-peer] ${msg}`);

interface Versions { debezium: string; sourceArtifact: string; sourceVersion: string; jdbcVersion: string; connect: string }

/** The versions pom.xml fetches (its <properties>), so they are written down once. */
function pomVersions(): Versions {
  const pom = readFileSync(POM, 'utf8');
  const prop = (name: string) => {
    const m = new RegExp(`<${name.replaceAll('.', '\\.')}>([^<]+)</`).exec(pom);
    if (!m) throw new Error(`${POM} has no <${name}>`);
    return m[1]!.trim();
  };
  return { debezium: prop('debezium.version'), sourceArtifact: prop('debezium.source.artifact'), sourceVersion: prop('debezium.source.version'), jdbcVersion: prop('debezium.jdbc.version'), connect: prop('kafka.connect.version') };
}

interface Layout { connectLibs: string; sourcePlugin: string; jdbcPlugin: string }

function layout(v: Versions): Layout {
  return {
    connectLibs: join(CACHE, `connect-${v.connect}`, 'libs'),
    sourcePlugin: join(CACHE, 'plugins', `${v.sourceArtifact}-${v.sourceVersion}`),
    jdbcPlugin: join(CACHE, 'plugins', `debezium-connector-jdbc-${v.jdbcVersion}`),
  };
}

/** Runs the pom once when a jar the run needs is missing. */
function ensureJars(v: Versions, l: Layout): void {
  const needed = [
    join(l.connectLibs, `connect-runtime-${v.connect}.jar`),
    join(l.connectLibs, `connect-json-${v.connect}.jar`),
    join(l.sourcePlugin, v.sourceArtifact, `${v.sourceArtifact}-${v.sourceVersion}.jar`),
    join(l.jdbcPlugin, 'debezium-connector-jdbc', `debezium-connector-jdbc-${v.jdbcVersion}.jar`),
  ];
  if (needed.every((f) => existsSync(f))) return;
  log(`fetching Kafka Connect ${v.connect}, ${v.sourceArtifact} ${v.sourceVersion}, debezium-connector-jdbc ${v.jdbcVersion} from Maven Central`);
  // Maven's output goes to stderr: stdout carries the CLI's JSON.
  execFileSync('mvn', ['-q', '-B', '-Dstyle.color=never', '-f', POM, 'initialize'], { cwd: stack.root, stdio: ['ignore', 2, 2] });
  const missing = needed.filter((f) => !existsSync(f));
  if (missing.length) throw new Error(`still missing after mvn: ${missing.join(', ')}`);
}

const javaBin = () => (process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java');

function javaVersion(): string {
  const out = spawnSync(javaBin(), ['-version'], { encoding: 'utf8' });
  return /version "([^"]+)"/.exec(`${out.stderr}${out.stdout}`)?.[1] ?? 'unknown';
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
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

/** Messages on a topic: the sum of its partitions' high watermarks (Debezium does not write transactionally here). */
async function topicMessages(admin: Admin, topic: string): Promise<number> {
  return (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
}

/** Polls the topic every 50 ms until it holds `target` messages; returns the wall time of that poll. */
async function waitForTopic(admin: Admin, topic: string, target: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const issuedAt = Date.now();
    if ((await topicMessages(admin, topic)) >= target) return issuedAt;
    if (issuedAt > deadline) throw new Error(`topic ${topic} did not reach ${target} messages`);
    await sleep(Math.max(0, issuedAt + 50 - Date.now()));
  }
}

/** Connector class and the value that turns TLS off, by source artifact (MariaDB's connector is the one used). */
const SOURCE_CONNECTORS: Record<string, { connectorClass: string; sslOff: string }> = {
  'debezium-connector-mariadb': { connectorClass: 'io.debezium.connector.mariadb.MariaDbConnector', sslOff: 'disable' },
  'debezium-connector-mysql': { connectorClass: 'io.debezium.connector.mysql.MySqlConnector', sslOff: 'disabled' },
};

export async function runDebeziumPeer(o: { rows: number; rate: number; seconds: number }): Promise<PeerFigures> {
  const v = pomVersions();
  const l = layout(v);
  ensureJars(v, l);
  const source = SOURCE_CONNECTORS[v.sourceArtifact];
  if (!source) throw new Error(`no connector class known for ${v.sourceArtifact}`);

  const run = new PipelineRun({ id: `dbz${randomBytes(4).toString('hex')}` });
  const tmp = mkdtempSync(join(tmpdir(), `${run.id}-connect-`));
  const topic = `${run.prefix}.${run.civilDb}.citizens`;
  const historyTopic = `${run.prefix}.schema-history`;
  const sourceName = `${run.id}-source`;
  const sinkName = `${run.id}-sink`;
  const table = `"${run.pgSchema}".citizens`;
  const connect = new ConnectWorker(l.connectLibs, tmp, join(stack.root, '.stack', 'logs', 'bench', `${run.id}-debezium-connect.log`));
  const kafka = new Kafka({ clientId: `${run.id}-peer`, brokers: stack.kafkaBrokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  let probe: LatencyProbe | undefined;

  // Ctrl-C or SIGTERM: stop the JVM at once and let the run fail into its clean-up.
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    connect.killNow();
  };
  const onExit = () => connect.killNow();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', onExit);
  const check = async () => {
    if (interrupted) throw new Error('interrupted');
    await connect.assertHealthy();
  };

  try {
    await run.setUp();
    await run.pg.query(`CREATE SCHEMA "${run.pgSchema}"`);
    await admin.connect();
    // Created up front (the broker does not auto-create), so the sink subscribes to it from the start.
    await admin.createTopics({ topics: [{ topic, numPartitions: TOPIC_PARTITIONS, replicationFactor: 1 }], waitForLeaders: true });

    const pgUrl = new URL(stack.postgresUrl);
    const worker = {
      'bootstrap.servers': stack.kafkaBrokers.join(','),
      'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'key.converter.schemas.enable': true,
      'value.converter.schemas.enable': true,
      'offset.storage.file.filename': join(tmp, 'connect.offsets'),
      'offset.flush.interval.ms': 10_000,
      'plugin.path': [l.sourcePlugin, l.jdbcPlugin].join(','),
      'plugin.discovery': 'service_load',
      ...envJson('DEBEZIUM_PEER_WORKER_CONFIG'),
    };
    const sourceConfig = {
      name: sourceName,
      'connector.class': source.connectorClass,
      'tasks.max': 1,
      'database.hostname': stack.source.host,
      'database.port': stack.source.port,
      'database.user': stack.source.user,
      'database.password': stack.source.password,
      'database.server.id': randomInt(100_000, 2 ** 31),
      'database.ssl.mode': source.sslOff,
      'topic.prefix': run.prefix,
      'database.include.list': run.civilDb,
      'table.include.list': `${run.civilDb}.citizens`,
      // The table is empty: capture its schema, stream from now. No global read lock on the shared server.
      'snapshot.mode': 'no_data',
      'snapshot.locking.mode': 'none',
      'include.schema.changes': false,
      'schema.history.internal.kafka.bootstrap.servers': stack.kafkaBrokers.join(','),
      'schema.history.internal.kafka.topic': historyTopic,
      'topic.creation.default.replication.factor': 1,
      'topic.creation.default.partitions': TOPIC_PARTITIONS,
      ...envJson('DEBEZIUM_PEER_SOURCE_CONFIG'),
    };
    const sinkConfig = {
      name: sinkName,
      'connector.class': 'io.debezium.connector.jdbc.JdbcSinkConnector',
      'tasks.max': 1,
      topics: topic,
      'connection.url': `jdbc:postgresql://${pgUrl.hostname}:${pgUrl.port || 5432}${pgUrl.pathname || '/postgres'}`,
      'connection.username': decodeURIComponent(pgUrl.username || 'postgres'),
      'connection.password': decodeURIComponent(pgUrl.password),
      'insert.mode': 'upsert',
      'delete.enabled': true,
      'primary.key.mode': 'record_key',
      'schema.evolution': 'basic',
      'collection.name.format': `${run.pgSchema}.\${source.table}`,
      ...envJson('DEBEZIUM_PEER_SINK_CONFIG'),
    };

    const startedAt = Date.now();
    await connect.start(worker, [sourceConfig, sinkConfig]);
    const status = await connect.waitRunning([sourceName, sinkName], 180_000);
    log(`Kafka Connect up in ${((Date.now() - startedAt) / 1000).toFixed(1)} s (pid ${connect.pid}, log ${connect.logFile})`);

    // Warm-up: one row (id 0) through the whole path, so the binlog reader is streaming and the
    // sink has created its table before anything is timed (cityshare's bench waits for /readyz).
    await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens VALUES ${row(0)}`);
    await waitForRowCount(run.pg, { table, fromId: 0, toId: 0, timeoutMs: 120_000, check });

    log(`burst: ${o.rows} rows in transactions of ${BATCH.toLocaleString('en')}`);
    const before = await topicMessages(admin, topic);
    const burstStart = Date.now();
    const onTopic = waitForTopic(admin, topic, before + o.rows, 1_800_000);
    onTopic.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
    for (let id = 1; id <= o.rows; id += BATCH) {
      if (interrupted) throw new Error('interrupted');
      await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens VALUES ${Array.from({ length: Math.min(BATCH, o.rows - id + 1) }, (_, i) => row(id + i)).join(', ')}`);
    }
    const inPg = await waitForRowCount(run.pg, { table, fromId: 1, toId: o.rows, timeoutMs: 1_800_000, check });
    const readerAt = await onTopic;
    const burstSeconds = (inPg - burstStart) / 1000;
    const readerSeconds = (readerAt - burstStart) / 1000;
    log(`burst: ${o.rows} rows on the topic in ${readerSeconds.toFixed(2)} s, in PostgreSQL in ${burstSeconds.toFixed(2)} s = ${Math.round(o.rows / burstSeconds)} rows/s`);

    log(`steady: ${o.rate} rows/s for ${o.seconds} s`);
    probe = new LatencyProbe({ connectionString: stack.postgresUrl, table });
    await probe.start();
    const perTick = Math.max(1, Math.round((o.rate * TICK_MS) / 1000));
    let next = o.rows + 1;
    const steadyStart = Date.now();
    for (let t = 0; t < (o.seconds * 1000) / TICK_MS; t++) {
      if (interrupted) throw new Error('interrupted');
      const due = steadyStart + t * TICK_MS;
      if (Date.now() < due) await sleep(due - Date.now());
      await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens VALUES ${Array.from({ length: perTick }, (_, i) => row(next + i)).join(', ')}`);
      probe.expect(next, next + perTick - 1, Date.now());
      next += perTick;
    }
    const offered = Math.round((next - o.rows - 1) / ((Date.now() - steadyStart) / 1000));
    await probe.waitForAll(600_000, check);
    const report = await probe.stop();
    probe = undefined;
    log(`steady: ${offered} rows/s offered; commit -> PostgreSQL p50 ${report.p50_ms} ms, p95 ${report.p95_ms} ms, p99 ${report.p99_ms} ms, max ${report.max_ms} ms (${report.count} rows, ${report.polls} polls of ${report.mean_poll_ms} ms)`);

    const rss = peakRssMiB(connect.pid);
    const root = await connect.rest<{ version: string }>('/');
    const pgDriver = readdirSync(join(l.jdbcPlugin, 'debezium-connector-jdbc')).find((f) => /^postgresql-.*\.jar$/.test(f))?.replace(/^postgresql-|\.jar$/g, '') ?? 'unknown';
    const mariadbVersion = (await run.source.query('SELECT VERSION() AS v'))[0] as Array<{ v: string }>;
    const pgVersion = (await run.pg.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
    return {
      e2e_rows_per_s: Math.round(o.rows / burstSeconds),
      e2e_latency_ms: { p50: report.p50_ms, p95: report.p95_ms, p99: report.p99_ms },
      reader_rows_per_s: Math.round(o.rows / readerSeconds),
      rss_mib: { kafka_connect: rss },
      latency_series: report.series.map((s) => ({ t_s: s.t_s, latency_ms: s.mean_ms })),
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
    await probe?.stop().catch(() => undefined);
    await connect.stop().catch(() => undefined);
    const created = await admin.listTopics().then((all) => all.filter((t) => t === topic || t === historyTopic), () => []);
    if (created.length) await admin.deleteTopics({ topics: created }).catch((err: Error) => log(`could not delete topics ${created.join(', ')}: ${err.message}`));
    await admin.deleteGroups([`connect-${sinkName}`]).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    await run.tearDown().catch((err: Error) => log(`clean-up of databases failed: ${err.message}`));
    rmSync(tmp, { recursive: true, force: true });
    rmSync(dirname(run.keyringFile), { recursive: true, force: true }); // PipelineRun made a keyring the peer never uses
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }
}
