import {
  isProtectedClass,
  schemaFingerprint,
  toCanonical,
  type ChangeEvent,
  type ColumnClass,
  type DataKey,
  type Op,
  type Row,
  type SealedImages,
  type TableSchema,
} from '@cityshare/shared';
import { createHmac } from 'node:crypto';
import type { RowsChange } from './binlog-listener.js';
import { changeVersion, rowOp } from './change-rows.js';
import { keyWriterFor, shareKeyMessageKey } from './event-encoder.js';

export interface BuiltEvent {
  /** The event with its public and internal columns. */
  event: ChangeEvent;
  /** Its personal, secret and unclassified columns, sealed with its frame's (raw-frame.ts). */
  secrets: SealedImages | null;
  /** Kafka message key: the primary key, so all changes of a row share a partition. */
  key: string;
}

export interface BuildContext {
  sourceName: string;
  serverId: number;
  /** Column classes per `db.table`, from the pipeline file. */
  classes: (db: string, table: string) => Record<string, ColumnClass>;
  pipelineKey: DataKey;
}

/**
 * The reference form of the reader's events (the reader itself writes their JSON directly
 * with event-encoder.ts, which the tests hold to this byte for byte).
 *
 * Turns one rows event into change events: canonical values, personal and secret
 * columns set apart to be sealed, and a primary-key change split into a delete of the
 * old key and a create of the new one.
 */
export function buildEvents(change: RowsChange, ctx: BuildContext, now = Date.now()): BuiltEvent[] {
  const { schema } = change;
  const classes = ctx.classes(schema.db, schema.table);
  const sealed = schema.columns.filter((c) => isProtectedClass(classes[c.name])).map((c) => c.name);
  const sealedSet = new Set(sealed);
  const image = (raw: Record<string, unknown> | null) => (raw ? splitRow(schema, raw, sealedSet) : null);

  const sealedKey = schema.primaryKey.some((k) => sealed.includes(k));
  const keyFor = (raw: Record<string, unknown>): string => {
    const json = canonicalKey(schema, raw);
    // A protected key column must not appear in clear in the message key either.
    return sealedKey ? createHmac('sha256', ctx.pipelineKey.material).update(json).digest('base64url') : json;
  };
  const events: BuiltEvent[] = [];
  change.rows.forEach((r, row) => {
    const before = image(r.before);
    const after = image(r.after);
    const base = {
      sourceName: ctx.sourceName,
      serverId: ctx.serverId,
      change,
      row,
      now,
      sealed,
    };
    if (change.kind === 'update' && before && after && keyChanged(schema, r.before!, r.after!)) {
      events.push(
        { ...envelope('d', before, null, base), key: keyFor(r.before!) },
        { ...envelope('c', null, after, base), key: keyFor(r.after!) },
      );
    } else {
      const op = rowOp(change.kind, r.after !== null);
      const key = r.shareKey === undefined ? keyFor((r.after ?? r.before)!) : shareKeyMessageKey(ctx.pipelineKey, r.shareKey);
      events.push({ ...envelope(op, before, after, base, r.shareKey), key });
    }
  });
  return events;
}

/** The primary key of a decoded row in canonical JSON: the identity of a row everywhere in the reader. */
export function canonicalKey(schema: TableSchema, raw: Record<string, unknown>): string {
  return keyWriterFor(schema).write(raw);
}

function keyChanged(schema: TableSchema, before: Record<string, unknown>, after: Record<string, unknown>): boolean {
  return schema.primaryKey.some((k) => String(before[k]) !== String(after[k]));
}

interface SplitImage {
  clear: Row;
  /** Protected columns, canonical; sealed as one object per image. */
  secret: Row | null;
}

function splitRow(schema: TableSchema, raw: Record<string, unknown>, sealed: Set<string>): SplitImage {
  const clear: Row = {};
  let secret: Row | null = null;
  for (const col of schema.columns) {
    const value = toCanonical(col.type, raw[col.name]);
    if (sealed.has(col.name)) (secret ??= {})[col.name] = value;
    else clear[col.name] = value;
  }
  return { clear, secret };
}

const schemaRefs = new WeakMap<TableSchema, { ref: string; json: string }>();

/** The fingerprint and JSON of a table schema, computed once per schema object. */
export function schemaRef(schema: TableSchema): { ref: string; json: string } {
  let entry = schemaRefs.get(schema);
  if (!entry) {
    const json = JSON.stringify(schema);
    schemaRefs.set(schema, (entry = { ref: schemaFingerprint(json), json }));
  }
  return entry;
}

/** JSON of an event for a raw topic: the schema by reference (see RawChangeEvent). */
export function serializeEvent(event: ChangeEvent): string {
  return JSON.stringify({ ...event, schema: undefined, schemaRef: schemaRef(event.schema).ref });
}

function envelope(
  op: Op,
  before: SplitImage | null,
  after: SplitImage | null,
  b: { sourceName: string; serverId: number; change: RowsChange; row: number; now: number; sealed: string[] },
  shareKey?: string,
): { event: ChangeEvent; secrets: SealedImages | null } {
  const { change } = b;
  const version = changeVersion(change, b.row);
  const secrets: SealedImages = {};
  if (before?.secret) secrets.before = before.secret;
  if (after?.secret) secrets.after = after.secret;
  if (shareKey !== undefined) secrets.shareKey = shareKey;
  const event: ChangeEvent = {
    op,
    before: before?.clear ?? null,
    after: after?.clear ?? null,
    source: {
      name: b.sourceName,
      serverId: b.serverId,
      gtid: change.gtid,
      file: change.file,
      pos: change.eventPos,
      row: b.row,
      txIndex: change.txOffset + b.row,
      db: change.schema.db,
      table: change.schema.table,
      ts_ms: change.tsMs,
      snapshot: change.kind === 'snapshot' || change.kind === 'repair',
      version,
      ...(change.repair ? { repair: { department: change.repair.department, request: change.repair.request } } : {}),
    },
    ts_ms: b.now,
    schema: change.schema,
    protected: b.sealed,
  };
  return { event, secrets: secrets.before || secrets.after || secrets.shareKey !== undefined ? secrets : null };
}
