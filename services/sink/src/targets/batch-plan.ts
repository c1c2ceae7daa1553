import { TARGET_META, type RowChange, type TargetTable } from './target.js';

/**
 * How the table targets in a database (postgres.target.ts, mysql.target.ts) write a batch,
 * the same way: the last change per key, upserts and deletes apart, the bookkeeping column
 * of a change log or of soft deletes.
 */

/** How a database target writes one batch: which changes are upserted, which deleted, and the extra bookkeeping column. */
export interface BatchPlan {
  /** A table without a key: a change log, every change appended. */
  log: boolean;
  /** The changes that count: all of a change log, the last per key otherwise. */
  batch: RowChange[];
  upserts: RowChange[];
  deletes: RowChange[];
  /** `__op` for a change log, `__deleted` with soft delete, nothing otherwise; `extraValue` fills it. */
  extra: string[];
  extraValue: (c: RowChange) => unknown;
}

/** The batch plan every database target follows (soft delete: a delete is an upsert of the before image with `__deleted`). */
export function planBatch(table: TargetTable, changes: RowChange[], softDelete = false): BatchPlan {
  const log = table.primaryKey.length === 0;
  const batch = log ? changes : latestPerKey(table, changes);
  return {
    log,
    batch,
    upserts: batch.filter((c) => log || softDelete || !c.deleted),
    deletes: log || softDelete ? [] : batch.filter((c) => c.deleted),
    extra: log ? [TARGET_META.op] : softDelete ? [TARGET_META.deleted] : [],
    extraValue: (c) => (log ? c.op : c.deleted),
  };
}

/** Only the last change per key matters within a batch (changes are in source order). */
export function latestPerKey(table: TargetTable, changes: RowChange[]): RowChange[] {
  const latest = new Map<string, RowChange>();
  for (const c of changes) latest.set(keyText(table.primaryKey, c.values), c);
  return [...latest.values()];
}

/** A row's key as text, for grouping: binary key columns by their bytes, not decoded as UTF-8. */
export function keyText(primaryKey: string[], values: Record<string, unknown>): string {
  return JSON.stringify(primaryKey.map((k) => {
    const v = values[k];
    return Buffer.isBuffer(v) ? `b64:${v.toString('base64')}` : String(v);
  }));
}
