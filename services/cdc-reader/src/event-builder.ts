import {
  columnAad,
  isProtectedClass,
  rowVersion,
  sealValue,
  toCanonical,
  type ChangeEvent,
  type ColumnClass,
  type DataKey,
  type Op,
  type Row,
  type TableSchema,
} from '@cityshare/shared';
import { createHmac } from 'node:crypto';
import type { RowsChange } from './binlog-listener.js';

export interface BuiltEvent {
  event: ChangeEvent;
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
 * Turns one rows event into change events: canonical values, personal and secret
 * columns sealed under the pipeline key, and a primary-key change split into a delete
 * of the old key and a create of the new one.
 */
export function buildEvents(change: RowsChange, ctx: BuildContext, now = Date.now()): BuiltEvent[] {
  const { schema } = change;
  const classes = ctx.classes(schema.db, schema.table);
  const sealed = schema.columns.filter((c) => isProtectedClass(classes[c.name])).map((c) => c.name);
  const image = (raw: Record<string, unknown> | null): Row | null => (raw ? canonicalRow(schema, raw, sealed, ctx) : null);

  const sealedKey = schema.primaryKey.some((k) => sealed.includes(k));
  const keyFor = (raw: Record<string, unknown>): string => {
    const key: Row = {};
    for (const k of schema.primaryKey) key[k] = toCanonical(schema.columns.find((c) => c.name === k)!.type, raw[k]);
    const json = JSON.stringify(key);
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
        { event: envelope('d', before, null, base), key: keyFor(r.before!) },
        { event: envelope('c', null, after, base), key: keyFor(r.after!) },
      );
    } else {
      const op: Op = change.kind === 'insert' ? 'c' : change.kind === 'delete' ? 'd' : 'u';
      events.push({ event: envelope(op, before, after, base), key: keyFor((r.after ?? r.before)!) });
    }
  });
  return events;
}

function keyChanged(schema: TableSchema, before: Record<string, unknown>, after: Record<string, unknown>): boolean {
  return schema.primaryKey.some((k) => String(before[k]) !== String(after[k]));
}

function canonicalRow(schema: TableSchema, raw: Record<string, unknown>, sealed: string[], ctx: BuildContext): Row {
  const row: Row = {};
  for (const col of schema.columns) {
    const value = toCanonical(col.type, raw[col.name]);
    row[col.name] = value !== null && sealed.includes(col.name)
      ? sealValue(ctx.pipelineKey, value, columnAad(schema.db, schema.table, col.name))
      : value;
  }
  return row;
}

function envelope(
  op: Op,
  before: Row | null,
  after: Row | null,
  b: { sourceName: string; serverId: number; change: RowsChange; row: number; now: number; sealed: string[] },
): ChangeEvent {
  const { change } = b;
  return {
    op,
    before,
    after,
    source: {
      name: b.sourceName,
      serverId: b.serverId,
      gtid: change.gtid,
      file: change.file,
      pos: change.eventPos,
      row: b.row,
      db: change.schema.db,
      table: change.schema.table,
      ts_ms: change.tsMs,
      snapshot: false,
      version: rowVersion({ file: change.file, eventPos: change.eventPos, row: b.row }),
    },
    ts_ms: b.now,
    schema: change.schema,
    protected: b.sealed,
  };
}
