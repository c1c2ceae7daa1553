import pg from 'pg';
import { CdcError, type Logger } from '@cityshare/shared';
import type { TargetColumn } from './pg-types.js';

export interface TargetTable {
  name: string;
  columns: TargetColumn[];
  /** Empty for an append-only source table: the target is a change log keyed by source version. */
  primaryKey: string[];
}

/** One row change ready for the target: data in column order, or a delete by key. */
export interface RowChange {
  /** c, u, d or r, as in the change event. */
  op: string;
  version: string;
  sourceTsMs: bigint;
  deleted: boolean;
  values: Record<string, unknown>;
}

const q = (ident: string) => `"${ident.replace(/"/g, '""')}"`;

/**
 * A department's PostgreSQL schema. Upserts and deletes by primary key, guarded by the
 * source version: a row is written only if its version is newer than the stored one,
 * so redelivered or reordered changes leave the table as it is. A table without a key
 * (registered append-only) becomes a change log: one row per change, with its `__op`,
 * keyed by source version, so a redelivered change is not appended twice.
 */
export class PostgresSink {
  private readonly pool: pg.Pool;
  private readonly ensured = new Map<string, Set<string>>();

  constructor(url: string, private readonly schema: string, private readonly logger: Logger) {
    this.pool = new pg.Pool({ connectionString: url, max: 4 });
    this.pool.on('error', (err) => logger.warn({ err }, 'idle PostgreSQL connection failed'));
  }

  async connect(): Promise<void> {
    try {
      await this.pool.query(`CREATE SCHEMA IF NOT EXISTS ${q(this.schema)}`);
    } catch (cause) {
      throw new CdcError('TARGET_UNREACHABLE', `PostgreSQL target is not reachable: ${(cause as Error).message}`, { cause });
    }
  }

  /** Creates the table when missing and adds columns that a newer schema grants. */
  async ensureTable(table: TargetTable): Promise<void> {
    const known = this.ensured.get(table.name);
    if (known && table.columns.every((c) => known.has(c.name))) return;
    const fqn = `${q(this.schema)}.${q(table.name)}`;
    const cols = table.columns.map((c) => `${q(c.name)} ${c.pgType}${table.primaryKey.includes(c.name) ? ' NOT NULL' : ''}`);
    const log = table.primaryKey.length === 0;
    await this.pool.query(
      `CREATE TABLE IF NOT EXISTS ${fqn} (${cols.join(', ')}, ${log ? '"__op" text NOT NULL, ' : ''}"__version" text NOT NULL, "__source_ts" timestamptz, "__synced_at" timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (${log ? '"__version"' : table.primaryKey.map(q).join(', ')}))`,
    );
    for (const c of table.columns) {
      await this.pool.query(`ALTER TABLE ${fqn} ADD COLUMN IF NOT EXISTS ${q(c.name)} ${c.pgType}`);
    }
    this.ensured.set(table.name, new Set(table.columns.map((c) => c.name)));
  }

  /**
   * Applies the changes of one table in one transaction. Changes must be in source
   * order; only the last change per key matters.
   */
  async apply(table: TargetTable, changes: RowChange[]): Promise<{ applied: number; stale: number }> {
    if (table.primaryKey.length === 0) return this.append(table, changes);
    const latest = new Map<string, RowChange>();
    for (const c of changes) latest.set(JSON.stringify(table.primaryKey.map((k) => String(c.values[k]))), c);
    const upserts = [...latest.values()].filter((c) => !c.deleted);
    const deletes = [...latest.values()].filter((c) => c.deleted);
    const fqn = `${q(this.schema)}.${q(table.name)}`;
    let applied = 0;
    await this.transaction(fqn, async (client) => {
      const names = table.columns.map((c) => c.name);
      const setList = [...names.filter((n) => !table.primaryKey.includes(n)), '__version', '__source_ts', '__synced_at']
        .map((n) => `${q(n)} = EXCLUDED.${q(n)}`)
        .join(', ');
      for (let i = 0; i < upserts.length; i += 500) {
        const params: unknown[] = [];
        const rows = upserts.slice(i, i + 500).map((c) => {
          const values = [...names.map((n) => c.values[n] ?? null), c.version, new Date(Number(c.sourceTsMs))];
          return `(${values.map((v) => `$${params.push(v)}`).join(', ')}, now())`;
        });
        const res = await client.query(
          `INSERT INTO ${fqn} (${names.map(q).join(', ')}, "__version", "__source_ts", "__synced_at") VALUES ${rows.join(', ')}
           ON CONFLICT (${table.primaryKey.map(q).join(', ')}) DO UPDATE SET ${setList} WHERE ${fqn}."__version" < EXCLUDED."__version"`,
          params,
        );
        applied += res.rowCount ?? 0;
      }
      for (const c of deletes) {
        const where = table.primaryKey.map((k, i) => `${q(k)} = $${i + 1}`).join(' AND ');
        const res = await client.query(`DELETE FROM ${fqn} WHERE ${where} AND "__version" < $${table.primaryKey.length + 1}`, [
          ...table.primaryKey.map((k) => c.values[k]),
          c.version,
        ]);
        applied += res.rowCount ?? 0;
      }
    });
    return { applied, stale: latest.size - applied };
  }

  /** Change-log table: every change appended once (a redelivered version is skipped). */
  private async append(table: TargetTable, changes: RowChange[]): Promise<{ applied: number; stale: number }> {
    const fqn = `${q(this.schema)}.${q(table.name)}`;
    const names = table.columns.map((c) => c.name);
    let applied = 0;
    await this.transaction(fqn, async (client) => {
      for (let i = 0; i < changes.length; i += 500) {
        const params: unknown[] = [];
        const rows = changes.slice(i, i + 500).map((c) => {
          const values = [...names.map((n) => c.values[n] ?? null), c.op, c.version, new Date(Number(c.sourceTsMs))];
          return `(${values.map((v) => `$${params.push(v)}`).join(', ')}, now())`;
        });
        const res = await client.query(
          `INSERT INTO ${fqn} (${[...names, '__op', '__version', '__source_ts', '__synced_at'].map(q).join(', ')}) VALUES ${rows.join(', ')} ON CONFLICT ("__version") DO NOTHING`,
          params,
        );
        applied += res.rowCount ?? 0;
      }
    });
    return { applied, stale: changes.length - applied };
  }

  /** Runs `work` in one transaction; failures become TARGET_UNREACHABLE or TARGET_REJECTED. */
  private async transaction(fqn: string, work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    const client = await this.pool.connect().catch((cause: Error) => {
      throw new CdcError('TARGET_UNREACHABLE', `PostgreSQL target is not reachable: ${cause.message}`, { cause });
    });
    try {
      await client.query('BEGIN');
      await work(client);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      const e = err as Error & { code?: string };
      // SQLSTATE class 08 = connection problems; others mean the target refused the data.
      throw new CdcError(e.code?.startsWith('08') || !e.code ? 'TARGET_UNREACHABLE' : 'TARGET_REJECTED', `PostgreSQL ${fqn}: ${e.message}`, {
        cause: err,
        details: { sqlState: e.code },
      });
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
