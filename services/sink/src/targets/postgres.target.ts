import type pg from 'pg';
import { z } from 'zod';
import { CdcError, configName, postgresSslOptions, postgresTls, redactUrl, secretSetting, withoutSecrets, type Logger, type PostgresTlsConfig } from '@cityshare/shared';
import { planBatch } from './batch-plan.js';
import { ConnectionFaults, hearPoolErrors, type TargetOutage } from './connection-faults.js';
import { CopyIn } from './pg-copy-in.js';
import { CopyRows, copyEscape, copyField } from './pg-copy.js';
import { pgTypeOf } from './pg-types.js';
import { TARGET_META, type ApplyResult, type ReadRow, type ReadSpec, type RowChange, type TableReadBack, type Target, type TargetTable } from './target.js';
import { defineTarget } from './target-definition.js';
import { softDelete, withPostgresTls } from './target-settings.js';

/** kind `postgres`: a schema of the department's PostgreSQL database. */
export const postgresDefinition = defineTarget({
  config: z
    .strictObject({
      kind: z.literal('postgres'),
      url: z.string().min(1).describe('postgres:// connection string').meta(secretSetting),
      schema: configName.describe('schema the department tables live in; created when missing'),
      softDelete,
      ssl: postgresTls.optional(),
    })
    .superRefine(withPostgresTls),
  capabilities: { delivery: 'table', signs: () => false },
  tlsFiles: (t) => [{ at: 'ssl', files: t.ssl }],
  create: (t, ctx) => new PostgresTarget({ url: t.url, schema: t.schema, softDelete: t.softDelete, ssl: t.ssl }, ctx.logger, ctx.outage),
  readBack: (t, ctx) => new PostgresTarget({ url: t.url, schema: t.schema, softDelete: t.softDelete, ssl: t.ssl }, ctx.logger).readBack,
});

/** pg, loaded when a target connects (see target-definition.ts). */
export const loadPg = async (): Promise<typeof pg> => (await import('pg')).default;

const q = (ident: string) => `"${ident.replace(/"/g, '""')}"`;

/** The batch's staging table: temporary, one per transaction, dropped at its end. */
const STAGE = q('cityshare_stage');

export interface PostgresTargetOptions {
  url: string;
  schema: string;
  softDelete?: boolean;
  /** TLS (pipeline file: target.ssl); files already absolute. */
  ssl?: PostgresTlsConfig | undefined;
}

/** A department's PostgreSQL schema (see target.ts for the contract). */
export class PostgresTarget implements Target {
  private pool: pg.Pool | undefined;
  private readonly ensured = new Map<string, Set<string>>();
  /** The target as messages name it: the URL without its password. */
  private readonly where: string;
  private readonly faults: ConnectionFaults;

  constructor(private readonly options: PostgresTargetOptions, logger: Logger, outage?: TargetOutage) {
    this.where = redactUrl(options.url);
    this.faults = new ConnectionFaults(logger, `PostgreSQL target ${this.where}`, (m) => this.clean(m), outage);
  }

  /** A driver message without anything of the URL's credentials. */
  private clean(message: string): string {
    return withoutSecrets(message, { urls: [this.options.url] });
  }

  private fqn(table: string): string {
    return `${q(this.options.schema)}.${q(table)}`;
  }

  async connect(): Promise<void> {
    if (!this.pool) {
      const pg = await loadPg();
      const pool = new pg.Pool(postgresPoolConfig(this.options.url, this.options.ssl, 4));
      hearPoolErrors(pool, this.faults);
      this.pool = pool;
    }
    try {
      await this.definition(q(this.options.schema), [`CREATE SCHEMA IF NOT EXISTS ${q(this.options.schema)}`]);
    } catch (err) {
      const cause = (err as Error).cause ?? err;
      throw new CdcError('TARGET_UNREACHABLE', `PostgreSQL target ${this.where} is not reachable: ${this.clean((cause as Error).message)}`, { cause });
    }
  }

  async ensureTable(table: TargetTable): Promise<void> {
    const known = this.ensured.get(table.name);
    if (known && table.columns.every((c) => known.has(c.name))) return;
    const fqn = this.fqn(table.name);
    const log = table.primaryKey.length === 0;
    const cols = table.columns.map((c) => `${q(c.name)} ${pgTypeOf(c.type)}${table.primaryKey.includes(c.name) ? ' NOT NULL' : ''}`);
    const meta = [
      ...(log ? [`${q(TARGET_META.op)} text NOT NULL`] : []),
      ...(this.options.softDelete && !log ? [`${q(TARGET_META.deleted)} boolean NOT NULL DEFAULT false`] : []),
      `${q(TARGET_META.version)} text NOT NULL`,
      `${q(TARGET_META.sourceTs)} timestamptz`,
      `${q(TARGET_META.syncedAt)} timestamptz NOT NULL DEFAULT now()`,
    ];
    const key = log ? q(TARGET_META.version) : table.primaryKey.map(q).join(', ');
    await this.definition(fqn, [
      `CREATE TABLE IF NOT EXISTS ${fqn} (${[...cols, ...meta].join(', ')}, PRIMARY KEY (${key}))`,
      ...table.columns.map((c) => `ALTER TABLE ${fqn} ADD COLUMN IF NOT EXISTS ${q(c.name)} ${pgTypeOf(c.type)}`),
    ]);
    this.ensured.set(table.name, new Set(table.columns.map((c) => c.name)));
  }

