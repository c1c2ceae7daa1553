/**
 * The change event the reader publishes and the transformer reads: its envelope (op, before,
 * after, source position, schema) and the table schema it refers to. Not to be confused with
 * envelope encryption of department values (crypto/envelope.ts).
 */
import { createHash } from 'node:crypto';
import type { CanonicalValue, ColumnSchema } from './column-types.js';

export type Row = Record<string, CanonicalValue>;

/** c = create, u = update, d = delete, r = read (snapshot). */
export type Op = 'c' | 'u' | 'd' | 'r';

export interface TableSchema {
  db: string;
  table: string;
  columns: ColumnSchema[];
  primaryKey: string[];
}

export interface SourceInfo {
  /** The pipeline's name for the source system. */
  name: string;
  serverId: number;
  gtid: string | null;
  file: string;
  pos: number;
  /** Index of the row within its rows event. */
  row: number;
  /** Index of the row change within its transaction (0-based). */
  txIndex: number;
  db: string;
  table: string;
  /** Commit time at the source, milliseconds since the epoch. */
  ts_ms: number;
  snapshot: boolean;
  /** Sortable position of this row change; see position.ts. */
  version: string;
  /** Set on the events of a repair (`cdc repair`): delivered to this department only. */
  repair?: RepairTag;
}

/** Whom a repair's events are for, and the request they answer (for logs and the ledger). */
export interface RepairTag {
  department: string;
  request: string;
}

/**
 * A change event, Debezium-shaped. `before`/`after` hold the public and internal
 * columns; the personal, secret and unclassified columns of each image (`SealedImages`)
 * travel sealed under the pipeline key: in a raw frame, those of all its events as one
 * ciphertext (raw-frame.ts); in an event on its own (a dead letter, or a raw topic written
 * by an earlier reader), in the event's `sealed`.
 */
export interface ChangeEvent {
  op: Op;
  before: Row | null;
  after: Row | null;
  /** An event on its own: its sealed images, bound to `sealedEventAad` (null: none). Absent in a frame. */
  sealed?: string | null;
  source: SourceInfo;
  /** When the reader built the event. */
  ts_ms: number;
  /** Column types of the table when the change was written. */
  schema: TableSchema;
  /** Names of the columns that travel in `sealed`. */
  protected: string[];
}

/** What `sealed` holds once opened. */
export interface SealedImages {
  before?: Row;
  after?: Row;
  /**
   * A repair's delete of a department row by its key as the department holds it (the share
   * topic's message key JSON, tokens included): sealed, since a key column may be passed in clear to that department.
   */
  shareKey?: string;
}

/** Associated data of an event's sealed images: binds them to their table and event. */
export function sealedEventAad(db: string, table: string, version: string): string {
  return `${db}.${table}@${version}`;
}

export function keyOf(schema: TableSchema, row: Row): Row {
  const key: Row = {};
  for (const col of schema.primaryKey) key[col] = row[col] ?? null;
  return key;
}

/**
 * A change event as it travels on a raw topic: the table schema is referenced by its
 * fingerprint; the schema itself is on `<prefix>.table-schemas`, written before the
 * first event that references it. Events stay small, and the topic is the history of
 * every table schema the reader has seen.
 */
export type RawChangeEvent = Omit<ChangeEvent, 'schema'> & { schemaRef: string; schema?: TableSchema };

/** Stable fingerprint of a table schema (same schema, same reference). */
export function schemaFingerprint(schemaJson: string): string {
  return createHash('sha256').update(schemaJson).digest('base64url').slice(0, 22);
}
