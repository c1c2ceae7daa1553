import { CdcError } from './errors.js';
import type { CanonicalValue, LogicalType } from './column-types.js';
import { toCanonical } from './column-types.js';
import { comparable } from './verify/comparable.js';

/** What the comparable text of a value of these kinds looks like; any other text is not such a value. */
const TEXT_OF: Partial<Record<LogicalType['kind'], RegExp>> = {
  decimal: /^-?\d+(\.\d+)?$/,
  bit: /^[01]+$/,
  date: /^\d{4}-\d{2}-\d{2}$/,
  time: /^-?\d{1,3}:\d{2}:\d{2}(\.\d+)?$/,
  datetime: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$/,
  timestamp: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/,
  bytes: /^[A-Za-z0-9+/]*={0,2}$/,
};

/**
 * A primary-key value as the reader's source connection returns it (the reader's
 * exactValueOptions: dates and big numbers as strings, binary as bytes), from its canonical
 * form (column-types.ts toCanonical) or from a department's table read back as text
 * (verify/comparable.ts): usable as a query parameter for the column, and, given to
 * toCanonical, the canonical value every event of that row carries, so a key named by a
 * repair hashes to the row's own Kafka key and partition. Throws RECORD_INVALID (naming the
 * type, never the value) for what is not a value of the type.
 */
export function sourceKeyValue(type: LogicalType, value: unknown): unknown {
  let text: string | null;
  try {
    text = comparable(type, value);
  } catch {
    text = null;
  }
  const shape = TEXT_OF[type.kind];
  if (text === null || (shape && !shape.test(text))) throw new CdcError('RECORD_INVALID', `not a ${type.kind} value`);
  switch (type.kind) {
    case 'int': case 'year': case 'float': case 'double': {
      const n = Number(text);
      if (!Number.isFinite(n)) throw new CdcError('RECORD_INVALID', `not a ${type.kind} value`);
      return n;
    }
    case 'bool':
      return text === 'true' ? 1 : 0;
    case 'bit':
      return bitBytes(text, type.bits);
    case 'datetime':
      return text.replace('T', ' ');
    case 'timestamp':
      // The reader's connections are in UTC; the canonical form says so with a Z.
      return text.replace('T', ' ').slice(0, -1);
    case 'bytes':
      return Buffer.from(text, 'base64');
    default:
      return text;
  }
}

/** The canonical form of a key value given as canonical or as a department's text of it. */
export function canonicalKeyValue(type: LogicalType, value: unknown): CanonicalValue {
  return toCanonical(type, sourceKeyValue(type, value));
}

/** A BIT(n) value's digits (`0101`) as the bytes the server returns, big-endian. */
function bitBytes(digits: string, bits: number): Buffer {
  const bytes = Buffer.alloc(Math.ceil(bits / 8));
  let n = BigInt(`0b${digits}`);
  for (let i = bytes.length - 1; i >= 0; i--) {
    bytes[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return bytes;
}
