import {
  CdcError,
  META_FIELDS,
  applyMask,
  columnAad,
  type EnvelopeEncryptor,
  openValue,
  sealedEventAad,
  tokenize,
  type CanonicalValue,
  type ChangeEvent,
  type ColumnSchema,
  type DataKey,
  type KeyProvider,
  type Row,
  type SealedImages,
} from '@cityshare/shared';
import type { DepartmentView } from './department-views.js';

export interface ViewKeys {
  /** Opens values the reader sealed under the pipeline key. */
  pipeline: KeyProvider;
  /** Envelope-encrypts for the department (data keys wrapped by its key-encryption key). */
  department: EnvelopeEncryptor;
  /** Tokenizes for the department's token domain. */
  token: DataKey;
}

export interface ShareRecord {
  key: string;
  value: Record<string, unknown>;
}

/**
 * Applies one department's grant to one change event: keeps only granted columns, and
 * passes, masks, tokenizes or encrypts each as the grant says. Sealed values are opened
 * only for columns the department receives, and only in memory.
 */
export function projectEvent(event: ChangeEvent, view: DepartmentView, keys: ViewKeys): ShareRecord {
  const { schema } = event;
  const side = event.op === 'd' ? 'before' : 'after';
  const image = event[side];
  if (!image) throw new CdcError('RECORD_INVALID', `change event ${event.source.version} has no ${side} image`);
  const opened: Row = event.sealed
    ? ((openValue(keys.pipeline, event.sealed, sealedEventAad(schema.db, schema.table, event.source.version)) as SealedImages)[side] ?? {})
    : {};
  const columns = new Map(schema.columns.map((c) => [c.name, c]));
  const value: Record<string, unknown> = {};
  const key: Row = {};
  for (const rule of view.rules) {
    const column = columns.get(rule.column);
    if (!column) continue; // granted column no longer in the table
    const aad = columnAad(schema.db, schema.table, rule.column);
    const plain: CanonicalValue = (rule.column in opened ? opened[rule.column] : image[rule.column]) ?? null;
    let out: unknown;
    if (plain === null) out = null;
    else if (rule.action === 'pass') out = avroValue(column, plain);
    else if (rule.action === 'mask') out = applyMask(rule.mask, plain);
    else if (rule.action === 'tokenize') out = tokenize(keys.token, plain);
    else out = keys.department.encrypt(Buffer.from(JSON.stringify(plain), 'utf8'), aad);
    value[rule.column] = out;
    if (schema.primaryKey.includes(rule.column)) {
      if (rule.action !== 'pass' && rule.action !== 'tokenize') {
        throw new CdcError('CONFIG_INVALID', `key column ${schema.db}.${schema.table}.${rule.column} is granted to ${view.department} as ${rule.action}; key columns must be pass or tokenize so rows can be matched`);
      }
      key[rule.column] = rule.action === 'pass' ? plain : (out as string);
    }
  }
  for (const k of schema.primaryKey) {
    if (!(k in key)) throw new CdcError('CONFIG_INVALID', `key column ${schema.db}.${schema.table}.${k} is not granted to ${view.department}; grant it as pass or tokenize`);
  }
  value[META_FIELDS.op] = event.op;
  value[META_FIELDS.version] = event.source.version;
  value[META_FIELDS.sourceTsMs] = BigInt(event.source.ts_ms);
  value[META_FIELDS.deleted] = event.op === 'd';
  return { key: JSON.stringify(key), value };
}

/** Canonical value to the JS value avsc expects for the column's Avro type (see share-schema.ts). */
function avroValue(column: ColumnSchema, v: Exclude<CanonicalValue, null>): unknown {
  const t = column.type;
  switch (t.kind) {
    case 'int': return t.bits === 32 && t.unsigned ? BigInt(v as number) : v;
    case 'bigint': return t.unsigned ? String(v) : BigInt(v as string);
    case 'bytes': return Buffer.from(v as string, 'base64');
    default: return v;
  }
}
