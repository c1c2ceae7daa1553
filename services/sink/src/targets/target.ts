import { META_FIELDS, type AvroFieldType, type AvroRecordSchema, type DepartmentConfig } from '@cityshare/shared';

/** A column of a department's target table: its name and the Avro type of its share field. */
export interface TargetColumn {
  name: string;
  type: AvroFieldType;
  nullable: boolean;
}

export interface TargetTable {
  name: string;
  columns: TargetColumn[];
  /** Empty for an append-only source table: the target is a change log keyed by source version. */
  primaryKey: string[];
  /** The department's grant (`source.db.table`) the table is delivered under; none when it has none (any more). */
  grant?: string | undefined;
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

export interface ApplyResult {
  /** Changes that changed the target. */
  applied: number;
  /** Changes the version guard skipped: the target already held that version or a newer one. */
  stale: number;
}

/**
 * A department's database. Every implementation keeps the same contract, checked by one
 * conformance suite (test/sink-conformance.test.ts) against each:
 * - upsert and delete by primary key, guarded by the source version: a change is written
 *   only if its version is newer than the stored one, so a redelivered or older change
 *   leaves the row as it is;
 * - `softDelete`: a delete keeps the row with `__deleted` true (and the guard keeps it
 *   from coming back through an older change);
 * - a table without a key (append-only source) is a change log: one row per change with
 *   its `__op`, keyed by version, so a redelivered change is appended once;
 * - tables are created on first sight and granted columns added (ALTER TABLE ADD);
 * - `apply` writes one batch in one transaction; a failure is CdcError
 *   TARGET_UNREACHABLE (retry) or TARGET_REJECTED (the data: the caller isolates the row).
 */
export interface Target {
  readonly kind: string;
  connect(): Promise<void>;
  ensureTable(table: TargetTable): Promise<void>;
  apply(table: TargetTable, changes: RowChange[]): Promise<ApplyResult>;
  /** The department's grants changed (granted, revoked): a target holding changes of its own (a queue) drops those of revoked grants. */
  grantsChanged?(department: DepartmentConfig): Promise<void>;
  close(): Promise<void>;
}

/** Bookkeeping columns every target table has besides the granted ones. */
export const TARGET_META = {
  version: '__version',
  sourceTs: '__source_ts',
  syncedAt: '__synced_at',
  op: '__op',
  deleted: '__deleted',
} as const;

/** Data columns of a share schema, in order, without the change metadata fields. */
export function targetColumns(schema: AvroRecordSchema): TargetColumn[] {
  const meta = new Set<string>(Object.values(META_FIELDS));
  return schema.fields
    .filter((f) => !meta.has(f.name))
    .map((f) => {
      const nullable = Array.isArray(f.type) && f.type.includes('null');
      const type = Array.isArray(f.type) ? (f.type.find((t) => t !== 'null') as AvroFieldType) : f.type;
      return { name: f.name, type, nullable };
    });
}

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

/** A change as JSON carries it to endpoints and queues: metadata beside the data values. */
export interface ChangeJson {
  op: string;
  version: string;
  source_ts_ms: string;
  deleted: boolean;
  values: Record<string, unknown>;
}

/** 64-bit integers as text, bytes (encrypted values) as base64; share metadata fields left out of `values`. */
export function changeJson(c: RowChange): ChangeJson {
  const values: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c.values)) if (!k.startsWith('__')) values[k] = typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? v.toString('base64') : v;
  return { op: c.op, version: c.version, source_ts_ms: String(c.sourceTsMs), deleted: c.deleted, values };
}

/** A row's key as text, for grouping: binary key columns by their bytes, not decoded as UTF-8. */
export function keyText(primaryKey: string[], values: Record<string, unknown>): string {
  return JSON.stringify(primaryKey.map((k) => {
    const v = values[k];
    return Buffer.isBuffer(v) ? `b64:${v.toString('base64')}` : String(v);
  }));
}

