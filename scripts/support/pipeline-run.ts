import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { createConnection, type Connection } from 'mysql2/promise';
import pg from 'pg';
import { FileKeyring, aclPlan, applyAclDiff, currentAcls, diffAcls, kafkaPrincipals, keyListsOf, loadPipeline, type PipelineConfig } from '@cityshare/shared';
import { definitionOf, pipelineTargets } from '../../services/sink/src/targets/registry.js';
import { adminKafka, kafkaUserEnv } from './kafka-security.js';
import { ServiceProcess, type ServiceName } from './service-process.js';
import { stack } from './stack.js';

/**
 * One isolated run of the demo pipeline (deploy/local/pipeline.yaml) on the shared
 * stack: its own source databases, topic prefix, department schema and keyring, so
 * suites never see each other's data.
 */
export interface RunNames {
  id: string;
  civilDb: string;
  healthDb: string;
  transportDb: string;
  pgSchema: string;
  haidianPgSchema: string;
  keyringFile: string;
}

/** Column classes of the sample `citizens` table, as the demo pipeline registers them. */
export const CITIZEN_CLASSES = { id: 'public', name: 'personal', id_card: 'secret', phone: 'personal', birth_date: 'personal', district: 'public', address: 'personal', registered_at: 'internal' };

/** The sample tables (deploy/local/sample/schema.sql) in these source databases; every CREATE is IF NOT EXISTS. */
export function sampleSchemaSql(dbs: { civilDb: string; healthDb: string; transportDb: string }): string {
  return readFileSync(join(stack.root, 'deploy', 'local', 'sample', 'schema.sql'), 'utf8')
    .replaceAll('@CIVIL@', dbs.civilDb)
    .replaceAll('@HEALTH@', dbs.healthDb)
    .replaceAll('@TRANSPORT@', dbs.transportDb);
}

export class PipelineRun {
  readonly id: string;
  readonly prefix: string;
  readonly civilDb: string;
  readonly healthDb: string;
  readonly transportDb: string;
  readonly pgSchema: string;
  readonly haidianPgSchema: string;
  readonly keyringFile: string;
  readonly keys: FileKeyring;
  readonly services: ServiceProcess[] = [];
  /** Bootstrap brokers of this run's Kafka: the stack's, or a test cluster's. */
  readonly brokers: string[];
  /** Replication factor of the topics this run's services create. */
  readonly replicationFactor: number;
  source!: Connection;
  pg!: pg.Client;

  /** Defaults give every run unique names; the demo passes readable ones. */
  constructor(names: Partial<RunNames> = {}, kafka: { brokers?: string[]; replicationFactor?: number } = {}) {
    this.brokers = kafka.brokers ?? stack.kafkaBrokers;
    this.replicationFactor = kafka.replicationFactor ?? stack.kafkaReplicationFactor;
    this.id = names.id ?? `t${randomBytes(4).toString('hex')}`;
    this.prefix = this.id;
    this.civilDb = names.civilDb ?? `${this.id}_civil`;
    this.healthDb = names.healthDb ?? `${this.id}_health`;
    this.transportDb = names.transportDb ?? `${this.id}_transport`;
    this.pgSchema = names.pgSchema ?? `${this.id}_dept_health`;
    this.haidianPgSchema = names.haidianPgSchema ?? `${this.id}_dept_haidian`;
    this.keyringFile = names.keyringFile ?? join(stack.root, '.stack', 'test', this.id, 'keyring.json');
    this.keys = FileKeyring.ensure(this.keyringFile, ['pipeline', 'department:health', 'department:haidian', 'token:citizen', 'token:own:health', 'token:own:haidian', 'deliveries']);
  }

