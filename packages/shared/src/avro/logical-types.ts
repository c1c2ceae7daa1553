import avro from 'avsc';
import { CdcError } from '../errors.js';

/**
 * Avro logical types the share topics use, so that exact values survive encoding:
 * decimal as two's-complement unscaled bytes, timestamps as microseconds in a 64-bit
 * long (held as BigInt, never a rounded Number), dates as days. Decoded values come
 * back in the pipeline's canonical string forms.
 */

/** `long` backed by BigInt: Avro longs exceed Number's exact range. */
export const bigintLong = avro.types.LongType.__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(),
  toBuffer: (n: bigint) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: (v: unknown) => BigInt(v as string),
  toJSON: (n: bigint) => Number(n),
  isValid: (n: unknown) => typeof n === 'bigint',
  compare: (a: bigint, b: bigint) => (a === b ? 0 : a < b ? -1 : 1),
});

interface DecimalSchema {
  precision: number;
  scale?: number;
}

export class DecimalType extends avro.types.LogicalType {
  private readonly precision: number;
  private readonly scale: number;

  constructor(schema: avro.Schema, opts?: unknown) {
    super(schema, opts);
    this.precision = (schema as unknown as DecimalSchema).precision;
    this.scale = (schema as unknown as DecimalSchema).scale ?? 0;
  }

  protected override _fromValue(buf: Buffer): string {
    let unscaled = buf.length === 0 ? 0n : BigInt.asIntN(buf.length * 8, BigInt('0x' + buf.toString('hex')));
    const negative = unscaled < 0n;
    if (negative) unscaled = -unscaled;
    let digits = unscaled.toString().padStart(this.scale + 1, '0');
    if (this.scale > 0) digits = `${digits.slice(0, -this.scale)}.${digits.slice(-this.scale)}`;
    return negative ? `-${digits}` : digits;
  }

  protected override _toValue(value: unknown): Buffer {
    const text = String(value);
    const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(text);
    if (!m) throw new CdcError('RECORD_INVALID', `not a decimal: ${text.length} characters`);
    const [, sign, whole, frac = ''] = m;
    if (frac.length > this.scale) throw new CdcError('RECORD_INVALID', `decimal has more than ${this.scale} fraction digits`);
    let unscaled = BigInt((whole || '0') + frac.padEnd(this.scale, '0'));
    if (sign === '-') unscaled = -unscaled;
    if (unscaled.toString().replace('-', '').length > this.precision) throw new CdcError('RECORD_INVALID', `decimal exceeds precision ${this.precision}`);
    let hex = BigInt.asUintN(byteLength(unscaled) * 8, unscaled).toString(16);
    if (hex.length % 2) hex = '0' + hex;
    return Buffer.from(hex.padStart(byteLength(unscaled) * 2, unscaled < 0n ? 'f' : '0'), 'hex');
  }

  protected override _resolve(type: avro.Type): ((v: unknown) => unknown) | undefined {
    if (type instanceof DecimalType && type.precision === this.precision && type.scale === this.scale) return (v) => v;
    return undefined;
  }

  protected override _export(attrs: avro.Schema): void {
    Object.assign(attrs, { precision: this.precision, scale: this.scale });
  }
}

function byteLength(n: bigint): number {
  const bits = (n < 0n ? -n - 1n : n).toString(2).length + 1;
  return Math.max(1, Math.ceil(bits / 8));
}

const ISO = /^(-?\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z)?$/;

function toMicros(text: string): bigint {
  const m = ISO.exec(text);
  if (!m) throw new CdcError('RECORD_INVALID', 'not an ISO date-time');
  const year = Number(m[1]);
  let ms = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  // Date.UTC reads years 0-99 as 1900-1999.
  if (year >= 0 && year < 100) ms = new Date(ms).setUTCFullYear(year);
  const micros = m[7] === undefined ? 0 : Number(m[7].padEnd(6, '0'));
  // Exact in a double up to ±2^53 µs (the years 1685-2255); BigInt beyond.
  return Math.abs(ms) < 9e12 ? BigInt(ms * 1000 + micros) : BigInt(ms) * 1000n + BigInt(micros);
}

