import type { PoolConnection as CorePoolConnection } from 'mysql2';
import { createPool, type Pool, type PoolConnection, type ResultSetHeader } from 'mysql2/promise';
import { z } from 'zod';
import { CdcError, LOGICAL, mysqlSslOptions, mysqlTls, redactUrl, secretSetting, withoutSecrets, type AvroFieldType, type Logger, type MysqlTlsConfig } from '@cityshare/shared';
import { keyText, planBatch } from './batch-plan.js';
import { TARGET_META, type ApplyResult, type ReadRow, type ReadSpec, type RowChange, type TableReadBack, type Target, type TargetColumn, type TargetTable } from './target.js';
import { defineTarget } from './target-definition.js';
import { softDelete } from './target-settings.js';

/**
 * kind `mysql`: the department's MySQL or MariaDB database. (mysql2 is loaded at import: every
 * process that checks target settings loads it anyway, for the sources.)
 */
export const mysqlDefinition = defineTarget({
  config: z.strictObject({
    kind: z.literal('mysql'),
    url: z.string().regex(/^mysql:\/\//, 'mysql://user:password@host:port/database').describe('mysql://user:password@host:port/database (MySQL or MariaDB); the database must exist').meta(secretSetting),
    softDelete,
    ssl: mysqlTls.optional(),
  }),
  capabilities: { delivery: 'table', signs: () => false },
  tlsFiles: (t) => [{ at: 'ssl', files: t.ssl }],
  create: (t, ctx) => new MysqlTarget({ url: t.url, softDelete: t.softDelete, ssl: t.ssl }, ctx.logger),
  readBack: (t, ctx) => new MysqlTarget({ url: t.url, softDelete: t.softDelete, ssl: t.ssl }, ctx.logger).readBack,
});

const q = (ident: string) => `\`${ident.replace(/`/g, '``')}\``;

/** MySQL/MariaDB type of an Avro field of a share schema (see docs/capture.md, "Type mapping"). */
export function mysqlTypeOf(type: AvroFieldType, isKey = false): string {
  if (Array.isArray(type)) return mysqlTypeOf(type.find((t) => t !== 'null')!, isKey);
  if (typeof type === 'string') {
    // Key columns need a bounded type to be indexed (768 characters of utf8mb4 = 3072 bytes).
    const simple: Record<string, string> = { int: 'INT', long: 'BIGINT', float: 'FLOAT', double: 'DOUBLE', boolean: 'BOOLEAN', string: isKey ? 'VARCHAR(768)' : 'LONGTEXT', bytes: isKey ? 'VARBINARY(3072)' : 'LONGBLOB' };
    return simple[type] ?? 'LONGTEXT';
  }
  switch (type.logicalType) {
    case LOGICAL.decimal: return `DECIMAL(${Number(type.precision)},${Number(type.scale ?? 0)})`;
    case LOGICAL.date: return 'DATE';
    // An instant, stored in UTC (the connection's time zone is +00:00).
    case LOGICAL.timestampMicros: return 'DATETIME(6)';
    case LOGICAL.localTimestampMicros: return 'DATETIME(6)';
    case LOGICAL.json: return 'JSON';
    case LOGICAL.mysqlTime: return 'TIME(6)';
    case LOGICAL.sealed: return 'LONGBLOB';
    default: return mysqlTypeOf(type.type as AvroFieldType, isKey);
  }
}

/** A decoded share value as mysql2 takes it: instants as UTC DATETIME text, 64-bit integers as text. */
function mysqlValue(column: TargetColumn, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v.toString();
  const t = column.type;
  if (typeof t === 'object' && !Array.isArray(t) && t.logicalType === LOGICAL.timestampMicros) return String(v).replace('T', ' ').replace(/Z$/, '');
  if (typeof t === 'object' && !Array.isArray(t) && t.logicalType === LOGICAL.localTimestampMicros) return String(v).replace('T', ' ');
  return v;
}

