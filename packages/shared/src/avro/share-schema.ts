import type { LogicalType } from '../column-types.js';
import type { TableSchema } from '../change-event.js';
import type { ColumnRule } from '../policy/grant-policy.js';
import { LOGICAL } from './logical-types.js';

/**
 * The Avro contract of one department's view of one table: the granted columns in
 * source order, typed by what the grant does to them, plus change metadata fields.
 * Keys are never null; other columns are nullable with a null default, so adding a
 * granted column later is a BACKWARD-compatible change.
 */
export type AvroFieldType = string | Record<string, unknown> | Array<string | Record<string, unknown>>;

export interface AvroField {
  name: string;
  type: AvroFieldType;
  default?: unknown;
  doc?: string;
}

export interface AvroRecordSchema {
  type: 'record';
  name: string;
  namespace: string;
  doc: string;
  fields: AvroField[];
  'x-primary-key': string[];
}

export const META_FIELDS = {
  op: '__op',
  version: '__version',
  sourceTsMs: '__source_ts_ms',
  deleted: '__deleted',
} as const;

/** Avro type of a column delivered as it is. */
export function avroTypeOf(type: LogicalType): AvroFieldType {
  switch (type.kind) {
    case 'int': return type.bits === 32 && type.unsigned ? 'long' : 'int';
    case 'bigint': return type.unsigned ? { type: 'bytes', logicalType: LOGICAL.decimal, precision: 20, scale: 0 } : 'long';
    case 'decimal': return { type: 'bytes', logicalType: LOGICAL.decimal, precision: type.precision, scale: type.scale };
    case 'float': return 'float';
    case 'double': return 'double';
    case 'bool': return 'boolean';
    case 'year': return 'int';
    case 'date': return { type: 'int', logicalType: LOGICAL.date };
    case 'datetime': return { type: 'long', logicalType: LOGICAL.localTimestampMicros };
    case 'timestamp': return { type: 'long', logicalType: LOGICAL.timestampMicros };
    case 'time': return { type: 'string', logicalType: LOGICAL.mysqlTime };
    case 'json': return { type: 'string', logicalType: LOGICAL.json };
    case 'bytes': return 'bytes';
    case 'bit': case 'string': case 'enum': case 'set': case 'uuid': case 'inet': case 'geometry':
      return 'string';
  }
}

const SEALED: AvroFieldType = { type: 'bytes', logicalType: LOGICAL.sealed };

function avroName(s: string): string {
  return s.replace(/[^A-Za-z0-9_]/g, '_').replace(/^([0-9])/, '_$1');
}

export function deriveShareSchema(department: string, schema: TableSchema, rules: ColumnRule[]): AvroRecordSchema {
  const byColumn = new Map(rules.map((r) => [r.column, r]));
  const fields: AvroField[] = [];
  for (const column of schema.columns) {
    const rule = byColumn.get(column.name);
    if (!rule) continue;
    const type: AvroFieldType =
      rule.action === 'pass' ? avroTypeOf(column.type) : rule.action === 'encrypt' ? SEALED : 'string';
    const isKey = schema.primaryKey.includes(column.name);
    fields.push(
      isKey
        ? { name: column.name, type, doc: `${column.sourceType}; ${rule.action}` }
        : { name: column.name, type: ['null', type] as AvroFieldType, default: null, doc: `${column.sourceType}; ${rule.action}` },
    );
  }
  fields.push(
    { name: META_FIELDS.op, type: { type: 'enum', name: 'Op', symbols: ['c', 'u', 'd', 'r'] }, doc: 'create, update, delete, read (snapshot)' },
    { name: META_FIELDS.version, type: 'string', doc: 'sortable source position; newer is greater' },
    { name: META_FIELDS.sourceTsMs, type: 'long', doc: 'commit time at the source, ms since epoch' },
    { name: META_FIELDS.deleted, type: 'boolean', doc: 'true when the row was deleted at the source' },
  );
  return {
    type: 'record',
    name: avroName(schema.table),
    namespace: `cityshare.share.${avroName(department)}.${avroName(schema.db)}`,
    doc: `Department ${department}'s view of ${schema.db}.${schema.table}`,
    fields,
    'x-primary-key': schema.primaryKey,
  };
}
