import { topics, type BinlogPosition } from '@cityshare/shared';
import type { TransactionSummary } from './binlog-listener.js';
import type { OutgoingMessage } from './raw-frame-writer.js';

/**
 * The records the reader publishes besides change events, keyed by source name: what they
 * hold is the contract for whoever reads `<prefix>.heartbeats`, `<prefix>.transactions.<source>`
 * and `<prefix>.schema-changes.<source>` (field names as Debezium spells its own).
 */

/** `<prefix>.heartbeats` (compacted): the source was idle and the stream at its end, at this position. */
export interface HeartbeatRecord {
  source: string;
  file: string;
  pos: number;
  gtid: string | null;
  /** When the reader saw the heartbeat (the source sends none of its own). */
  ts_ms: number;
}

/** `<prefix>.transactions.<source>` (READER_TRANSACTION_MARKERS): a transaction that changed registered tables ended. */
export interface TransactionRecord {
  status: 'END';
  /** The GTID, or `file:pos` of its end without one. */
  id: string;
  gtid: string | null;
  file: string;
  pos: number;
  /** Commit time on the source. */
  ts_ms: number;
  /** Row changes of registered tables in it. */
  event_count: number;
  /** Row changes per `db.table`. */
  data_collections: Record<string, number>;
}

/** `<prefix>.schema-changes.<source>`: a DDL statement that changed registered tables, in stream order. */
export interface SchemaChangeRecord {
  source: string;
  /** The session's database the statement ran in. */
  db: string;
  /** The statement without comments and literals (ddl-statement.ts redactDdl). */
  ddl: string;
  /** The registered `db.table`s it changed. */
  tables: string[];
  file: string;
  pos: number;
  gtid: string | null;
  ts_ms: number;
}

function message(topic: string, source: string, record: HeartbeatRecord | TransactionRecord | SchemaChangeRecord): OutgoingMessage {
  return { topic, key: source, value: Buffer.from(JSON.stringify(record)) };
}

export function heartbeatMessage(prefix: string, source: string, position: BinlogPosition, tsMs: number): OutgoingMessage {
  return message(topics.heartbeats(prefix), source, { source, file: position.file, pos: position.pos, gtid: position.gtid ?? null, ts_ms: tsMs });
}

export function transactionMessage(prefix: string, source: string, position: BinlogPosition, tsMs: number, summary: TransactionSummary): OutgoingMessage {
  return message(topics.transactions(prefix, source), source, {
    status: 'END',
    id: summary.gtid ?? `${position.file}:${position.pos}`,
    gtid: summary.gtid,
    file: position.file,
    pos: position.pos,
    ts_ms: tsMs,
    event_count: summary.events,
    data_collections: summary.tables,
  });
}

export function schemaChangeMessage(prefix: string, source: string, change: { db: string; ddl: string; tables: string[] }, position: BinlogPosition, tsMs: number): OutgoingMessage {
  return message(topics.schemaChanges(prefix, source), source, { source, db: change.db, ddl: change.ddl, tables: change.tables, file: position.file, pos: position.pos, gtid: position.gtid ?? null, ts_ms: tsMs });
}
