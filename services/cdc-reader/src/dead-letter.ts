import {
  ERROR_CODES,
  keyNames,
  keysOfList,
  openValue,
  recordMacHeaders,
  sealJson,
  topics,
  type KeyProvider,
  type Op,
} from '@cityshare/shared';
import type { RowsChange } from './binlog-listener.js';
import { changeVersion } from './change-rows.js';
import { canonicalKey } from './event-builder.js';
import type { OutgoingMessage } from './raw-frame-writer.js';

/** The reader's dead-letter topic of a source: change events it could not put on a raw topic. */
export function readerDlqTopic(prefix: string, source: string): string {
  return topics.dlq(prefix, `reader.${source}`);
}

/** What `<prefix>.dlq.reader.<source>` holds of one change event: where it is and why, never its values. */
export interface ReaderDeadLetter {
  code: 'EVENT_TOO_LARGE';
  reason: string;
  action: string;
  source: string;
  db: string;
  table: string;
  op: Op;
  file: string;
  pos: number;
  row: number;
  gtid: string | null;
  /** The source position `<file seq>.<event position>.<row>` the change would have carried as `__version`. */
  version: string;
  snapshot: boolean;
  /** Bytes of the raw-topic message the event would have been, and the limit. */
  bytes: number;
  limit: number;
  /** The row's primary key (canonical JSON) sealed under the pipeline key (`openDeadLetterKey`); null for a table without one. */
  key: string | null;
  ts_ms: number;
}

/** Binds a sealed key to its letter: it opens only for this source, table and position. */
function keyAad(source: string, db: string, table: string, version: string): string {
  return `dlq:${source}:${db}.${table}:${version}:key`;
}

/**
 * The dead letter of a change event over the size limit (event `op` of row `row` of
 * `change`), signed like the reader's other internal records and keyed by table and
 * position, so a primary key is in clear neither in the value nor the Kafka key.
 */
export function oversizeLetter(
  keys: KeyProvider,
  at: { prefix: string; source: string },
  event: { change: RowsChange; op: Op; row: number; bytes: number; limit: number },
): { message: OutgoingMessage; letter: ReaderDeadLetter } {
  const { change, op, row, bytes, limit } = event;
  const { schema } = change;
  const version = changeVersion(change, row);
  const r = change.rows[row]!;
  // A key change is a delete of the old key and a create of the new one.
  const image = op === 'd' ? r.before : (r.after ?? r.before);
  const key = schema.primaryKey.length > 0 && image
    ? sealJson(keys.activeKey(keyNames.pipeline), Buffer.from(canonicalKey(schema, image), 'utf8'), keyAad(at.source, schema.db, schema.table, version))
    : null;
  const letter: ReaderDeadLetter = {
    code: 'EVENT_TOO_LARGE',
    reason: `change event of ${bytes} bytes is over READER_EVENT_MAX_BYTES (${limit})`,
    action: ERROR_CODES.EVENT_TOO_LARGE.action,
    source: at.source,
    db: schema.db,
    table: schema.table,
    op,
    file: change.file,
    pos: change.eventPos,
    row,
    gtid: change.gtid,
    version,
    snapshot: change.kind === 'snapshot' || change.kind === 'repair',
    bytes,
    limit,
    key,
    ts_ms: Date.now(),
  };
  const topic = readerDlqTopic(at.prefix, at.source);
  const messageKey = `${schema.db}.${schema.table}@${version}`;
  const value = Buffer.from(JSON.stringify(letter));
  return { message: { topic, key: messageKey, value, headers: recordMacHeaders(keys, topic, messageKey, value) }, letter };
}

/** The primary key of a dead letter's row, for an operator holding the pipeline key. */
export function openDeadLetterKey(keys: KeyProvider, letter: Pick<ReaderDeadLetter, 'source' | 'db' | 'table' | 'version' | 'key'>): Record<string, unknown> | null {
  if (letter.key === null) return null;
  return openValue(keysOfList(keys, keyNames.pipeline), letter.key, keyAad(letter.source, letter.db, letter.table, letter.version)) as Record<string, unknown>;
}