export interface MysqlTargetOptions {
  /** mysql://user:password@host:port/database */
  url: string;
  softDelete?: boolean;
  /** TLS (pipeline file: target.ssl); files already absolute. */
  ssl?: MysqlTlsConfig | undefined;
}

/**
 * A department's MySQL or MariaDB database (see target.ts for the contract). The version
 * guard is in the upsert itself: ON DUPLICATE KEY UPDATE sets each column to the new
 * value only if the incoming version is newer, `__version` last.
 */
export class MysqlTarget implements Target {
  private readonly pool: Pool;
  private readonly ensured = new Map<string, Set<string>>();

  constructor(private readonly options: MysqlTargetOptions, logger: Logger) {
    // Without FOUND_ROWS (on by default in mysql2), a row an upsert leaves as it was counts 0.
    const ssl = mysqlSslOptions(options.ssl, 'target.ssl');
    // error events: a mysql2 pool emits none; each pooled connection has its own listener and a failed one is dropped.
    this.pool = createPool({ uri: options.url, ...(ssl ? { ssl } : {}), connectionLimit: 4, timezone: 'Z', charset: 'utf8mb4', supportBigNumbers: true, bigNumberStrings: true, dateStrings: true, flags: ['-FOUND_ROWS'] });
    // The event hands over the callback connection (not the promise one its typing says). With a callback, a failure
    // (the connection lost as it opens) is not an unheard 'error' of the query; the batch on it fails with its code.
    this.pool.on('connection', (conn) => void (conn as unknown as CorePoolConnection).query("SET time_zone = '+00:00'", (err: Error | null) => {
      if (err) logger.warn({ code: 'TARGET_UNREACHABLE', target: redactUrl(options.url), reason: withoutSecrets(err.message, { urls: [options.url] }) }, 'setting the time zone of a new MySQL connection failed');
    }));
  }

  async connect(): Promise<void> {
    await this.run('connect', async (c) => {
      await c.query('SELECT 1');
    });
  }

  async ensureTable(table: TargetTable): Promise<void> {
    const known = this.ensured.get(table.name);
    if (known && table.columns.every((c) => known.has(c.name))) return;
    const log = table.primaryKey.length === 0;
    const cols = table.columns.map((c) => `${q(c.name)} ${mysqlTypeOf(c.type, table.primaryKey.includes(c.name))}${table.primaryKey.includes(c.name) ? ' NOT NULL' : ''}`);
    const meta = [
      ...(log ? [`${q(TARGET_META.op)} VARCHAR(1) NOT NULL`] : []),
      ...(this.options.softDelete && !log ? [`${q(TARGET_META.deleted)} BOOLEAN NOT NULL DEFAULT FALSE`] : []),
      `${q(TARGET_META.version)} VARCHAR(64) NOT NULL`,
      `${q(TARGET_META.sourceTs)} DATETIME(6)`,
      `${q(TARGET_META.syncedAt)} DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)`,
    ];
    const key = log ? q(TARGET_META.version) : table.primaryKey.map(q).join(', ');
    await this.run(table.name, async (c) => {
      await c.query(`CREATE TABLE IF NOT EXISTS ${q(table.name)} (${[...cols, ...meta].join(', ')}, PRIMARY KEY (${key})) DEFAULT CHARSET = utf8mb4`);
      const [existing] = await c.query('SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?', [table.name]);
      const have = new Set((existing as Array<{ name: string }>).map((r) => r.name));
      for (const col of table.columns.filter((x) => !have.has(x.name))) await c.query(`ALTER TABLE ${q(table.name)} ADD COLUMN ${q(col.name)} ${mysqlTypeOf(col.type)}`);
    });
    this.ensured.set(table.name, new Set(table.columns.map((c) => c.name)));
  }

