import { canonicalJson } from '../canonical-json.js';
import { toCanonical, type CanonicalValue, type LogicalType } from '../column-types.js';

/**
 * What a delivered value is compared as: the source column's logical type when the grant
 * passes or encrypts it (an encrypted value is compared opened), text when it masks or
 * tokenizes it.
 */
export type ComparedAs = LogicalType | { kind: 'text' };

const FRACTION_ZEROS = /(\.\d*?)0+$/;

/** `12:30:00.500` and `12:30:00.5` alike; a fraction of zeros goes. */
function trimFraction(s: string): string {
  return s.replace(FRACTION_ZEROS, '$1').replace(/\.$/, '');
}

/** A decimal's digits at `scale` places, one spelling of zero. */
function decimal(text: string, scale: number): string {
  const m = /^\s*([+-]?)(\d*)(?:\.(\d*))?\s*$/.exec(text);
  if (!m) return text;
  const int = (m[2] ?? '').replace(/^0+(?=\d)/, '') || '0';
  const frac = (m[3] ?? '').padEnd(scale, '0').slice(0, Math.max(scale, (m[3] ?? '').replace(/0+$/, '').length));
  const zero = /^0*$/.test(int + frac);
  const sign = m[1] === '-' && !zero ? '-' : '';
  return `${sign}${int}${frac ? `.${frac}` : ''}`;
}

/** Date and time text as the source, PostgreSQL or MySQL write it, as `YYYY-MM-DDTHH:MM:SS[.f]`. */
function localDateTime(text: string): string {
  return trimFraction(text.trim().replace(' ', 'T').replace(/(Z|[+-]\d\d(:?\d\d)?)$/, ''));
}

/**
 * The one text a value is compared as, whichever side it was read from: the source's
 * canonical value (column-types.ts toCanonical), or the department's table read back as text
 * (PostgreSQL `::text`, MySQL/MariaDB through mysql2 with date and big-number strings). null
 * stays null. Equal data gives equal text across the type mapping of every table target
 * (docs/capture.md, "Type mapping"): fractions of seconds without trailing zeros, decimals at
 * their scale, JSON with sorted keys, bytes as base64, booleans as true/false.
 */
export function comparable(as: ComparedAs, value: unknown): string | null {
  if (value === null || value === undefined) return null;
  switch (as.kind) {
    case 'int': case 'year':
      return String(Number(value));
    case 'bigint':
      return BigInt(String(value).trim()).toString();
    case 'decimal':
      return decimal(String(value), as.scale);
    case 'float':
      return String(Math.fround(Number(value)));
    case 'double':
      return String(Number(value));
    case 'bool':
      return value === true || value === 't' || value === 'true' || (typeof value !== 'boolean' && Number(value) === 1) ? 'true' : 'false';
    case 'date':
      return String(value).slice(0, 10);
    case 'time':
      return trimFraction(String(value).trim());
    case 'datetime':
      return localDateTime(String(value));
    case 'timestamp':
      return `${localDateTime(String(value))}Z`;
    case 'json':
      return canonicalJson(typeof value === 'string' || Buffer.isBuffer(value) ? JSON.parse(value.toString()) : value);
    case 'bytes':
      if (Buffer.isBuffer(value)) return value.toString('base64');
      // PostgreSQL's bytea text is hex after \x; the source's canonical bytes are base64 (never starting with \).
      return String(value).startsWith('\\x') ? Buffer.from(String(value).slice(2), 'hex').toString('base64') : String(value);
    default:
      return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
  }
}

/**
 * The source's canonical value of a key column from its text as a department's table holds
 * it (its key as the share record had it): what binds an encrypted value to its row, and
 * what places a repaired row in the same partition as its other changes.
 */
export function canonicalOfText(type: LogicalType, text: string): CanonicalValue {
  switch (type.kind) {
    case 'bool':
      return comparable(type, text) === 'true';
    case 'timestamp': case 'datetime':
      // A department's database may print the instant with its zone (PostgreSQL +00).
      return toCanonical(type, text.trim().replace('T', ' ').replace(/(Z|[+-]\d\d(:?\d\d)?)$/, ''));
    case 'bytes':
      return comparable(type, text);
    default:
      return toCanonical(type, text);
  }
}
