import { createHmac } from 'node:crypto';
import {
  isProtectedClass,
  toCanonical,
  type CanonicalValue,
  type ColumnClass,
  type DataKey,
  type LogicalType,
  type Op,
  type TableSchema,
} from '@cityshare/shared';
import type { RowsChange } from './binlog-listener.js';
import { changeVersion, rowOp } from './change-rows.js';

/**
 * The raw-topic JSON of change events written directly, without building event objects:
 * byte for byte what `serializeEvent(buildEvents(...))` gives for an event and
 * `JSON.stringify` for its secrets (event-builder.ts, the reference the tests compare
 * against), at a fraction of the allocations. Per table schema and classification the
 * column order, the JSON of names and the sealed set are worked out once. The secrets are
 * sealed per frame by the RawFrameWriter.
 */

type Image = Record<string, unknown>;

/** The JSON of an image's clear columns and of its protected ones (null: none). */
interface SplitJson {
  clear: string;
  secret: string | null;
}

/** Characters JSON.stringify writes escaped (lone surrogates too; a string holding any takes the slow path). */
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** JSON of a canonical value, as JSON.stringify writes it. */
function jsonValue(v: CanonicalValue): string {
  switch (typeof v) {
    case 'string':
      return NEEDS_ESCAPE.test(v) ? JSON.stringify(v) : `"${v}"`;
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    default:
      return 'null';
  }
}

/** One column of an object written in JSON, in the order JSON.stringify would visit it. */
interface Field {
  /** Index in schema.columns (the image's values are converted in that order). */
  index: number;
  /** `"name":` (with a leading comma after the first field). */
  prefix: string;
}

/**
 * The fields of an object holding `names` in this insertion order, in the order its
 * JSON lists them (a JS object lists integer-like keys first; `__proto__` is no own key).
 */
function jsonFields(columns: string[], names: string[]): Field[] {
  const probe: Record<string, number> = {};
  for (const n of names) probe[n] = columns.indexOf(n);
  return Object.keys(probe).map((name, i) => ({ index: probe[name]!, prefix: `${i > 0 ? ',' : ''}${JSON.stringify(name)}:` }));
}

function objectJson(fields: Field[], values: string[]): string {
  let out = '{';
  for (let i = 0; i < fields.length; i++) out += fields[i]!.prefix + values[fields[i]!.index]!;
  return out + '}';
}

/** canonicalKey (event-builder.ts) of one table schema: the primary key of a row image in canonical JSON. */
export class KeyWriter {
  private readonly columns: Array<{ name: string; type: LogicalType }>;
  private readonly fields: Field[];
  private readonly values: string[];

  constructor(schema: TableSchema) {
    this.columns = schema.primaryKey.map((k) => {
      const column = schema.columns.find((c) => c.name === k);
      if (!column) throw new TypeError(`primary key column ${k} is not a column of ${schema.db}.${schema.table}`);
      return { name: k, type: column.type };
    });
    this.fields = jsonFields(schema.primaryKey, schema.primaryKey);
    this.values = new Array<string>(this.columns.length);
  }

  write(raw: Image): string {
    for (let i = 0; i < this.columns.length; i++) this.values[i] = jsonValue(toCanonical(this.columns[i]!.type, raw[this.columns[i]!.name]));
    return objectJson(this.fields, this.values);
  }
}

/**
 * The Kafka key of a repair's delete by a department's share key: keyed by the pipeline key,
 * as a protected primary key is, since the share key may hold a value passed in clear to
 * that department. Its partition is unrelated to the row's; the version guard orders it.
 */
export function shareKeyMessageKey(key: DataKey, shareKey: string): string {
  return createHmac('sha256', key.material).update(`shareKey\0${shareKey}`).digest('base64url');
}

const keyWriters = new WeakMap<TableSchema, KeyWriter>();

export function keyWriterFor(schema: TableSchema): KeyWriter {
  let writer = keyWriters.get(schema);
  if (!writer) keyWriters.set(schema, (writer = new KeyWriter(schema)));
  return writer;
}

/** Compiled writer for one table schema under one classification and pipeline key (protected message keys are hashed with it). */
export class TableEncoder {
  readonly sealedNames: string[];
  private readonly types: LogicalType[];
  private readonly names: string[];
  private readonly clear: Field[];
  private readonly secret: Field[] | null;
  private readonly keys: KeyWriter;
  private readonly sealedKey: boolean;
  private readonly protectedJson: string;
  private readonly values: string[];

  constructor(
    readonly schema: TableSchema,
    readonly classes: Record<string, ColumnClass>,
    readonly key: DataKey,
  ) {
    this.names = schema.columns.map((c) => c.name);
    this.types = schema.columns.map((c) => c.type);
    this.sealedNames = schema.columns.filter((c) => isProtectedClass(classes[c.name])).map((c) => c.name);
    const sealed = new Set(this.sealedNames);
    this.clear = jsonFields(this.names, this.names.filter((n) => !sealed.has(n)));
    this.secret = this.sealedNames.length > 0 ? jsonFields(this.names, this.names.filter((n) => sealed.has(n))) : null;
    this.keys = keyWriterFor(schema);
    this.sealedKey = schema.primaryKey.some((k) => sealed.has(k));
    this.protectedJson = JSON.stringify(this.sealedNames);
    this.values = new Array<string>(this.names.length);
  }

