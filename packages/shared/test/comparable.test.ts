import { describe, expect, it } from 'vitest';
import { BucketDigests, canonicalOfText, comparable, keyText, logicalTypeOf, rowDigest, toCanonical } from '../src/index.js';

/** One value as the source's canonical form, PostgreSQL's text and MySQL's driver give it: one comparable text. */
const same = (columnType: string, ...forms: unknown[]) => {
  const type = logicalTypeOf(columnType);
  const texts = forms.map((f) => comparable(type, f));
  expect(new Set(texts).size, `${columnType}: ${JSON.stringify(texts)}`).toBe(1);
  return texts[0];
};

describe('comparable: one text per value, whichever side it is read from', () => {
  it('numbers: integers, 64-bit, decimals at their scale, floats as float32, doubles', () => {
    expect(same('int(11)', 42, '42')).toBe('42');
    expect(same('bigint(20) unsigned', '18446744073709551615', ' 18446744073709551615')).toBe('18446744073709551615');
    expect(same('decimal(10,2)', '12.50', '12.5', toCanonical(logicalTypeOf('decimal(10,2)'), '12.50'))).toBe('12.50');
    expect(same('decimal(10,2)', '-0.00', '0.00', '0')).toBe('0.00');
    expect(same('float', toCanonical(logicalTypeOf('float'), 3.14), '3.14', 3.140000104904175));
    expect(same('double', 0.1, '0.1')).toBe('0.1');
    expect(same('boolean', true, 't', 1, 'true')).toBe('true');
  });

  it('dates and times: fractions without trailing zeros, instants in UTC with their zone', () => {
    expect(same('date', '2024-05-01', '2024-05-01')).toBe('2024-05-01');
    expect(same('datetime(6)', '2024-05-01T10:00:00.120000', '2024-05-01 10:00:00.12', '2024-05-01 10:00:00.120000')).toBe('2024-05-01T10:00:00.12');
    expect(same('timestamp(3)', '2024-05-01T10:00:00.123Z', '2024-05-01 10:00:00.123+00', '2024-05-01 10:00:00.123000')).toBe('2024-05-01T10:00:00.123Z');
    expect(same('time(3)', '10:00:00.500', '10:00:00.5')).toBe('10:00:00.5');
    expect(same('time', '-838:59:59', '-838:59:59.000000')).toBe('-838:59:59');
  });

  it('JSON with its keys in any order and any spacing; bytes as base64 from bytes, hex or base64', () => {
    expect(same('json', '{"b":1,"a":[1,2]}', { a: [1, 2], b: 1 }, '{"a": [1, 2], "b": 1}')).toBe('{"a":[1,2],"b":1}');
    expect(same('blob', 'AQID', Buffer.from([1, 2, 3]), '\\x010203')).toBe('AQID');
  });

  it('keeps different values different, and null null', () => {
    const t = logicalTypeOf('varchar(20)');
    expect(comparable(t, 'a')).not.toBe(comparable(t, 'b'));
    expect(comparable(t, null)).toBeNull();
    expect(comparable(logicalTypeOf('decimal(10,2)'), '12.50')).not.toBe(comparable(logicalTypeOf('decimal(10,2)'), '12.51'));
    expect(comparable(logicalTypeOf('datetime(6)'), '2024-05-01 10:00:00.000001')).not.toBe(comparable(logicalTypeOf('datetime(6)'), '2024-05-01 10:00:00'));
  });

  it('reads a key column back into the canonical value the share record carried', () => {
    expect(canonicalOfText(logicalTypeOf('int(11)'), '42')).toBe(42);
    expect(canonicalOfText(logicalTypeOf('bigint(20) unsigned'), '42')).toBe('42');
    expect(canonicalOfText(logicalTypeOf('datetime(3)'), '2024-05-01 10:00:00.1')).toBe('2024-05-01T10:00:00.100');
    expect(canonicalOfText(logicalTypeOf('timestamp'), '2024-05-01 10:00:00+00')).toBe('2024-05-01T10:00:00Z');
  });
});

describe('row digests and key buckets', () => {
  it('a row digest depends on its key and every value, a null unlike an empty text', () => {
    const key = keyText(['42']);
    expect(rowDigest(key, ['a', null])).toEqual(rowDigest(key, ['a', null]));
    expect(rowDigest(key, ['a', null])).not.toEqual(rowDigest(key, ['a', '']));
    expect(rowDigest(key, ['a', 'b'])).not.toEqual(rowDigest(keyText(['43']), ['a', 'b']));
    expect(rowDigest(key, ['ab', 'c'])).not.toEqual(rowDigest(key, ['a', 'bc']));
  });

  it('bucket digests do not depend on the order rows come in, and name the buckets that differ', () => {
    const rows = Array.from({ length: 100 }, (_, i) => [keyText([String(i)]), rowDigest(keyText([String(i)]), [`v${i}`])] as const);
    const a = new BucketDigests(64);
    const b = new BucketDigests(64);
    rows.forEach(([k, d]) => a.add(k, d));
    [...rows].reverse().forEach(([k, d]) => b.add(k, d));
    expect(a.differing(b)).toEqual([]);
    const c = new BucketDigests(64);
    rows.slice(1).forEach(([k, d]) => c.add(k, d));
    c.add(rows[0]![0], rowDigest(rows[0]![0], ['changed']));
    expect(a.differing(c)).toHaveLength(1);
    expect(a.toJSON().reduce((n, x) => n + x.rows, 0)).toBe(100);
  });
});
