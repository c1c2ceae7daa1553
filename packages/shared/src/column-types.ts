import { Geometry } from 'wkx';
import { CdcError } from './errors.js';

/**
 * MySQL/MariaDB column types, as read from information_schema, reduced to the logical
 * types the pipeline carries, and the canonical JSON form of each value. Snapshot
 * reads and binlog rows both go through `toCanonical`, so the same data looks the same.
 */
export type LogicalType =
  | { kind: 'int'; bits: 8 | 16 | 24 | 32; unsigned: boolean }
  | { kind: 'bigint'; unsigned: boolean }
  | { kind: 'decimal'; precision: number; scale: number }
  | { kind: 'float' }
  | { kind: 'double' }
  | { kind: 'bit'; bits: number }
  | { kind: 'bool' }
  | { kind: 'date' }
  | { kind: 'time'; fsp: number }
  | { kind: 'datetime'; fsp: number }
  | { kind: 'timestamp'; fsp: number }
  | { kind: 'year' }
  | { kind: 'string'; charset: string | null }
  | { kind: 'enum'; values: string[] }
  | { kind: 'set'; values: string[] }
  | { kind: 'bytes' }
  | { kind: 'json' }
  | { kind: 'uuid' }
  | { kind: 'inet' }
  | { kind: 'geometry' };

/** A value as it travels in raw change events: exact, JSON-safe, one form per type. */
export type CanonicalValue = string | number | boolean | null;

export interface ColumnSchema {
  name: string;
  type: LogicalType;
  /** The source's own column type, e.g. `decimal(12,2) unsigned`; for people, not code. */
  sourceType: string;
  nullable: boolean;
}

const INT_BITS: Record<string, 8 | 16 | 24 | 32> = { tinyint: 8, smallint: 16, mediumint: 24, int: 32, integer: 32 };

function enumValues(columnType: string): string[] {
  const inner = columnType.slice(columnType.indexOf('(') + 1, columnType.lastIndexOf(')'));
  const values: string[] = [];
  const re = /'((?:[^']|'')*)'/g;
  for (let m = re.exec(inner); m; m = re.exec(inner)) values.push(m[1]!.replace(/''/g, "'"));
  return values;
}

/**
 * Logical type of a column from its full MySQL type as information_schema.COLUMN_TYPE
 * spells it (`bigint(20) unsigned`, `decimal(65,30)`, `datetime(6)`, `enum('a','b')`).
 * zongji builds the same spelling from binlog_row_metadata=FULL table maps, so binlog
 * rows and snapshot rows share one mapping.
 */
export function logicalTypeOf(columnType: string, charset: string | null = null): LogicalType {
  const lower = columnType.toLowerCase().trim();
  const dataType = /^[a-z0-9]+/.exec(lower)?.[0] ?? '';
  const args = /^[a-z0-9]+\(([^)]*)\)/.exec(lower)?.[1]?.split(',').map((a) => Number(a.trim())) ?? [];
  const unsigned = /\bunsigned\b/.test(lower);
  const bits = INT_BITS[dataType];
  if (bits !== undefined) return { kind: 'int', bits, unsigned };
  switch (dataType) {
    case 'bigint': return { kind: 'bigint', unsigned };
    case 'decimal': case 'numeric': case 'dec': case 'fixed':
      return { kind: 'decimal', precision: args[0] ?? 10, scale: args[1] ?? 0 };
    case 'float': return { kind: 'float' };
    case 'double': case 'real': return { kind: 'double' };
    case 'bit': return { kind: 'bit', bits: args[0] ?? 1 };
    case 'bool': case 'boolean': return { kind: 'bool' };
    case 'date': return { kind: 'date' };
    case 'time': return { kind: 'time', fsp: args[0] ?? 0 };
    case 'datetime': return { kind: 'datetime', fsp: args[0] ?? 0 };
    case 'timestamp': return { kind: 'timestamp', fsp: args[0] ?? 0 };
    case 'year': return { kind: 'year' };
    case 'char': case 'varchar': case 'tinytext': case 'text': case 'mediumtext': case 'longtext':
      return { kind: 'string', charset };
    case 'json': return { kind: 'json' };
    case 'enum': return { kind: 'enum', values: enumValues(columnType) };
    case 'set': return { kind: 'set', values: enumValues(columnType) };
    case 'binary': case 'varbinary': case 'tinyblob': case 'blob': case 'mediumblob': case 'longblob':
      return { kind: 'bytes' };
    case 'uuid': return { kind: 'uuid' };
    case 'inet4': case 'inet6': return { kind: 'inet' };
    case 'geometry': case 'point': case 'linestring': case 'polygon': case 'multipoint':
    case 'multilinestring': case 'multipolygon': case 'geometrycollection': case 'geomcollection':
      return { kind: 'geometry' };
    default:
      throw new CdcError('COLUMN_TYPE_UNSUPPORTED', `column type ${columnType} has no exact mapping in the pipeline`, { details: { columnType } });
  }
}

