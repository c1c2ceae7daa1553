import { describe, expect, it } from 'vitest';
import { logicalTypeOf, toCanonical } from '../src/column-types.js';

describe('logicalTypeOf', () => {
  it('reads the information_schema spelling of MySQL types', () => {
    expect(logicalTypeOf('bigint(20) unsigned')).toEqual({ kind: 'bigint', unsigned: true });
    expect(logicalTypeOf('int(11)')).toEqual({ kind: 'int', bits: 32, unsigned: false });
    expect(logicalTypeOf('decimal(65,30)')).toEqual({ kind: 'decimal', precision: 65, scale: 30 });
    expect(logicalTypeOf('datetime(6)')).toEqual({ kind: 'datetime', fsp: 6 });
    expect(logicalTypeOf('timestamp')).toEqual({ kind: 'timestamp', fsp: 0 });
    expect(logicalTypeOf("enum('a','it''s')")).toEqual({ kind: 'enum', values: ['a', "it's"] });
    expect(logicalTypeOf('bit(10)')).toEqual({ kind: 'bit', bits: 10 });
    expect(logicalTypeOf('varchar(20)', 'utf8mb4')).toEqual({ kind: 'string', charset: 'utf8mb4' });
  });

  it('refuses types it does not know', () => {
    expect(() => logicalTypeOf('vector(3)')).toThrow(expect.objectContaining({ code: 'COLUMN_TYPE_UNSUPPORTED', message: expect.stringMatching(/column type vector\(3\) has no exact mapping/) }));
  });
});

describe('toCanonical', () => {
  it('reads a stored GEOMETRY (SRID + WKB) as EWKT, keeping the SRID and the geometry type', () => {
    const stored = (srid: number, wkbHex: string) => Buffer.concat([Buffer.from([srid & 255, (srid >> 8) & 255, 0, 0]), Buffer.from(wkbHex, 'hex')]);
    // MULTIPOINT(1 2, 3 4): the same coordinates as a LINESTRING, told apart by the WKB type.
    const multipoint = '0104000000020000000101000000000000000000f03f0000000000000040010100000000000000000008400000000000001040';
    expect(toCanonical({ kind: 'geometry' }, stored(4326, multipoint))).toBe('SRID=4326;MULTIPOINT(1 2,3 4)');
    expect(toCanonical({ kind: 'geometry' }, stored(0, '0101000000000000000000f03f0000000000000040'))).toBe('SRID=0;POINT(1 2)');
    expect(() => toCanonical({ kind: 'geometry' }, { x: 1, y: 2 })).toThrow(/SRID \+ WKB/);
  });

  it('keeps 64-bit integers and decimals exact as strings', () => {
    expect(toCanonical({ kind: 'bigint', unsigned: true }, '18446744073709551615')).toBe('18446744073709551615');
    expect(toCanonical({ kind: 'bigint', unsigned: false }, 42)).toBe('42');
    expect(toCanonical({ kind: 'decimal', precision: 65, scale: 30 }, '-0.000000000000000000000000000001')).toBe('-0.000000000000000000000000000001');
  });

  it('keeps microseconds and states the zone of TIMESTAMP', () => {
    expect(toCanonical({ kind: 'datetime', fsp: 6 }, '2024-02-29 13:14:15.123456')).toBe('2024-02-29T13:14:15.123456');
    expect(toCanonical({ kind: 'datetime', fsp: 3 }, '2024-02-29 13:14:15.1')).toBe('2024-02-29T13:14:15.100');
    expect(toCanonical({ kind: 'timestamp', fsp: 0 }, '2024-02-29 13:14:15')).toBe('2024-02-29T13:14:15Z');
  });

  it('reads YEAR 0000 as 0 (zongji reports it as 1900, which YEAR cannot hold)', () => {
    expect(toCanonical({ kind: 'year' }, 1900)).toBe(0);
    expect(toCanonical({ kind: 'year' }, 2155)).toBe(2155);
  });

  it('turns zero and partial-zero dates into null', () => {
    expect(toCanonical({ kind: 'date' }, '0000-00-00')).toBeNull();
    expect(toCanonical({ kind: 'date' }, '2024-00-10')).toBeNull();
    expect(toCanonical({ kind: 'datetime', fsp: 0 }, '0000-00-00 00:00:00')).toBeNull();
    expect(toCanonical({ kind: 'date' }, '2024-02-29')).toBe('2024-02-29');
  });

  it('encodes bits, bytes, UUID and INET6', () => {
    expect(toCanonical({ kind: 'bit', bits: 10 }, Buffer.from([0x02, 0xaa]))).toBe('1010101010');
    expect(toCanonical({ kind: 'bytes' }, Buffer.from([0, 255]))).toBe('AP8=');
    expect(toCanonical({ kind: 'uuid' }, Buffer.from('123e4567e89b12d3a456426614174000', 'hex'))).toBe('123e4567-e89b-12d3-a456-426614174000');
    expect(toCanonical({ kind: 'inet' }, Buffer.from('00000000000000000000000000000001', 'hex'))).toBe('::1');
  });

  it('passes text through, including emoji and Chinese', () => {
    expect(toCanonical({ kind: 'string', charset: 'utf8mb4' }, '张三😀')).toBe('张三😀');
    expect(toCanonical({ kind: 'json' }, '{"a": 12345678901234567890}')).toBe('{"a": 12345678901234567890}');
  });
});