  /**
   * Writes a batch in one transaction: its changes (the last per key) are copied (COPY) into
   * a temporary staging table shaped like the target's columns, then one INSERT … SELECT …
   * ON CONFLICT upserts them, guarded by the version, and one DELETE … USING removes the
   * deleted keys whose stored version is older. Set-based, so the cost per row is PostgreSQL's
   * own, not a statement's (BENCHMARKS.md, "Sink into PostgreSQL: COPY path").
   */
  async apply(table: TargetTable, changes: RowChange[]): Promise<ApplyResult> {
    const fqn = this.fqn(table.name);
    const names = table.columns.map((c) => c.name);
    const key = table.primaryKey;
    const { log, batch, upserts, deletes, extra } = planBatch(table, changes, this.options.softDelete);
    // A keyed table's staging rows carry whether they delete (the target's __deleted with soft delete, the stage's own otherwise).
    const flag = log ? TARGET_META.op : TARGET_META.deleted;
    const staged = [...names, flag, TARGET_META.version, TARGET_META.sourceTs];
    const keyColumns = new Set(key);
    let applied = 0;
    await this.transaction(fqn, async (client) => {
      // Typed as the target's columns (a flag the target lacks as boolean), so COPY reads each text as the parameter's would be read; no constraints.
      const shape = staged.map((n) => (n === flag && extra.length === 0 ? `NULL::boolean AS ${q(n)}` : q(n)));
      await client.query(`CREATE TEMPORARY TABLE ${STAGE} ON COMMIT DROP AS SELECT ${shape.join(', ')} FROM ${fqn} WITH NO DATA`);
      const rows = new CopyRows();
      for (const c of batch) {
        // A hard delete needs only the key: the rest of its image stays out (NULL).
        const hardDelete = !log && !this.options.softDelete && c.deleted;
        for (const n of names) rows.field(hardDelete && !keyColumns.has(n) ? '\\N' : copyField(c.values[n]));
        rows.field(copyField(log ? c.op : c.deleted));
        rows.field(copyEscape(c.version));
        rows.last(rows.instant(Number(c.sourceTsMs)));
      }
      await client.query(new CopyIn(`COPY ${STAGE} (${staged.map(q).join(', ')}) FROM STDIN`, rows.finish())).done;

      const columns = [...names, ...extra, TARGET_META.version, TARGET_META.sourceTs];
      const select = `SELECT ${columns.map(q).join(', ')}, now() FROM ${STAGE}`;
      const into = `INSERT INTO ${fqn} (${[...columns, TARGET_META.syncedAt].map(q).join(', ')})`;
      if (log) {
        applied += (await client.query(`${into} ${select} ON CONFLICT (${q(TARGET_META.version)}) DO NOTHING`)).rowCount ?? 0;
        return;
      }
      const set = [...columns, TARGET_META.syncedAt].filter((n) => !keyColumns.has(n)).map((n) => `${q(n)} = EXCLUDED.${q(n)}`).join(', ');
      const onlyUpserts = this.options.softDelete ? '' : ` WHERE NOT ${q(flag)}`;
      if (upserts.length > 0) {
        applied += (await client.query(`${into} ${select}${onlyUpserts} ON CONFLICT (${key.map(q).join(', ')}) DO UPDATE SET ${set} WHERE ${fqn}.${q(TARGET_META.version)} < EXCLUDED.${q(TARGET_META.version)}`)).rowCount ?? 0;
      }
      if (deletes.length > 0) {
        const match = key.map((k) => `t.${q(k)} = s.${q(k)}`).join(' AND ');
        applied += (await client.query(`DELETE FROM ${fqn} t USING ${STAGE} s WHERE s.${q(flag)} AND ${match} AND t.${q(TARGET_META.version)} < s.${q(TARGET_META.version)}`)).rowCount ?? 0;
      }
    });
    return { applied, stale: batch.length - applied };
  }

