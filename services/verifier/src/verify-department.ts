import { createConnection } from 'mysql2/promise';
import { TableCatalog } from '@cityshare/cdc-reader/table-catalog';
import { exactValueOptions } from '@cityshare/cdc-reader/source-values';
import type { TargetConfig } from '@cityshare/sink/targets';
import {
  BucketDigests,
  CdcError,
  canonicalJson,
  canonicalOfText,
  compileGrant,
  createKafka,
  sourceConnectionOptions,
  tokenKeyName,
  topics,
  type CanonicalValue,
  type KeyProvider,
  type Logger,
  type PipelineConfig,
  type SourceConfig,
  type TableSchema,
} from '@cityshare/shared';
import { createHash } from 'node:crypto';
import { DepartmentSide, type HeldRow } from './department-side.js';
import { PipelineProgress } from './pipeline-progress.js';
import { SourceSide } from './source-side.js';
import { DEFAULT_BUCKETS, verifyTable, type TableResult } from './table-verifier.js';

/** One run of `cdc verify` (or of the verifier service) for one department. */
export interface VerifyReport {
  department: string;
  startedAt: string;
  finishedAt: string;
  tables: TableResult[];
  /** SHA-256 of the report's canonical JSON without this field: what the audit ledger records. */
  sha256: string;
}

export interface VerifyOptions {
  config: PipelineConfig<TargetConfig>;
  /** The verifier's keyring: token keys and the department's key (to open what it holds encrypted), the pipeline key (to trust checkpoints). */
  keys: KeyProvider;
  department: string;
  /** `source.db.table` of its grants to verify; all when empty. */
  tables?: string[];
  logger: Logger;
  settleMs?: number;
  buckets?: number;
}

/**
 * Verifies what a department holds against policy(source), table by table, for every grant
 * it has (or the ones named). Needs the source (the reader's account), the department's
 * target (read only) and Kafka (the pipeline's progress); never moves a plain value to the
 * department's side.
 */
export async function verifyDepartment(o: VerifyOptions): Promise<VerifyReport> {
  const startedAt = new Date().toISOString();
  const department = o.config.departments.find((d) => d.name === o.department);
  if (!department) throw new CdcError('UNKNOWN_ID', `no department named ${o.department} in the pipeline file`);
  const grants = department.grants.filter((g) => !o.tables?.length || o.tables.some((t) => g.table === t || g.table.endsWith(`.${t}`)));
  if (o.tables?.length && grants.length === 0) throw new CdcError('TABLE_NOT_FOUND', `${o.department} holds no grant on ${o.tables.join(', ')}: \`cdc grants list\` shows its grants`);
  const progress = new PipelineProgress(createKafka(o.config.kafka, 'cityshare-verifier', o.logger), o.config, () => o.keys, o.logger);
  await progress.start();
  const tables: TableResult[] = [];
  try {
    for (const grant of grants) {
      const [sourceName, db, table] = grant.table.split('.') as [string, string, string];
      const source = o.config.sources.find((s) => s.name === sourceName)!;
      const tableConfig = source.tables.find((t) => t.name === `${db}.${table}`)!;
      const schema = await tableSchema(source, `${db}.${table}`);
      if (schema.primaryKey.length === 0) {
        throw new CdcError('TABLE_WITHOUT_KEY', `${grant.table} has no primary key (a change log at the department): its rows cannot be compared by key`);
      }
      const view = { department: department.name, ...compileGrant(grant, tableConfig) };
      const targetTable = grant.targetTable ?? table;
      const sourceSide = await SourceSide.open(source, schema, view, (domain) => o.keys.activeKey(tokenKeyName(department.name, domain)));
      const departmentSide = DepartmentSide.open(department.target, { source: sourceName, department: department.name, db, table }, targetTable, schema, view, o.keys, o.logger);
      try {
        const result = await verifyTable({
          source: sourceSide,
          department: departmentSide,
          progress,
          lane: { source: sourceName, department: department.name, rawTopic: topics.raw(o.config.kafka.topicPrefix, sourceName, db, table), shareTopic: topics.share(o.config.kafka.topicPrefix, department.name, sourceName, db, table) },
          settleMs: o.settleMs ?? 60_000,
          ...(o.buckets ? { buckets: o.buckets } : {}),
          sourceKeyOf: sourceKeyOf(schema, view.rules),
        });
        tables.push({ ...result, table: grant.table, targetTable });
        o.logger.info({ department: department.name, table: grant.table, status: result.status, compared: result.compared, missing: result.missing.length, extra: result.extra.length, different: result.different.length, unsettled: result.unsettled.length, seconds: result.seconds }, 'table verified');
      } finally {
        await sourceSide.close();
        await departmentSide.close();
      }
    }
  } finally {
    await progress.stop();
  }
  const report = { department: department.name, startedAt, finishedAt: new Date().toISOString(), tables };
  return { ...report, sha256: createHash('sha256').update(canonicalJson(report)).digest('hex') };
}