  async apply(table: TargetTable, changes: RowChange[]): Promise<ApplyResult> {
    const { log, batch, upserts, deletes, extra, extraValue } = planBatch(table, changes, this.options.softDelete);
    const names = table.columns.map((c) => c.name);
    const columns = [...names, ...extra, TARGET_META.version, TARGET_META.sourceTs];
    const newer = `VALUES(${q(TARGET_META.version)}) > ${q(TARGET_META.version)}`;
    const guarded = columns.filter((n) => !table.primaryKey.includes(n) && n !== TARGET_META.version);
    const onDuplicate = log
      ? `ON DUPLICATE KEY UPDATE ${q(TARGET_META.version)} = ${q(TARGET_META.version)}`
      : `ON DUPLICATE KEY UPDATE ${[...guarded, TARGET_META.syncedAt].map((n) => `${q(n)} = IF(${newer}, ${n === TARGET_META.syncedAt ? 'CURRENT_TIMESTAMP(6)' : `VALUES(${q(n)})`}, ${q(n)})`).join(', ')}, ${q(TARGET_META.version)} = IF(${newer}, VALUES(${q(TARGET_META.version)}), ${q(TARGET_META.version)})`;
    let applied = 0;
    await this.run(table.name, async (c) => {
      await c.beginTransaction();
      try {
        for (let i = 0; i < upserts.length; i += 500) {
          // The guard decided up front (rows locked), so the count is exact on MySQL and MariaDB alike;
          // the upsert's own IF() keeps it even so.
          const chunk = log ? upserts.slice(i, i + 500) : await newerThanStored(c, table, upserts.slice(i, i + 500));
          if (chunk.length === 0) continue;
          const rows = chunk.map((ch) => [
            ...table.columns.map((col) => mysqlValue(col, ch.values[col.name])),
            ...extra.map(() => extraValue(ch)),
            ch.version,
            new Date(Number(ch.sourceTsMs)).toISOString().replace('T', ' ').replace('Z', ''),
          ]);
          const [res] = await c.query<ResultSetHeader>(`INSERT INTO ${q(table.name)} (${columns.map(q).join(', ')}) VALUES ? ${onDuplicate}`, [rows]);
          // A change log counts 1 per appended row, 0 per version already there.
          applied += log ? res.affectedRows : chunk.length;
        }
        for (const ch of deletes) {
          const where = table.primaryKey.map((k) => `${q(k)} = ?`).join(' AND ');
          const key = table.primaryKey.map((k) => mysqlValue(table.columns.find((col) => col.name === k)!, ch.values[k]));
          const [res] = await c.query<ResultSetHeader>(`DELETE FROM ${q(table.name)} WHERE ${where} AND ${q(TARGET_META.version)} < ?`, [...key, ch.version]);
          applied += res.affectedRows;
        }
        await c.commit();
      } catch (err) {
        await c.rollback().catch(() => undefined);
        throw err;
      }
    });
    return { applied, stale: batch.length - applied };
  }

  /** Runs `work` on a pooled connection; failures become TARGET_UNREACHABLE or TARGET_REJECTED. */
  private async run(what: string, work: (c: PoolConnection) => Promise<void>): Promise<void> {
    let conn: PoolConnection | undefined;
    try {
      conn = await this.pool.getConnection();
      await work(conn);
    } catch (err) {
      const e = err as Error & { code?: string; errno?: number; sqlState?: string };
      // Connection-level errors have no SQLSTATE (or class 08); the rest is the data or the schema.
      const unreachable = !e.sqlState || e.sqlState.startsWith('08') || e.code === 'PROTOCOL_CONNECTION_LOST';
      throw new CdcError(unreachable ? 'TARGET_UNREACHABLE' : 'TARGET_REJECTED', `MySQL ${redactUrl(this.options.url)} ${what}: ${withoutSecrets(e.message, { urls: [this.options.url] })}`, { cause: err, details: { sqlState: e.sqlState, errno: e.errno } });
    } finally {
      conn?.release();
    }
  }

