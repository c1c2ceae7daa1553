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
}

/**
 * A change event, Debezium-shaped. `before`/`after` hold the public and internal
 * columns; the personal, secret and unclassified columns of each image travel as one
 * ciphertext under the pipeline key in `sealed`: `{ before?: {...}, after?: {...} }` with
 * those columns, one AEAD operation per event.
 */
export interface ChangeEvent {
  op: Op;
  before: Row | null;
  after: Row | null;
  sealed: string | null;
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

/** Kafka header of a raw-topic frame: how many change events it holds. */
export const RAW_FRAME_HEADER = 'cityshare-frame';

/**
 * The change events of one raw-topic message. The reader packs the events of one
 * partition into frames: a JSON array of events in order (see the cdc-reader's
 * RawPublisher). A message holding a single event object is read as a frame of one.
 * Throws on anything that is not JSON.
 */
export function decodeRawMessage(value: Buffer): RawChangeEvent[] {
  const parsed = JSON.parse(value.toString('utf8')) as RawChangeEvent | RawChangeEvent[];
  return Array.isArray(parsed) ? parsed : [parsed];
}
