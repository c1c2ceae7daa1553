import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { avroOptions } from '../src/avro/logical-types.js';
import { deriveShareSchema } from '../src/avro/share-schema.js';
import { WireEncoder } from '../src/avro/wire-encoder.js';
import type { TableSchema } from '../src/change-event.js';
import type { ColumnRule } from '../src/policy/grant-policy.js';

const table: TableSchema = {
  db: 'civil',
  table: 'citizens',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: { kind: 'bigint', unsigned: true }, sourceType: 'bigint(20) unsigned', nullable: false },
    { name: 'name', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar(64)', nullable: false },
    { name: 'id_card', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'char(18)', nullable: false },
    { name: 'balance', type: { kind: 'decimal', precision: 65, scale: 30 }, sourceType: 'decimal(65,30)', nullable: true },
    { name: 'born', type: { kind: 'date' }, sourceType: 'date', nullable: true },
    { name: 'seen', type: { kind: 'timestamp', fsp: 6 }, sourceType: 'timestamp(6)', nullable: true },
    { name: 'local', type: { kind: 'datetime', fsp: 6 }, sourceType: 'datetime(6)', nullable: true },
    { name: 'visits', type: { kind: 'bigint', unsigned: false }, sourceType: 'bigint', nullable: true },
    { name: 'secret_note', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'text', nullable: true },
  ],
};

const rules: ColumnRule[] = [
  { column: 'id', action: 'pass' },
  { column: 'name', action: 'mask', mask: 'name' },
  { column: 'id_card', action: 'encrypt', suite: 'aes-256-gcm' },
  { column: 'balance', action: 'pass' },
  { column: 'born', action: 'pass' },
  { column: 'seen', action: 'pass' },
  { column: 'local', action: 'pass' },
  { column: 'visits', action: 'pass' },
];

describe('deriveShareSchema', () => {
  const schema = deriveShareSchema('health', table, rules);

  it('keeps only granted columns, in source order, plus change metadata', () => {
    expect(schema.fields.map((f) => f.name)).toEqual(['id', 'name', 'id_card', 'balance', 'born', 'seen', 'local', 'visits', '__op', '__version', '__source_ts_ms', '__deleted']);
    expect(schema['x-primary-key']).toEqual(['id']);
    expect(schema.namespace).toBe('cityshare.share.health.civil');
  });

  it('types masked columns as string and encrypted ones as sealed bytes', () => {
    const byName = Object.fromEntries(schema.fields.map((f) => [f.name, f.type]));
    expect(byName.name).toEqual(['null', 'string']);
    expect(byName.id_card).toEqual(['null', { type: 'bytes', logicalType: 'cityshare-sealed' }]);
    expect(byName.id).toEqual({ type: 'bytes', logicalType: 'decimal', precision: 20, scale: 0 });
  });

  it('round-trips exact values through Avro binary', () => {
    const type = avro.Type.forSchema(schema as unknown as avro.Schema, avroOptions());
    const record = {
      id: '18446744073709551615',
      name: '张*',
      id_card: Buffer.from([1, 2, 3]),
      balance: '-12345678901234567890123456789012345.123456789012345678901234567890',
      born: '1990-01-01',
      seen: '2024-02-29T13:14:15.654321Z',
      local: '9999-12-31T23:59:59.999999',
      visits: -9223372036854775808n,
      __op: 'c',
      __version: '0000000002.000000008183.000000',
      __source_ts_ms: 1795603244000n,
      __deleted: false,
    };
    const decoded = type.fromBuffer(type.toBuffer(record));
    expect(decoded).toEqual(record);
  });

  it('handles small decimals, zero and pre-epoch instants', () => {
    const type = avro.Type.forSchema(schema as unknown as avro.Schema, avroOptions());
    const base = { id: '0', name: null, id_card: null, born: '1900-02-28', visits: null, __op: 'u', __version: 'v', __source_ts_ms: 0n, __deleted: false };
    for (const balance of ['0.000000000000000000000000000000', '1.000000000000000000000000000000', '-0.500000000000000000000000000000']) {
      const r = { ...base, balance, seen: '1969-12-31T23:59:59.999999Z', local: '0001-01-01T00:00:00.000000' };
      expect(type.fromBuffer(type.toBuffer(r))).toEqual(r);
    }
    // Years Date.UTC reads as 19xx, and instants past 2^53 microseconds (about 2255).
    for (const [seen, local] of [['0099-12-31T23:59:59.000001Z', '0050-06-15T12:00:00.500000'], ['2300-01-01T00:00:00.000001Z', '1600-02-29T01:02:03.040506']]) {
      const r = { ...base, balance: '0.000000000000000000000000000000', seen, local };
      expect(type.fromBuffer(type.toBuffer(r))).toEqual(r);
    }
  });

  it('refuses a decimal that exceeds its precision', () => {
    const type = avro.Type.forSchema(schema as unknown as avro.Schema, avroOptions());
    const bad = { id: '1', name: null, id_card: null, balance: '1'.repeat(40), born: null, seen: null, local: null, visits: null, __op: 'c', __version: 'v', __source_ts_ms: 0n, __deleted: false };
    expect(() => type.toBuffer(bad)).toThrow(/invalid|precision/);
  });
});

describe('WireEncoder', () => {
  const schema = deriveShareSchema('health', table, rules);
  const type = avro.Type.forSchema(schema as unknown as avro.Schema, avroOptions());
  const record = (note: string) => ({
    id: '7',
    name: note,
    id_card: Buffer.from([9, 8, 7]),
    balance: '1.500000000000000000000000000000',
    born: '1990-01-01',
    seen: '2024-02-29T13:14:15.654321Z',
    local: null,
    visits: 3n,
    __op: 'u',
    __version: 'v1',
    __source_ts_ms: 1795603244000n,
    __deleted: false,
  });

  it('writes the Confluent wire format: magic byte, schema id, then what avsc writes', () => {
    const encoder = new WireEncoder(4242, schema);
    const out = encoder.encode(record('张*'));
    expect(out[0]).toBe(0);
    expect(out.readInt32BE(1)).toBe(4242);
    expect(out.subarray(5)).toEqual(type.toBuffer(record('张*')));
    expect(type.fromBuffer(out.subarray(5))).toEqual(record('张*'));
  });

  it('grows its scratch buffer for a record larger than it, and every record keeps its own bytes', () => {
    const encoder = new WireEncoder(1, schema);
    const big = encoder.encode(record('x'.repeat(200_000)));
    const small = encoder.encode(record('y'));
    expect(type.fromBuffer(big.subarray(5))).toEqual(record('x'.repeat(200_000)));
    expect(type.fromBuffer(small.subarray(5))).toEqual(record('y'));
    // Larger than the reused buffer may grow: written into a buffer of its own.
    const huge = encoder.encode(record('z'.repeat(3 * 1024 * 1024)));
    expect(huge.readInt32BE(1)).toBe(1);
    expect(type.fromBuffer(huge.subarray(5))).toEqual(record('z'.repeat(3 * 1024 * 1024)));
    expect(type.fromBuffer(encoder.encode(record('w')).subarray(5))).toEqual(record('w'));
  });

  it('refuses a value that does not match, and names the field without its value', () => {
    const encoder = new WireEncoder(1, schema);
    const bad = { ...record('z'), balance: '1'.repeat(40) };
    expect(() => encoder.encode(bad)).toThrow();
    expect(encoder.invalidPaths(bad)).toEqual(['balance']);
  });
});