  /** The department's tables read back (for `cdc verify`), by key order a page at a time, reading only. */
  readonly readBack: TableReadBack = {
    exists: async (table) => {
      let found = false;
      await this.run(table, async (c) => {
        const [rows] = await c.query('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?', [table]);
        found = (rows as unknown[]).length > 0;
      });
      return found;
    },
    scan: async (spec, onPage, pageRows = 10_000) => {
      const softDeleted = await this.hasSoftDelete(spec.table);
      const pk = spec.primaryKey.map(q).join(', ');
      let after: unknown[] | undefined;
      for (;;) {
        let rows: Array<Record<string, unknown>> = [];
        await this.run(spec.table, async (c) => {
          const where = after ? `WHERE (${pk}) > (${after.map(() => '?').join(', ')})` : '';
          const [found] = await c.query(`SELECT ${this.readColumns(spec, softDeleted)} FROM ${q(spec.table)} ${where} ORDER BY ${pk} LIMIT ${Number(pageRows)}`, after ?? []);
          rows = found as Array<Record<string, unknown>>;
        });
        if (rows.length === 0) return;
        await onPage(rows.map((r) => mysqlReadRow(spec, r)));
        const last = rows[rows.length - 1]!;
        after = spec.primaryKey.map((k) => last[k]);
        if (rows.length < pageRows) return;
      }
    },
    byKeys: async (spec, keys) => {
      if (keys.length === 0) return [];
      const softDeleted = await this.hasSoftDelete(spec.table);
      const out: ReadRow[] = [];
      const tuple = `(${spec.primaryKey.map(() => '?').join(', ')})`;
      for (let i = 0; i < keys.length; i += 500) {
        const chunk = keys.slice(i, i + 500);
        await this.run(spec.table, async (c) => {
          const [rows] = await c.query(`SELECT ${this.readColumns(spec, softDeleted)} FROM ${q(spec.table)} WHERE (${spec.primaryKey.map(q).join(', ')}) IN (${chunk.map(() => tuple).join(', ')})`, chunk.flat());
          out.push(...(rows as Array<Record<string, unknown>>).map((r) => mysqlReadRow(spec, r)));
        });
      }
      return out;
    },
    close: () => this.close(),
  };

  private async hasSoftDelete(table: string): Promise<boolean> {
    let found = false;
    await this.run(table, async (c) => {
      const [rows] = await c.query('SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?', [table, TARGET_META.deleted]);
      found = (rows as unknown[]).length > 0;
    });
    return found;
  }

  private readColumns(spec: ReadSpec, softDeleted: boolean): string {
    return [...spec.columns.map(q), q(TARGET_META.version), softDeleted ? q(TARGET_META.deleted) : `FALSE AS ${q(TARGET_META.deleted)}`].join(', ');
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** A row as mysql2 returns it (date, time and big numbers as text, JSON parsed, blobs as bytes). */
function mysqlReadRow(spec: ReadSpec, r: Record<string, unknown>): ReadRow {
  const values: Record<string, unknown> = {};
  for (const c of spec.columns) values[c] = r[c] ?? null;
  return { values, version: String(r[TARGET_META.version]), deleted: Boolean(Number(r[TARGET_META.deleted])) };
}

/** The changes whose version is newer than the stored row's (or whose row is not there), rows locked. */
async function newerThanStored(c: PoolConnection, table: TargetTable, changes: RowChange[]): Promise<RowChange[]> {
  const pk = table.primaryKey;
  const keyOf = (values: Record<string, unknown>) => keyText(pk, values);
  const tuple = `(${pk.map(() => '?').join(', ')})`;
  const params = changes.flatMap((ch) => pk.map((k) => mysqlValue(table.columns.find((col) => col.name === k)!, ch.values[k])));
  const [rows] = await c.query(
    `SELECT ${pk.map(q).join(', ')}, ${q(TARGET_META.version)} AS v FROM ${q(table.name)} WHERE (${pk.map(q).join(', ')}) IN (${changes.map(() => tuple).join(', ')}) FOR UPDATE`,
    params,
  );
  const stored = new Map((rows as Array<Record<string, unknown>>).map((r) => [keyOf(r), String(r.v)]));
  return changes.filter((ch) => {
    const v = stored.get(keyOf(ch.values));
    return v === undefined || ch.version > v;
  });
}
