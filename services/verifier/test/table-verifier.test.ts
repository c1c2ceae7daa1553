import { describe, expect, it } from 'vitest';
import { keyText, rowDigest, rowVersion } from '@cityshare/shared';
import { judge, settled, type Look } from '../src/table-verifier.js';

const at = { low: { file: 'bin.000003', pos: 5_000 }, high: { file: 'bin.000003', pos: 5_000 } };
const end = { file: 'bin.000003', pos: 9_000 };
const key = keyText(['1']);
const row = (value: string) => ({ key, digest: rowDigest(key, [value]), sourceKey: ['1'] });
const held = (value: string, eventPos: number) => ({ key, digest: rowDigest(key, [value]), version: rowVersion({ file: 'bin.000003', eventPos, row: 0 }), shareKey: '{"id":"1"}' });

describe('judging one key at one look', () => {
  it('compares a department row written before the snapshot; one written at or after it was changing', () => {
    expect(judge(row('a'), held('a', 100), at, end).verdict).toBe('equal');
    expect(judge(row('a'), held('b', 100), at, end).verdict).toBe('different');
    expect(judge(row('a'), held('b', 6_000), at, end).verdict).toBe('moving');
    expect(judge(undefined, held('b', 100), at, end).verdict).toBe('extra');
    expect(judge(undefined, held('b', 6_000), at, end).verdict).toBe('moving');
    expect(judge(row('a'), undefined, at, end).verdict).toBe('missing');
    expect(judge(undefined, undefined, at, end).verdict).toBe('equal');
  });

  it('takes a version past the end of the source binlog for what it is: written by hand, so compared', () => {
    expect(judge(row('a'), held('b', 99_999), at, end).verdict).toBe('different');
    expect(judge(undefined, { ...held('b', 0), version: '9999999999.999999999999.999999' }, at, end).verdict).toBe('extra');
  });

  it('settles missing only after two looks alike, and never what kept changing', () => {
    const missing = (value: string): Look => ({ expected: row(value), held: undefined, verdict: 'missing' });
    expect(settled([missing('a')])).toBe(false);
    expect(settled([missing('a'), missing('a')])).toBe(true);
    expect(settled([missing('a'), missing('b')])).toBe(false);
    expect(settled([{ expected: row('a'), held: held('b', 6_000), verdict: 'moving' }])).toBe(false);
    expect(settled([{ expected: row('a'), held: held('b', 100), verdict: 'different' }])).toBe(true);
  });
});