const ZERO_DATE = /^0000-|-00(-|$)|-00[ T]/;

function fraction(value: string, fsp: number): string {
  if (fsp === 0) return '';
  const dot = value.indexOf('.');
  const digits = dot < 0 ? '' : value.slice(dot + 1);
  return '.' + digits.padEnd(fsp, '0').slice(0, fsp);
}

function withoutFraction(value: string): string {
  const dot = value.indexOf('.');
  return dot < 0 ? value : value.slice(0, dot);
}

function bitsOf(buf: Buffer, bits: number): string {
  let out = '';
  for (const byte of buf) out += byte.toString(2).padStart(8, '0');
  return out.slice(out.length - bits);
}

function formatUuid(buf: Buffer): string {
  const h = buf.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function formatInet(buf: Buffer): string {
  if (buf.length === 4) return Array.from(buf).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(i).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
}

/**
 * Canonical form of a value decoded by zongji or mysql2 (both configured with
 * dateStrings, timezone 'Z', bigNumberStrings). Zero and partial-zero dates become null:
 * they name no instant, and every target would reject them.
 */
export function toCanonical(type: LogicalType, value: unknown): CanonicalValue {
  if (value === null || value === undefined) return null;
  switch (type.kind) {
    case 'int': case 'double':
      return typeof value === 'number' ? value : Number(value);
    case 'year': {
      // YEAR 0000 is stored as 0; zongji adds 1900 to every YEAR, and 1900 is not a valid YEAR otherwise.
      const year = Number(value);
      return year === 1900 ? 0 : year;
    }
    case 'float':
      // The binlog carries the stored float32; a SELECT prints it shortened. Both round to the same float32.
      return Math.fround(typeof value === 'number' ? value : Number(value));
    case 'bool':
      return Boolean(Number(value));
    case 'bigint': case 'decimal':
      return String(value);
    case 'bit':
      return Buffer.isBuffer(value) ? bitsOf(value, type.bits) : BigInt(value as number).toString(2).padStart(type.bits, '0');
    case 'date': {
      const s = String(value).slice(0, 10);
      return ZERO_DATE.test(s) ? null : s;
    }
    case 'time': {
      const s = String(value);
      return withoutFraction(s) + fraction(s, type.fsp);
    }
    case 'datetime': case 'timestamp': {
      const s = String(value);
      if (ZERO_DATE.test(s)) return null;
      const local = withoutFraction(s).replace(' ', 'T') + fraction(s, type.fsp);
      return type.kind === 'timestamp' ? `${local}Z` : local;
    }
    case 'string': case 'enum': case 'set':
      return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
    case 'json':
      return Buffer.isBuffer(value) ? value.toString('utf8') : typeof value === 'string' ? value : JSON.stringify(value);
    case 'bytes':
      return Buffer.isBuffer(value) ? value.toString('base64') : Buffer.from(String(value), 'binary').toString('base64');
    case 'uuid':
      return Buffer.isBuffer(value) ? formatUuid(value) : String(value);
    case 'inet':
      return Buffer.isBuffer(value) ? formatInet(value) : String(value);
    case 'geometry':
      return geometryText(value);
  }
}

/**
 * A stored GEOMETRY value (4-byte little-endian SRID, then WKB; what a SELECT and the
 * binlog both carry) as EWKT, e.g. `SRID=4326;POINT(116.397 39.909)`: the SRID and the
 * geometry type kept, coordinates as the shortest exact decimal of each double.
 */
function geometryText(value: unknown): string {
  if (!Buffer.isBuffer(value) || value.length < 9) {
    throw new CdcError('RECORD_INVALID', `a GEOMETRY value did not arrive as SRID + WKB bytes (got ${typeof value}); the zongji patch in patches/ may be missing: run npm install`);
  }
  const geometry = Geometry.parse(value.subarray(4));
  geometry.srid = value.readUInt32LE(0);
  return geometry.toEwkt();
}
