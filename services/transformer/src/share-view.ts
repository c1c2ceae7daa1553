import {
  CdcError,
  META_FIELDS,
  applyRule,
  canonicalKeyValue,
  isCdcError,
  isProtectedClass,
  rowKeyOf,
  type CanonicalValue,
  type ChangeEvent,
  type CipherSuiteName,
  type ColumnClass,
  type ColumnSchema,
  type DataKey,
  type EnvelopeEncryptor,
  type Op,
  type Row,
  type RowFilter,
  type SealedImages,
  type TableSchema,
} from '@cityshare/shared';
import type { DepartmentView } from './department-views.js';

export interface ViewKeys {
  /** Envelope encryptor for the department and a cipher suite. */
  encryptor: (suite: CipherSuiteName) => EnvelopeEncryptor;
  /** Key of a token domain (undefined: the department's own). */
  token: (domain: string | undefined) => DataKey;
}

export interface ShareRecord {
  key: string;
  value: Record<string, unknown>;
}

/** Both row images with every column: clear ones as they travel, sealed ones opened (in memory only). */
export interface RowImages {
  before: Row | null;
  after: Row | null;
}

/**
 * An event's clear columns and its opened sealed ones (RawFrame.secretsOf), for every
 * department and rule that needs them. The reader writes every column of the event's
 * schema into each image, clear or sealed: an image without some of them was altered (its
 * sealed columns stripped, say) and is refused rather than delivered with nulls. A clear
 * image holding a column that `classes` (the pipeline's, in force) protect — personal,
 * secret or unclassified — is refused as RECORD_FORGED: the reader's sealing was bypassed.
 */
export function openImages(event: ChangeEvent, sealed: SealedImages | null, classes: Record<string, ColumnClass>): RowImages {
  const { db, table, version } = event.source;
  for (const side of ['before', 'after'] as const) {
    const inClear = Object.keys(event[side] ?? {}).filter((c) => isProtectedClass(classes[c]));
    if (inClear.length > 0) {
      throw new CdcError('RECORD_FORGED', `change event ${db}.${table}@${version} holds ${inClear.join(', ')} in clear in its ${side} image, which the pipeline seals: it was not written by the reader's policy`);
    }
  }
  const images: RowImages = {
    before: event.before ? { ...event.before, ...sealed?.before } : null,
    after: event.after ? { ...event.after, ...sealed?.after } : null,
  };
  for (const side of ['before', 'after'] as const) {
    const image = images[side];
    const missing = image ? event.schema.columns.filter((c) => !(c.name in image)).map((c) => c.name) : [];
    if (missing.length > 0) {
      throw new CdcError('RECORD_INVALID', `change event ${db}.${table}@${version} lacks ${missing.join(', ')} of its schema in its ${side} image: the raw record was altered`);
    }
  }
  return images;
}

/**
 * Applies one department's grant to one change: the row filter first (a row entering the
 * department's view arrives as a create, a row leaving it as a delete), then only the
 * granted columns, each passed, masked, tokenized or encrypted as the grant says.
 * Returns null when the row is outside the view before and after the change. A repair's
 * delete passes the filter whatever it says now: the department holds the row.
 */
