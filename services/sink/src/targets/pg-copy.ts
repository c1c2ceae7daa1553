/**
 * Rows in PostgreSQL's COPY text format (https://www.postgresql.org/docs/current/sql-copy.html,
 * "Text Format"): columns separated by a tab, rows ended by a newline, NULL as `\N`, and a
 * backslash, tab, newline or carriage return inside a value escaped with a backslash. Each
 * value is written as the text node-postgres sends for it as a query parameter, so that
 * PostgreSQL reads the same value whichever way it arrives: strings as they are, numbers,
 * bigints and booleans through toString, bytes in bytea's hex form, instants in ISO 8601.
 */

const SPECIAL = /[\\\t\n\r]/;
const SPECIAL_ALL = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** A text with COPY's special characters escaped. */
export function copyEscape(text: string): string {
  return SPECIAL.test(text) ? text.replace(SPECIAL_ALL, (c) => ESCAPES[c]!) : text;
}

/** One value as a COPY text field. */
export function copyField(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  switch (typeof value) {
    case 'string':
      return copyEscape(value);
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(value);
  }
  // bytea's hex input `\x…`, its backslash escaped for COPY.
  if (Buffer.isBuffer(value)) return `\\\\x${value.toString('hex')}`;
  if (value instanceof Date) return copyInstant(value.getTime());
  // What node-postgres sends for any other object: its JSON.
  return copyEscape(JSON.stringify(value));
}

/**
 * An instant (milliseconds since the epoch) as timestamptz input. One PostgreSQL cannot read
 * (NaN, beyond year 9999) is left for it to refuse, as it would the parameter's text.
 */
export function copyInstant(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? 'invalid' : d.toISOString();
}

/** One row: its fields, tab-separated, newline-terminated. */
export function copyRow(fields: string[]): string {
  return `${fields.join('\t')}\n`;
}

/** Rows grouped into chunks of about `bytes` characters, each sent as one CopyData message. */
export function* copyChunks(rows: Iterable<string>, bytes = 64 * 1024): Generator<string> {
  let chunk = '';
  for (const row of rows) {
    chunk += row;
    if (chunk.length >= bytes) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk.length > 0) yield chunk;
}