/** policy(source) per bucket of a department's key, for a department that compares on its own side (docs/verify.md). */
export interface DigestFile {
  form: 'cityshare-row-digest/1';
  department: string;
  createdAt: string;
  buckets: number;
  tables: Array<{ table: string; columns: string[]; key: string[]; position: { file: string; pos: number }; rows: number; digests: Array<{ bucket: number; rows: number; xor: string }> }>;
}

/**
 * The digests of policy(source) for each of a department's grants (or those named), from one
 * consistent snapshot each, for departments whose target keeps no table the verifier can read
 * (an HTTP endpoint, RabbitMQ, Kafka read directly): they compute the same digests over what
 * they hold (row-digest.ts, docs/verify.md) and compare bucket by bucket.
 */
export async function sourceDigests(o: Omit<VerifyOptions, 'settleMs'>): Promise<DigestFile> {
  const department = o.config.departments.find((d) => d.name === o.department);
  if (!department) throw new CdcError('UNKNOWN_ID', `no department named ${o.department} in the pipeline file`);
  const buckets = o.buckets ?? DEFAULT_BUCKETS;
  const tables: DigestFile['tables'] = [];
  for (const grant of department.grants.filter((g) => !o.tables?.length || o.tables.some((t) => g.table === t || g.table.endsWith(`.${t}`)))) {
    const [sourceName, db, table] = grant.table.split('.') as [string, string, string];
    const source = o.config.sources.find((s) => s.name === sourceName)!;
    const schema = await tableSchema(source, `${db}.${table}`);
    const view = { department: department.name, ...compileGrant(grant, source.tables.find((t) => t.name === `${db}.${table}`)!) };
    const side = await SourceSide.open(source, schema, view, (domain) => o.keys.activeKey(tokenKeyName(department.name, domain)));
    try {
      const digests = new BucketDigests(buckets);
      const at = await side.begin();
      let rows = 0;
      await side.scan((page) => page.forEach((r) => (rows++, digests.add(r.key, r.digest))));
      await side.end();
      tables.push({ table: grant.table, columns: side.columns, key: schema.primaryKey, position: at.high, rows, digests: digests.toJSON() });
    } finally {
      await side.close();
    }
  }
  return { form: 'cityshare-row-digest/1', department: department.name, createdAt: new Date().toISOString(), buckets, tables };
}

/** The table as the source describes it now (the reader's own description). */
async function tableSchema(source: SourceConfig, name: string): Promise<TableSchema> {
  const conn = await createConnection({ ...sourceConnectionOptions(source), ...exactValueOptions }).catch((cause: Error) => {
    throw new CdcError('SOURCE_UNREACHABLE', `source ${source.name} is not reachable: ${(cause as { code?: string }).code ?? 'connection failed'}`, { cause });
  });
  // A connection lost meanwhile fails the query it was serving; the event itself needs no more.
  conn.on('error', () => undefined);
  try {
    const catalog = await TableCatalog.load(conn, { ...source, tables: source.tables.filter((t) => t.name === name) });
    const [db, table] = name.split('.') as [string, string];
    return catalog.get(db, table)!;
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** A department row's source key, when the department receives every key column as passed (a token names no source key). */
function sourceKeyOf(schema: TableSchema, rules: Array<{ column: string; action: string }>): (held: HeldRow) => CanonicalValue[] | undefined {
  const passed = schema.primaryKey.every((k) => rules.find((r) => r.column === k)?.action === 'pass');
  return (held) => {
    if (!passed) return undefined;
    const key = JSON.parse(held.shareKey) as Record<string, string>;
    return schema.primaryKey.map((k) => canonicalOfText(schema.columns.find((c) => c.name === k)!.type, key[k]!));
  };
}
