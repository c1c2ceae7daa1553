import { describe, expect, it } from 'vitest';
import { CopyRows, copyField, copyInstant } from '../src/targets/pg-copy.js';

const rowsOf = (rows: string[][], chunkChars?: number) => {
  const out = new CopyRows(chunkChars);
  for (const r of rows) {
    for (const f of r.slice(0, -1)) out.field(f);
    out.last(r.at(-1)!);
  }
  return out.finish().map((b) => b.toString('utf8'));
};

describe('COPY text format', () => {
  it('escapes the backslash, tab, newline and carriage return, and nothing else', () => {
    expect(copyField('a\tb\nc\rd\\e')).toBe('a\\tb\\nc\\rd\\\\e');
    expect(copyField('\\N')).toBe('\\\\N');
    expect(copyField('\\.')).toBe('\\\\.');
    expect(copyField('北京 😀 "q" \'s\' , ; \u000b\f\b')).toBe('北京 😀 "q" \'s\' , ; \u000b\f\b');
  });

  it('writes NULL as \\N and the empty string as an empty field', () => {
    expect(copyField(null)).toBe('\\N');
    expect(copyField(undefined)).toBe('\\N');
    expect(copyField('')).toBe('');
    expect(rowsOf([[copyField(''), copyField(null), copyField('x')]])).toEqual(['\t\\N\tx\n']);
  });

  it('writes numbers, bigints and booleans as node-postgres sends them as parameters', () => {
    expect(copyField(-9223372036854775808n)).toBe('-9223372036854775808');
    expect(copyField(1.5e300)).toBe('1.5e+300');
    expect(copyField(Number.NaN)).toBe('NaN');
    expect(copyField(-Infinity)).toBe('-Infinity');
    expect(copyField(true)).toBe('true');
    expect(copyField(false)).toBe('false');
  });

  it('writes bytes in bytea hex input, its backslash escaped', () => {
    expect(copyField(Buffer.from([0x00, 0x5c, 0x09, 0xff]))).toBe('\\\\x005c09ff');
    expect(copyField(Buffer.alloc(0))).toBe('\\\\x');
  });

  it('writes instants in ISO 8601 UTC, and one PostgreSQL cannot read as text it refuses', () => {
    expect(copyInstant(1_700_000_000_123)).toBe('2023-11-14T22:13:20.123Z');
    expect(copyField(new Date(0))).toBe('1970-01-01T00:00:00.000Z');
    expect(copyInstant(Number.NaN)).toBe('invalid');
  });

  it('writes rows in chunks (CopyData messages need not end with a row; a field is never split), and an instant shared by rows once', () => {
    const rows = Array.from({ length: 10 }, (_, i) => [String(i), i % 2 ? '北京😀' : 'x'.repeat(10)]);
    const chunks = rowsOf(rows, 40);
    expect(chunks.join('')).toBe(rows.map((r) => `${r.join('\t')}\n`).join(''));
    expect(chunks.length).toBeGreaterThan(1);
    expect(rowsOf([])).toEqual([]);
    // A field longer than a chunk gets a chunk of its own size.
    expect(rowsOf([['a'], ['长'.repeat(100)], ['b']], 40).join('')).toBe(`a\n${'长'.repeat(100)}\nb\n`);
    const copy = new CopyRows();
    expect([copy.instant(0), copy.instant(0), copy.instant(1), copy.instant(Number.NaN)]).toEqual(['1970-01-01T00:00:00.000Z', '1970-01-01T00:00:00.000Z', '1970-01-01T00:00:00.001Z', 'invalid']);
  });
});