  get env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      CITYSHARE_PIPELINE: join(stack.root, 'deploy', 'local', 'pipeline.yaml'),
      TOPIC_PREFIX: this.prefix,
      CIVIL_DB: this.civilDb,
      HEALTH_DB: this.healthDb,
      HEALTH_PG_SCHEMA: this.pgSchema,
      HAIDIAN_PG_SCHEMA: this.haidianPgSchema,
      // The health department's sink unless a test says otherwise.
      SINK_DEPARTMENT: 'health',
      KEYRING_FILE: this.keyringFile,
      KAFKA_CA_FILE: stack.caFile,
      KAFKA_BROKERS: this.brokers.join(','),
      KAFKA_REPLICATION_FACTOR: String(this.replicationFactor),
    };
  }

  /** The environment of an operator's `cdc` on this run: it reaches Kafka as the control plane's principal. */
  get cliEnv(): NodeJS.ProcessEnv {
    return { ...this.env, ...kafkaUserEnv('control') };
  }

  async setUp(): Promise<void> {
    this.source = await createConnection({ ...stack.source, charset: 'utf8mb4', multipleStatements: true });
    for (const db of [this.civilDb, this.healthDb, this.transportDb]) {
      await this.source.query(`DROP DATABASE IF EXISTS \`${db}\``);
      await this.source.query(`CREATE DATABASE \`${db}\``);
    }
    await this.source.query(sampleSchemaSql(this));
    this.pg = new pg.Client({ connectionString: stack.postgresUrl });
    await this.pg.connect();
    for (const schema of [this.pgSchema, this.haidianPgSchema]) await this.pg.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }

  /**
   * Writes a pipeline file of this run (its topic prefix, keyring, the project's MariaDB
   * as source `cityhub` unless named) next to its keyring; returns the path.
   */
  writePipelineFile(file: string, spec: { serverId: number; tables: unknown[]; departments?: unknown[]; sourceName?: string; sourcePort?: number; registryUrl?: string }): string {
    const path = join(dirname(this.keyringFile), file);
    writeFileSync(`${path}.tmp`, stringify({
      kafka: {
        brokers: this.brokers,
        topicPrefix: this.prefix,
        replicationFactor: this.replicationFactor,
        ssl: { ca: stack.caFile },
        sasl: { mechanism: 'scram-sha-512', username: '${KAFKA_USERNAME}', passwordFile: '${KAFKA_PASSWORD_FILE}' },
      },
      schemaRegistry: { url: spec.registryUrl ?? stack.registryUrl },
      keyring: { file: this.keyringFile },
      sources: [{
        name: spec.sourceName ?? 'cityhub',
        connection: { host: stack.source.host, port: spec.sourcePort ?? stack.source.port, user: 'cdc_reader', password: 'cdc_reader', ssl: { ca: stack.sourceTlsCa } },
        serverId: spec.serverId,
        tables: spec.tables,
      }],
      departments: spec.departments ?? [],
    }));
    // Atomic, as an operator's tooling should write it: a watching service never reads half a file.
    renameSync(`${path}.tmp`, path);
    return path;
  }

  /**
   * A service of this run as its own Kafka principal (the one its role has in the pipeline
   * file: reader-<source>, transformer, sink-<department>, control), with the ACLs of the
   * pipeline file in force on the broker, as the control plane would keep them.
   */
  service(name: ServiceName, env: NodeJS.ProcessEnv = {}): ServiceProcess {
    const merged = { ...this.env, ...env };
    const department = name === 'sink' ? `-${merged.SINK_DEPARTMENT}` : '';
    const user = merged.KAFKA_USERNAME ?? this.principalOf(name, merged);
    // Readers and sinks get keyrings of their own, with only the lists they need (as `cdc keys split` writes them).
    const ownKeyring = (name === 'sink' || name === 'cdc-reader') && !merged.CITYSHARE_KEYRING ? join(dirname(this.keyringFile), `keyring.${name}${department}.json`) : undefined;
    const beforeStart = async () => {
      if (ownKeyring) {
        const { config, keyringPath } = loadPipeline(merged.CITYSHARE_PIPELINE!, { ...merged, KAFKA_USERNAME: 'nobody', KAFKA_PASSWORD_FILE: '/dev/null', CITYSHARE_POLICY_PUBLIC_KEYS: '' }, pipelineTargets);
        const full = FileKeyring.load(keyringPath);
        const target = config.departments.find((d) => d.name === merged.SINK_DEPARTMENT)?.target;
        const targetSigns = target ? definitionOf(target).capabilities.signs(target) : undefined;
        writeFileSync(ownKeyring, JSON.stringify(full.subset(keyListsOf(name === 'sink' ? 'sink' : 'cdc-reader', full.listNames(), merged.SINK_DEPARTMENT, { targetSigns }))), { mode: 0o600 });
      }
      await this.grantAcls(merged);
    };
    const svc = new ServiceProcess(name, { ...merged, ...kafkaUserEnv(user), ...(ownKeyring ? { CITYSHARE_KEYRING: ownKeyring } : {}) }, join(stack.root, '.stack', 'logs', 'test', `${this.id}-${name}${department}.log`), beforeStart);
    this.services.push(svc);
    return svc;
  }

  async start(name: ServiceName, env: NodeJS.ProcessEnv = {}): Promise<ServiceProcess> {
    const svc = this.service(name, env);
    await svc.start();
    return svc;
  }

  /** The pipeline file a service with this environment runs, as it reads it. */
  pipelineOf(env: NodeJS.ProcessEnv): PipelineConfig {
    // The harness reads files a service may not (a control plane's unsigned base catalog): no signature check here.
    return loadPipeline(env.CITYSHARE_PIPELINE!, { ...env, KAFKA_USERNAME: 'nobody', KAFKA_PASSWORD_FILE: '/dev/null', CITYSHARE_POLICY_PUBLIC_KEYS: '' }).config;
  }

  private principalOf(name: ServiceName, env: NodeJS.ProcessEnv): string {
    if (name === 'control' || name === 'verifier') return name;
    const config = this.pipelineOf(env);
    const who = kafkaPrincipals(config);
    const user = (principal: string | undefined) => principal?.replace(/^User:/, '') ?? 'nobody';
    switch (name) {
      case 'cdc-reader':
        return user(who.readers.get(env.READER_SOURCE ?? config.sources[0]!.name));
      case 'transformer':
        return user(who.transformer);
      case 'sink':
        return user(who.sinks.get(env.SINK_DEPARTMENT!));
    }
  }

  /** Makes the broker's ACLs of this run's prefix what the pipeline file implies (as the stack's administrator). */
  async grantAcls(env: NodeJS.ProcessEnv = this.env): Promise<void> {
    // The control service starts before it published its pipeline file: its base file says the same.
    const file = [env.CITYSHARE_PIPELINE, env.CONTROL_BASE_PIPELINE].find((f) => f !== undefined && existsSync(f));
    if (!file) return;
    const config = this.pipelineOf({ ...env, CITYSHARE_PIPELINE: file });
    await setAcls(config.kafka.topicPrefix, aclPlan(config), config.kafka.brokers);
  }

  /**
   * Lists the metrics endpoints of this run's running services in a Prometheus file_sd file
   * (the control service's CONTROL_METRICS_TARGETS, read at each pipeline status).
   */
  writeMetricsTargets(file: string): void {
    const targets = this.services.filter((s) => s.running).map((s) => `127.0.0.1:${s.port}`);
    writeFileSync(`${file}.tmp`, JSON.stringify([{ targets, labels: { job: 'cityshare' } }], null, 2));
    renameSync(`${file}.tmp`, file);
  }

  /** Starts the transformer and the sink: the delivery half of the pipeline. */
  async startDelivery(): Promise<void> {
    await this.start('transformer');
    await this.start('sink');
  }

  /** Stops the services; `keepData` leaves databases and tables for inspection. */
  async tearDown({ keepData = false } = {}): Promise<void> {
    await Promise.all(this.services.map((s) => s.stop()));
    if (!keepData) await setAcls(this.prefix, [], this.brokers);
    if (keepData) {
      await this.source?.end();
      await this.pg?.end();
      return;
    }
    for (const db of [this.civilDb, this.healthDb, this.transportDb]) await this.source?.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await this.source?.end();
    for (const schema of [this.pgSchema, this.haidianPgSchema]) await this.pg?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await this.pg?.end();
  }
}

/** Makes the ACLs on `prefix`'s resources exactly `plan` (cluster-wide rules are only added). */
export async function setAcls(prefix: string, plan: ReturnType<typeof aclPlan>, brokers: string[] = stack.kafkaBrokers): Promise<void> {
  const admin = adminKafka('test-acls', brokers).admin();
  await admin.connect();
  try {
    await applyAclDiff(admin, diffAcls(plan, await currentAcls(admin), prefix));
  } finally {
    await admin.disconnect();
  }
}
