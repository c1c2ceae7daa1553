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
 * A department's target at run time (its kind, settings and capabilities: target-definition.ts).
 * Every implementation keeps the same contract, checked by one conformance suite
 * (test/sink-conformance.test.ts) against each — a table target as written below, a stream
 * target (endpoint, broker) by what its receiver gets:
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
  /** Opens its connections (and loads its client library: see target-definition.ts); the sink calls it before anything else. */
  connect(): Promise<void>;
  ensureTable(table: TargetTable): Promise<void>;
  apply(table: TargetTable, changes: RowChange[]): Promise<ApplyResult>;
  /** The department's grants changed (granted, revoked): a target holding changes of its own (a queue) drops those of revoked grants. */
  grantsChanged?(department: DepartmentConfig): Promise<void>;
  close(): Promise<void>;
}

/** A row of a target table as `cdc verify` reads it: each column as its driver reads it (compared through comparable.ts), sealed ones as bytes. */
export interface ReadRow {
  values: Record<string, unknown>;
  version: string;
  /** A soft-deleted row: at the department, it is not there. */
  deleted: boolean;
}

/** What a table target reads back of a department's table (named as the target names it). */
export interface ReadSpec {
  table: string;
  columns: string[];
  primaryKey: string[];
  /** Columns holding department ciphertext: read as bytes. */
  sealed: string[];
}

/**
 * Reading a table target's rows back, as the department holds them: the verifier compares
 * them with policy(source). Reads only, in pages, without locks.
 */
export interface TableReadBack {
  /** false when the department has no such table (nothing delivered yet). */
  exists(table: string): Promise<boolean>;
  /** Every row, soft-deleted ones included, `pageRows` at a time. */
  scan(spec: ReadSpec, onPage: (rows: ReadRow[]) => Promise<void> | void, pageRows?: number): Promise<void>;
  /** The rows of these keys (each key its columns' texts, in key order). */
  byKeys(spec: ReadSpec, keys: string[][]): Promise<ReadRow[]>;
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