  /**
   * Schema definition statements, in one transaction that first waits for any other sink
   * defining this department's schema (instances of one department start together when scaled
   * out): `CREATE … IF NOT EXISTS` alone lets two sessions both pass the check and one fail
   * on the catalog's unique index (pg_namespace, pg_type).
   */
  private async definition(what: string, statements: string[]): Promise<void> {
    await this.transaction(what, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`cityshare.sink.ddl:${this.options.schema}`]);
      for (const sql of statements) await client.query(sql);
    });
  }

  /** Runs `work` in one transaction; failures become TARGET_UNREACHABLE or TARGET_REJECTED. */
  private async transaction(fqn: string, work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    if (!this.pool) throw new CdcError('INTERNAL', `PostgreSQL target ${this.where} used before connect()`);
    const client = await this.pool.connect().catch((cause: Error) => {
      throw new CdcError('TARGET_UNREACHABLE', `PostgreSQL target ${this.where} is not reachable: ${this.clean(cause.message)}`, { cause });
    });
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      await work(client);
      await client.query('COMMIT');
      this.faults.recovered();
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      const e = err as Error & { code?: string };
      // SQLSTATE class 08 = connection problems; others mean the target refused the data.
      const unreachable = e.code?.startsWith('08') || !e.code;
      // A client whose connection failed is dropped, not handed to the next batch.
      if (unreachable) broken = e;
      throw new CdcError(unreachable ? 'TARGET_UNREACHABLE' : 'TARGET_REJECTED', `PostgreSQL ${fqn}: ${this.clean(e.message)}`, {
        cause: err,
        details: { sqlState: e.code },
      });
    } finally {
      client.release(broken);
    }
  }

  /** The department's tables read back (for `cdc verify`): a pool of its own, reading only, instants in UTC. */
  readonly readBack: TableReadBack = {
    exists: async (table) => {
      const { rows } = await this.reading((c) => c.query('SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2', [this.options.schema, table]));
      return rows.length > 0;
    },
    scan: async (spec, onPage, pageRows = 10_000) => {
      const softDeleted = await this.hasSoftDelete(spec.table);
      await this.readingTransaction(async (c) => {
        await c.query(`DECLARE verify_scan NO SCROLL CURSOR FOR SELECT ${this.readColumns(spec, softDeleted)} FROM ${this.fqn(spec.table)}`);
        // The next page is asked for before this one is handed on: PostgreSQL reads while the caller works.
        const fetch = () => c.query(`FETCH ${pageRows} FROM verify_scan`);
        let next = fetch();
        for (;;) {
          const { rows } = await next;
          if (rows.length === 0) break;
          next = fetch();
          await onPage(rows.map((r: Record<string, unknown>) => readRow(spec, r)));
        }
      });
    },
    byKeys: async (spec, keys) => {
      if (keys.length === 0) return [];
      const softDeleted = await this.hasSoftDelete(spec.table);
      const out: ReadRow[] = [];
      for (let i = 0; i < keys.length; i += 500) {
        const params: unknown[] = [];
        const tuples = keys.slice(i, i + 500).map((k) => `(${k.map((v) => `$${params.push(v)}`).join(', ')})`);
        const { rows } = await this.reading((c) => c.query(`SELECT ${this.readColumns(spec, softDeleted)} FROM ${this.fqn(spec.table)} WHERE (${spec.primaryKey.map(q).join(', ')}) IN (${tuples.join(', ')})`, params));
        out.push(...rows.map((r: Record<string, unknown>) => readRow(spec, r)));
      }
      return out;
    },
    close: () => this.close(),
  };

  private readPool: pg.Pool | undefined;

  private async reading<T>(work: (client: pg.Pool) => Promise<T>): Promise<T> {
    if (!this.readPool) {
      const pg = await loadPg();
      this.readPool = new pg.Pool({ ...postgresPoolConfig(this.options.url, this.options.ssl, 2), options: '-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres' });
      hearPoolErrors(this.readPool, this.faults);
    }
    try {
      return await work(this.readPool);
    } catch (cause) {
      throw new CdcError('TARGET_UNREACHABLE', `PostgreSQL target ${this.where} could not be read: ${this.clean((cause as Error).message)}`, { cause });
    }
  }

  private async readingTransaction(work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    await this.reading(async (pool) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        await work(client);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    });
  }

  private async hasSoftDelete(table: string): Promise<boolean> {
    const { rows } = await this.reading((c) => c.query('SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = $3', [this.options.schema, table, TARGET_META.deleted]));
    return rows.length > 0;
  }

  /** Every column as text (sealed ones as bytes), with the version and the soft-delete flag. */
  private readColumns(spec: ReadSpec, softDeleted: boolean): string {
    return [
      ...spec.columns.map((c) => (spec.sealed.includes(c) ? q(c) : `${q(c)}::text AS ${q(c)}`)),
      q(TARGET_META.version),
      softDeleted ? q(TARGET_META.deleted) : `false AS ${q(TARGET_META.deleted)}`,
    ].join(', ');
  }

  async close(): Promise<void> {
    await this.pool?.end();
    await this.readPool?.end();
  }
}

/** A row as the read pool returns it (text columns, bytea as Buffer). */
function readRow(spec: ReadSpec, r: Record<string, unknown>): ReadRow {
  const values: Record<string, unknown> = {};
  for (const c of spec.columns) values[c] = r[c] ?? null;
  return { values, version: r[TARGET_META.version] as string, deleted: r[TARGET_META.deleted] === true };
}

/** pg pool settings for a target URL and its TLS (the URL's own sslmode applies when ssl is unset). */
export function postgresPoolConfig(url: string, ssl: PostgresTlsConfig | undefined, max: number): pg.PoolConfig {
  const tls = postgresSslOptions(ssl, 'target.ssl');
  return { connectionString: url, max, ...(tls ? { ssl: tls } : {}) };
}
