import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { createConnection, type Connection } from 'mysql2/promise';
import pg from 'pg';
import { FileKeyring } from '@cityshare/shared';
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
  source!: Connection;
  pg!: pg.Client;

  /** Defaults give every run unique names; the demo passes readable ones. */
  constructor(names: Partial<RunNames> = {}) {
    this.id = names.id ?? `t${randomBytes(4).toString('hex')}`;
    this.prefix = this.id;
    this.civilDb = names.civilDb ?? `${this.id}_civil`;
    this.healthDb = names.healthDb ?? `${this.id}_health`;
    this.transportDb = names.transportDb ?? `${this.id}_transport`;
    this.pgSchema = names.pgSchema ?? `${this.id}_dept_health`;
    this.haidianPgSchema = names.haidianPgSchema ?? `${this.id}_dept_haidian`;
    this.keyringFile = names.keyringFile ?? join(stack.root, '.stack', 'test', this.id, 'keyring.json');
    this.keys = FileKeyring.ensure(this.keyringFile, ['pipeline', 'department:health', 'department:haidian', 'token:citizen']);
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
      TRANSFORMER_INSTANCE_ID: this.id,
    };
  }

  async setUp(): Promise<void> {
    this.source = await createConnection({ ...stack.source, charset: 'utf8mb4', multipleStatements: true });
    for (const db of [this.civilDb, this.healthDb, this.transportDb]) {
      await this.source.query(`DROP DATABASE IF EXISTS \`${db}\``);
      await this.source.query(`CREATE DATABASE \`${db}\``);
    }
    const ddl = readFileSync(join(stack.root, 'deploy', 'local', 'sample', 'schema.sql'), 'utf8')
      .replaceAll('@CIVIL@', this.civilDb)
      .replaceAll('@HEALTH@', this.healthDb)
      .replaceAll('@TRANSPORT@', this.transportDb);
    await this.source.query(ddl);
    this.pg = new pg.Client({ connectionString: stack.postgresUrl });
    await this.pg.connect();
    for (const schema of [this.pgSchema, this.haidianPgSchema]) await this.pg.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }

  /**
   * Writes a pipeline file of this run (its topic prefix, keyring, the project's MariaDB
   * as source `cityhub` unless named) next to its keyring; returns the path.
   */
  writePipelineFile(file: string, spec: { serverId: number; tables: unknown[]; departments?: unknown[]; sourceName?: string }): string {
    const path = join(dirname(this.keyringFile), file);
    writeFileSync(`${path}.tmp`, stringify({
      kafka: { brokers: stack.kafkaBrokers, topicPrefix: this.prefix },
      schemaRegistry: { url: stack.registryUrl },
      keyring: { file: this.keyringFile },
      sources: [{
        name: spec.sourceName ?? 'cityhub',
        connection: { host: stack.source.host, port: stack.source.port, user: 'cdc_reader', password: 'cdc_reader', ssl: { ca: stack.sourceTlsCa } },
        serverId: spec.serverId,
        tables: spec.tables,
      }],
      departments: spec.departments ?? [],
    }));
    // Atomic, as an operator's tooling should write it: a watching service never reads half a file.
    renameSync(`${path}.tmp`, path);
    return path;
  }

  service(name: ServiceName, env: NodeJS.ProcessEnv = {}): ServiceProcess {
    const department = name === 'sink' ? `-${env.SINK_DEPARTMENT ?? this.env.SINK_DEPARTMENT}` : '';
    const svc = new ServiceProcess(name, { ...this.env, ...env }, join(stack.root, '.stack', 'logs', 'test', `${this.id}-${name}${department}.log`));
    this.services.push(svc);
    return svc;
  }

  async start(name: ServiceName, env: NodeJS.ProcessEnv = {}): Promise<ServiceProcess> {
    const svc = this.service(name, env);
    await svc.start();
    return svc;
  }

  /** Starts the transformer and the sink: the delivery half of the pipeline. */
  async startDelivery(): Promise<void> {
    await this.start('transformer');
    await this.start('sink');
  }

  /** Stops the services; `keepData` leaves databases and tables for inspection. */
  async tearDown({ keepData = false } = {}): Promise<void> {
    await Promise.all(this.services.map((s) => s.stop()));
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
