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

/**
 * The rows of one COPY, written as UTF-8 straight into buffers of about `chunkBytes` (each
 * sent as one CopyData message): no string per row or per chunk in between, which the
 * garbage collector would have to move (a batch lives through several young-generation
 * collections while it waits for the target).
 */
export class CopyRows {
  private readonly chunks: Buffer[] = [];
  private chunk: Buffer;
  private at = 0;
  private lastMs = Number.NaN;
  private lastInstant = '';

  constructor(private readonly chunkBytes = 64 * 1024) {
    this.chunk = Buffer.allocUnsafe(chunkBytes);
  }

  /** A field of the current row. */
  field(text: string): void {
    this.write(text, 0x09);
  }

  /** The last field of the current row, which ends it. */
  last(text: string): void {
    this.write(text, 0x0a);
  }

  /** An instant as copyInstant writes it; the changes of one source transaction share theirs, so the last one is kept. */
  instant(ms: number): string {
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastInstant = copyInstant(ms);
    }
    return this.lastInstant;
  }

  /** Every row, in chunks. */
  finish(): Buffer[] {
    if (this.at > 0) this.chunks.push(this.chunk.subarray(0, this.at));
    this.at = 0;
    return this.chunks;
  }

  private write(text: string, end: number): void {
    // At most 3 bytes of UTF-8 per UTF-16 unit, and the separator.
    const most = text.length * 3 + 1;
    if (this.at + most > this.chunk.length) {
      if (this.at > 0) this.chunks.push(this.chunk.subarray(0, this.at));
      this.chunk = Buffer.allocUnsafe(Math.max(this.chunkBytes, most));
      this.at = 0;
    }
    this.at += this.chunk.write(text, this.at, 'utf8');
    this.chunk[this.at++] = end;
  }
}