function fromMicros(micros: bigint, zone: string): string {
  let ms = micros / 1000n;
  let sub = micros % 1000n;
  if (sub < 0n) {
    sub += 1000n;
    ms -= 1n;
  }
  const d = new Date(Number(ms));
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` +
    `.${pad(d.getUTCMilliseconds(), 3)}${pad(Number(sub), 3)}${zone}`;
}

/** Set while a microsecond type builds its underlying long, so the type hook hands it the BigInt long. */
let buildingUnderlyingLong = false;

class MicrosType extends avro.types.LogicalType {
  protected readonly zone: string = '';

  constructor(schema: avro.Schema, opts?: unknown) {
    buildingUnderlyingLong = true;
    try {
      super(schema, opts);
    } finally {
      buildingUnderlyingLong = false;
    }
  }

  protected override _fromValue(v: bigint): string {
    return fromMicros(BigInt(v), this.zone);
  }
  protected override _toValue(v: unknown): bigint {
    return toMicros(String(v));
  }
  protected override _resolve(type: avro.Type): ((v: unknown) => unknown) | undefined {
    return type instanceof MicrosType ? (v) => v : undefined;
  }
}

export class TimestampMicrosType extends MicrosType {
  protected override readonly zone = 'Z';
}

export class LocalTimestampMicrosType extends MicrosType {}

const DAY_MS = 86_400_000;

export class DateType extends avro.types.LogicalType {
  protected override _fromValue(days: number): string {
    const d = new Date(days * DAY_MS);
    return `${String(d.getUTCFullYear()).padStart(4, '0')}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-${String(d.getUTCDate()).padStart(2, '0')}`;
  }
  protected override _toValue(v: unknown): number {
    const [y, m, d] = String(v).split('-').map(Number);
    const date = new Date(0);
    date.setUTCFullYear(y!, m! - 1, d!);
    return Math.round(date.getTime() / DAY_MS);
  }
  protected override _resolve(type: avro.Type): ((v: unknown) => unknown) | undefined {
    return type instanceof DateType ? (v) => v : undefined;
  }
}

/** Marks a string or bytes field with a meaning targets need (JSON, MySQL TIME, ciphertext). */
class TaggedType extends avro.types.LogicalType {
  protected override _fromValue(v: unknown): unknown {
    return v;
  }
  protected override _toValue(v: unknown): unknown {
    return v;
  }
  protected override _resolve(_type: avro.Type): ((v: unknown) => unknown) | undefined {
    return (v) => v;
  }
}

export const LOGICAL = {
  decimal: 'decimal',
  date: 'date',
  timestampMicros: 'timestamp-micros',
  localTimestampMicros: 'local-timestamp-micros',
  json: 'cityshare-json',
  mysqlTime: 'cityshare-time',
  sealed: 'cityshare-sealed',
} as const;

/**
 * Options for avsc (and the schema registry client) that know every type above. A new
 * object each call: avsc records named types in the options it is given.
 */
export function avroOptions(): Partial<avro.ForSchemaOptions> {
  return {
    logicalTypes: {
      [LOGICAL.decimal]: DecimalType,
      [LOGICAL.date]: DateType,
      [LOGICAL.timestampMicros]: TimestampMicrosType,
      [LOGICAL.localTimestampMicros]: LocalTimestampMicrosType,
      [LOGICAL.json]: TaggedType,
      [LOGICAL.mysqlTime]: TaggedType,
      [LOGICAL.sealed]: TaggedType,
    },
    typeHook: (schema) => {
      const isLong = schema === 'long' || (typeof schema === 'object' && (schema as { type?: unknown }).type === 'long');
      const logical = typeof schema === 'object' && 'logicalType' in (schema as object);
      return isLong && (!logical || buildingUnderlyingLong) ? bigintLong : undefined;
    },
  };
}
