/**
 * What the transformer's and a sink's dead-letter topics hold of one change they could not
 * pass on: where it was read, why, and the record as it was read (base64) — raw records keep
 * their protected columns sealed, share records are masked, tokenized or encrypted — so a
 * dead letter never holds a value in clear. (The reader's dead letters, of changes too large
 * for any topic, hold no record at all: cdc-reader's dead-letter.ts.)
 */
export interface DeadLetter {
  /** The error code, or the reason's code word for a record that did not parse. */
  code: string;
  reason: string;
  department: string;
  /** The department's target table (sink). */
  table?: string;
  topic: string;
  partition: number;
  offset: string;
  /** The event's index in a raw frame (transformer); null for the whole frame. */
  index?: number | null;
  /** The change's source position `__version`, its correlation id across the services' logs. */
  version?: string | undefined;
  payload: string;
}

/** A dead letter as its Kafka message: keyed by where the record was read, so a retry writes the same key. */
export function deadLetterMessage(topic: string, letter: DeadLetter): { topic: string; key: string; value: Buffer } {
  const index = letter.index === undefined || letter.index === null ? '' : `#${letter.index}`;
  return { topic, key: `${letter.department}/${letter.topic}/${letter.partition}/${letter.offset}${index}`, value: Buffer.from(JSON.stringify(letter)) };
}
