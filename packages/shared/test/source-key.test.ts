import { describe, expect, it } from 'vitest';
import { toCanonical, type LogicalType } from '../src/column-types.js';
import { canonicalKeyValue, sourceKeyValue } from '../src/source-key.js';
import { repairVersion, rowVersion } from '../src/position.js';

/** Key columns of each kind, a value as the source connection returns it, and texts a department's table holds for it. */
const cases: Array<{ type: LogicalType; raw: unknown; texts: unknown[] }> = [
  { type: { kind: 'int', bits: 32, unsigned: false }, raw: -42, texts: ['-42', ' -42'] },
  { type: { kind: 'bigint', unsigned: true }, raw: '18446744073709551615', texts: ['18446744073709551615'] },
  { type: { kind: 'bigint', unsigned: false }, raw: '-9007199254740993', texts: [' -9007199254740993'] },
  { type: { kind: 'decimal', precision: 12, scale: 2 }, raw: '12.50', texts: ['12.5', '12.500'] },
  { type: { kind: 'date' }, raw: '2024-02-29', texts: ['2024-02-29'] },
  { type: { kind: 'datetime', fsp: 6 }, raw: '2024-02-29 13:14:15.120000', texts: ['2024-02-29 13:14:15.12', '2024-02-29T13:14:15.120'] },
  { type: { kind: 'timestamp', fsp: 3 }, raw: '2024-02-29 13:14:15.500', texts: ['2024-02-29 13:14:15.5+00', '2024-02-29T13:14:15.5Z'] },
  { type: { kind: 'time', fsp: 0 }, raw: '-838:59:59', texts: ['-838:59:59'] },
  { type: { kind: 'bool' }, raw: 1, texts: ['t', 'true', true] },
  { type: { kind: 'bit', bits: 10 }, raw: Buffer.from([0x02, 0x05]), texts: ['1000000101'] },
  { type: { kind: 'bytes' }, raw: Buffer.from([0, 1, 0xfe, 0xff]), texts: ['\\x0001feff', 'AAH+/w=='] },
  { type: { kind: 'string', charset: 'utf8mb4' }, raw: '王小明😀', texts: ['王小明😀'] },
  { type: { kind: 'uuid' }, raw: '123e4567-e89b-12d3-a456-426614174000', texts: ['123e4567-e89b-12d3-a456-426614174000'] },
];

describe('sourceKeyValue', () => {
  it.each(cases.map((c) => [c.type.kind, c] as const))('gives back, from the canonical form of a %s key and from a department\'s text of it, the canonical value of the row\'s events', (_, { type, raw, texts }) => {
    const canonical = toCanonical(type, raw);
    expect(canonicalKeyValue(type, canonical)).toEqual(canonical);
    for (const text of texts) expect(canonicalKeyValue(type, text)).toEqual(canonical);
    // As a query parameter: what the source connection itself returns for the column.
    expect(toCanonical(type, sourceKeyValue(type, canonical))).toEqual(canonical);
  });

  it('refuses what is not a value of the type, naming the type and never the value', () => {
    const refused = (type: LogicalType, value: unknown) => {
      try {
        sourceKeyValue(type, value);
      } catch (err) {
        return err as { code: string; message: string };
      }
      return expect.fail(`${JSON.stringify(value)} was taken as a ${type.kind}`);
    };
    for (const [type, value] of [
      [{ kind: 'int', bits: 32, unsigned: false }, 'abc'],
      [{ kind: 'bigint', unsigned: false }, '12x'],
      [{ kind: 'decimal', precision: 5, scale: 2 }, '1e5'],
      [{ kind: 'date' }, '110101199001011234'],
      [{ kind: 'datetime', fsp: 0 }, 'yesterday'],
      [{ kind: 'bit', bits: 4 }, '0102'],
      [{ kind: 'bytes' }, 'not base64!'],
    ] as Array<[LogicalType, unknown]>) {
      const err = refused(type, value);
      expect(err.code).toBe('RECORD_INVALID');
      expect(err.message).toBe(`not a ${type.kind} value`);
    }
  });
});

describe('repairVersion', () => {
  const at = { file: 'mariadb-bin.000007', pos: 4_000 };

  it('sorts after every version at its position and before every later change', () => {
    const repair = repairVersion(at, 1_700_000_000_000, 3);
    expect(repair > rowVersion({ file: at.file, eventPos: at.pos, row: 99_999 })).toBe(true);
    expect(repair > rowVersion({ file: at.file, eventPos: at.pos - 1, row: 0 })).toBe(true);
    expect(repair < rowVersion({ file: at.file, eventPos: at.pos + 1, row: 0 })).toBe(true);
    expect(repair < rowVersion({ file: 'mariadb-bin.000008', eventPos: 4, row: 0 })).toBe(true);
  });

  it('orders two repairs at one position by their stamp, then rows by index, at a fixed width', () => {
    expect(repairVersion(at, 1_700_000_000_001, 0) > repairVersion(at, 1_700_000_000_000, 999)).toBe(true);
    expect(repairVersion(at, 5, 2) > repairVersion(at, 5, 1)).toBe(true);
    expect(repairVersion(at, 5, 2)).toHaveLength(repairVersion(at, 1_700_000_000_000, 123_456).length);
  });
});