  /** The Kafka key of a row image (hashed when a key column is protected). */
  messageKey(raw: Image): string {
    const json = this.keys.write(raw);
    return this.sealedKey ? createHmac('sha256', this.key.material).update(json).digest('base64url') : json;
  }

  /** Clear JSON and secret JSON of one image. */
  private image(raw: Image): SplitJson {
    const values = this.values;
    for (let i = 0; i < this.names.length; i++) values[i] = jsonValue(toCanonical(this.types[i]!, raw[this.names[i]!]));
    return { clear: objectJson(this.clear, values), secret: this.secret ? objectJson(this.secret, values) : null };
  }

  /**
   * Writes the events of one rows change: `emit(key, json, secrets, op, row)` per event, in
   * order, `secrets` the JSON of its protected columns (null: none), `row` its index in the
   * change. The parts shared by every row of the change (source block, version prefix, the
   * tail after the version) are written once per change.
   */
  encode(change: RowsChange, sourceName: string, serverId: number, schemaRef: string, now: number, emit: (key: string, json: string, secrets: string | null, op: Op, row: number) => void): void {
    const { schema } = change;
    const versionHead = changeVersion(change, 0).slice(0, -6);
    const sourceHead =
      `,"source":{"name":${JSON.stringify(sourceName)},"serverId":${jsonValue(serverId)},"gtid":${jsonValue(change.gtid)},"file":${JSON.stringify(change.file)},"pos":${jsonValue(change.eventPos)},"row":`;
    const sourceMid = `,"db":${JSON.stringify(schema.db)},"table":${JSON.stringify(schema.table)},"ts_ms":${jsonValue(change.tsMs)},"snapshot":${change.kind === 'snapshot' || change.kind === 'repair'},"version":"${versionHead}`;
    const repair = change.repair ? `,"repair":${JSON.stringify({ department: change.repair.department, request: change.repair.request })}` : '';
    const tail = `"${repair}},"ts_ms":${jsonValue(now)},"protected":${this.protectedJson},"schemaRef":${JSON.stringify(schemaRef)}}`;
    const rows = change.rows;
    const one = (op: Op, before: SplitJson | null, after: SplitJson | null, row: number): string =>
      `{"op":"${op}","before":${before ? before.clear : 'null'},"after":${after ? after.clear : 'null'}${sourceHead}${row},"txIndex":${change.txOffset + row}${sourceMid}${String(row).padStart(6, '0')}${tail}`;
    const secrets = (before: SplitJson | null, after: SplitJson | null): string | null => {
      const sb = before?.secret ?? null;
      const sa = after?.secret ?? null;
      if (sb === null && sa === null) return null;
      return sb !== null ? (sa !== null ? `{"before":${sb},"after":${sa}}` : `{"before":${sb}}`) : `{"after":${sa}}`;
    };
    // A repair's delete by share key: the share key sealed beside the before image's protected nulls.
    const shareKeySecrets = (before: SplitJson | null, shareKey: string): string => {
      const sb = before?.secret ?? null;
      return `{${sb !== null ? `"before":${sb},` : ''}"shareKey":${JSON.stringify(shareKey)}}`;
    };
    for (let row = 0; row < rows.length; row++) {
      const r = rows[row]!;
      const before = r.before ? this.image(r.before) : null;
      const after = r.after ? this.image(r.after) : null;
      if (change.kind === 'update' && before && after && this.keyChanged(r.before!, r.after!)) {
        emit(this.messageKey(r.before!), one('d', before, null, row), secrets(before, null), 'd', row);
        emit(this.messageKey(r.after!), one('c', null, after, row), secrets(null, after), 'c', row);
      } else if (r.shareKey === undefined) {
        const op = rowOp(change.kind, r.after !== null);
        emit(this.messageKey((r.after ?? r.before)!), one(op, before, after, row), secrets(before, after), op, row);
      } else {
        emit(shareKeyMessageKey(this.key, r.shareKey), one('d', before, null, row), shareKeySecrets(before, r.shareKey), 'd', row);
      }
    }
  }

  private keyChanged(before: Image, after: Image): boolean {
    for (const k of this.schema.primaryKey) if (String(before[k]) !== String(after[k])) return true;
    return false;
  }
}

const encoders = new WeakMap<TableSchema, TableEncoder>();

/** The encoder of a schema under these classes and key, compiled once and reused while they hold. */
export function encoderFor(schema: TableSchema, classes: Record<string, ColumnClass>, key: DataKey): TableEncoder {
  const cached = encoders.get(schema);
  if (cached && cached.classes === classes && cached.key === key) return cached;
  const encoder = new TableEncoder(schema, classes, key);
  encoders.set(schema, encoder);
  return encoder;
}
