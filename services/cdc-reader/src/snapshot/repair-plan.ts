import { CdcError, isCdcError, sourceKeyValue, type TableSchema } from '@cityshare/shared';
import { canonicalKey } from '../event-builder.js';
import type { RepairSignal } from '../reader-signal.js';
import type { RawRow } from './snapshotter.js';

/** One source key a repair reads: its key columns as the source returns them, and its canonical JSON (the row's identity in the reader). */
export interface RepairKey {
  key: string;
  values: RawRow;
}

/** A repair signal checked against its table and turned into source keys (key-repair.ts runs it). */
export interface RepairPlan {
  /** `db.table` */
  table: string;
  department: string;
  request: string;
  /** The table's primary key the keys name (a key changed by DDL since stops the repair). */
  primaryKey: string[];
  /** Keys to read, each once (the signal's keys and deletes): a row found is delivered as it is. */
  keys: RepairKey[];
  /** Canonical keys (of `keys`) delivered as deletes when the source has no such row. */
  deletes: Set<string>;
  /** Department keys (share message key JSON) deleted at the department as they are. */
  shareKeys: string[];
}

/**
 * Checks a repair signal against the table it names and the departments granted it, and
 * turns its keys into source keys: every key names exactly the table's primary-key columns,
 * each value canonicalized by its column's type (a department's text of it too), so the
 * events built from it carry the row's own Kafka key. Throws SIGNAL_REFUSED saying why,
 * never with a key value.
 */
export function planRepair(signal: RepairSignal, schema: TableSchema | undefined, granted: (department: string) => boolean): RepairPlan {
  const refuse = (why: string) => new CdcError('SIGNAL_REFUSED', `repair ${signal.request} of ${signal.table} for ${signal.department} refused: ${why}`);
  if (!schema) throw refuse('the table is not registered with this source');
  if (schema.primaryKey.length === 0) throw refuse('the table has no primary key (an append-only change log is not repaired by key)');
  if (!granted(signal.department)) throw refuse(`department ${signal.department} has no grant on the table`);
  const keyColumns = schema.primaryKey.map((name) => schema.columns.find((c) => c.name === name)!);
  const byKey = new Map<string, RepairKey>();
  const toKey = (given: Record<string, unknown>, i: number, list: string): RepairKey => {
    const names = Object.keys(given);
    if (names.length !== keyColumns.length || keyColumns.some((c) => !(c.name in given))) {
      throw refuse(`${list}[${i}] names columns ${names.join(', ') || 'none'}; the primary key is ${schema.primaryKey.join(', ')}`);
    }
    const values: RawRow = {};
    for (const column of keyColumns) {
      const value = given[column.name];
      if (value === null || value === undefined) throw refuse(`${list}[${i}].${column.name} is null; a primary-key column never is`);
      try {
        values[column.name] = sourceKeyValue(column.type, value);
      } catch (err) {
        if (!isCdcError(err, 'RECORD_INVALID')) throw err;
        throw refuse(`${list}[${i}].${column.name} is not a value of its type (${column.sourceType})`);
      }
    }
    return { key: canonicalKey(schema, values), values };
  };
  const deletes = new Set<string>();
  signal.keys.forEach((given, i) => {
    const k = toKey(given, i, 'keys');
    byKey.set(k.key, k);
  });
  signal.deletes.forEach((given, i) => {
    const k = toKey(given, i, 'deletes');
    byKey.set(k.key, k);
    deletes.add(k.key);
  });
  signal.shareKeys.forEach((shareKey, i) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(shareKey);
    } catch {
      parsed = undefined;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw refuse(`shareKeys[${i}] is not the JSON object of a share record's key`);
  });
  return { table: signal.table, department: signal.department, request: signal.request, primaryKey: schema.primaryKey, keys: [...byKey.values()], deletes, shareKeys: [...new Set(signal.shareKeys)] };
}

/** A before image of nulls but for the key columns given: every column of the schema is in it, as the transformer requires. */
export function keyImage(schema: TableSchema, values: RawRow): RawRow {
  const image: RawRow = {};
  for (const c of schema.columns) image[c.name] = values[c.name] ?? null;
  return image;
}