export function projectEvent(event: ChangeEvent, images: RowImages, view: DepartmentView, keys: ViewKeys): ShareRecord | null {
  const { schema } = event;
  const seen = event.source.repair !== undefined && event.op === 'd' ? REPAIR_DELETE : filtered(event.op, images, view.filter);
  if (!seen) return null;
  const image = images[seen.side];
  if (!image) throw new CdcError('RECORD_INVALID', `change event ${event.source.version} has no ${seen.side} image`);
  const columns = columnsOf(schema);
  const value: Record<string, unknown> = {};
  const key: Row = {};
  const toEncrypt: Array<{ column: string; suite: CipherSuiteName; plain: CanonicalValue }> = [];
  for (const rule of view.rules) {
    const column = columns.get(rule.column);
    if (!column) continue; // granted column no longer in the table
    const plain: CanonicalValue = image[rule.column] ?? null;
    let out: unknown = null;
    if (plain !== null) {
      // The rule's text (mask, token), or the value itself: passed as it is, or encrypted below once the row's key is known.
      const applied = applyRule(rule, plain, keys.token);
      if (applied.as === 'text') out = applied.text;
      else if (rule.action === 'encrypt') toEncrypt.push({ column: rule.column, suite: rule.suite, plain });
      else out = avroValue(column, plain);
    }
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
  // Encrypted once the row's key is known: each value is bound to its source, department, column and row.
  const rowKey = rowKeyOf(key, event.source.version);
  for (const { column, suite, plain } of toEncrypt) {
    const binding = { source: event.source.name, department: view.department, db: schema.db, table: schema.table, column, key: rowKey };
    value[column] = keys.encryptor(suite).encrypt(Buffer.from(JSON.stringify(plain), 'utf8'), binding);
  }
  return { key: JSON.stringify(key), value: withMeta(value, seen.op, event) };
}

const REPAIR_DELETE = { op: 'd', side: 'before' } as const;

const columnMaps = new WeakMap<TableSchema, Map<string, ColumnSchema>>();

/** A table schema's columns by name, made once per schema (the same object for all its events). */
function columnsOf(schema: TableSchema): Map<string, ColumnSchema> {
  let columns = columnMaps.get(schema);
  if (!columns) columnMaps.set(schema, (columns = new Map(schema.columns.map((c) => [c.name, c]))));
  return columns;
}

/**
 * A repair's delete of a department row by the key the department holds (`shareKey`, the
 * share record's message key JSON): for a row the reader cannot name at the source, its key
 * columns tokenized. The key fields come from it, typed as the contract types them (a
 * passed column canonicalized by its source type, a token as it is); every other field is
 * null. Its message key is that key as every record of the row has it. RECORD_INVALID when
 * it is not an object of exactly the department's key columns.
 */
export function projectShareKeyDelete(event: ChangeEvent, shareKey: string, view: DepartmentView): ShareRecord {
  const { schema } = event;
  const invalid = (why: string) => new CdcError('RECORD_INVALID', `repair delete ${event.source.version} of ${schema.db}.${schema.table} for ${view.department}: ${why}`);
  if (event.source.repair === undefined || event.op !== 'd') throw invalid('a share key travels only in a repair\'s delete');
  let given: unknown;
  try {
    given = JSON.parse(shareKey);
  } catch {
    given = undefined;
  }
  if (typeof given !== 'object' || given === null || Array.isArray(given)) throw invalid('its share key is not a JSON object');
  const named = given as Record<string, unknown>;
  const columns = columnsOf(schema);
  const value: Record<string, unknown> = {};
  const key: Row = {};
  for (const rule of view.rules) {
    const column = columns.get(rule.column);
    if (!column) continue;
    value[rule.column] = null;
    if (!schema.primaryKey.includes(rule.column)) continue;
    const v = named[rule.column];
    if (v === null || v === undefined) throw invalid(`its share key lacks key column ${rule.column}`);
    if (rule.action === 'pass') {
      let canonical: CanonicalValue;
      try {
        canonical = canonicalKeyValue(column.type, v);
      } catch (err) {
        if (!isCdcError(err, 'RECORD_INVALID')) throw err;
        throw invalid(`its share key's ${rule.column} is not a value of its type (${column.sourceType})`);
      }
      key[rule.column] = canonical;
      value[rule.column] = avroValue(column, canonical!);
    } else if (rule.action === 'tokenize') {
      if (typeof v !== 'string') throw invalid(`its share key's ${rule.column} is not a token`);
      key[rule.column] = v;
      value[rule.column] = v;
    } else {
      throw new CdcError('CONFIG_INVALID', `key column ${schema.db}.${schema.table}.${rule.column} is granted to ${view.department} as ${rule.action}; key columns must be pass or tokenize so rows can be matched`);
    }
  }
  const extra = Object.keys(named).filter((k) => !(k in key));
  if (extra.length > 0) throw invalid(`its share key names ${extra.join(', ')}, not key columns the department receives`);
  for (const k of schema.primaryKey) {
    if (!(k in key)) throw new CdcError('CONFIG_INVALID', `key column ${schema.db}.${schema.table}.${k} is not granted to ${view.department}; grant it as pass or tokenize`);
  }
  return { key: JSON.stringify(key), value: withMeta(value, 'd', event) };
}

/** The change metadata every share record carries. */
function withMeta(value: Record<string, unknown>, op: Op, event: ChangeEvent): Record<string, unknown> {
  value[META_FIELDS.op] = op;
  value[META_FIELDS.version] = event.source.version;
  value[META_FIELDS.sourceTsMs] = BigInt(event.source.ts_ms);
  value[META_FIELDS.deleted] = op === 'd';
  return value;
}

/** The change as the department sees it through its row filter, and the image it is built from. */
function filtered(op: Op, images: RowImages, filter: RowFilter | undefined): { op: Op; side: 'before' | 'after' } | null {
  if (!filter) return { op, side: op === 'd' ? 'before' : 'after' };
  const was = images.before !== null && filter.matches(images.before);
  const is = images.after !== null && filter.matches(images.after);
  if (op === 'd') return was ? { op, side: 'before' } : null;
  if (op === 'c' || op === 'r') return is ? { op, side: 'after' } : null;
  if (was && is) return { op, side: 'after' };
  if (is) return { op: 'c', side: 'after' }; // the row enters the view
  if (was) return { op: 'd', side: 'before' }; // the row leaves it
  return null;
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
