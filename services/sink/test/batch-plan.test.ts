import { describe, expect, it } from 'vitest';
import { planBatch } from '../src/targets/batch-plan.js';
import { changeJson } from '../src/targets/change-json.js';
import type { RowChange, TargetTable } from '../src/targets/target.js';

const table: TargetTable = { name: 't', primaryKey: ['id'], columns: [{ name: 'id', type: 'bytes', nullable: false }, { name: 'v', type: 'string', nullable: true }] };
const change = (id: string | Buffer, op: string, version: string): RowChange => ({ op, version, sourceTsMs: 1n, deleted: op === 'd', values: { id, v: op } });

describe('planBatch (the database table targets)', () => {
  it('keeps the last change per key (binary keys by their bytes), upserts apart from deletes', () => {
    const [a, b] = [Buffer.from([0xff]), Buffer.from([0xfe])];
    const plan = planBatch(table, [change(a, 'c', '1'), change(b, 'c', '2'), change(a, 'd', '3'), change(b, 'u', '4')]);
    expect(plan.batch.map((c) => c.version)).toEqual(['3', '4']);
    expect([plan.upserts.map((c) => c.version), plan.deletes.map((c) => c.version), plan.extra]).toEqual([['4'], ['3'], []]);
  });

  it('soft delete: a delete is an upsert flagged __deleted', () => {
    const plan = planBatch(table, [change('1', 'c', '1'), change('1', 'd', '2')], true);
    expect([plan.upserts.map((c) => c.version), plan.deletes, plan.extra, plan.extraValue(plan.upserts[0]!)]).toEqual([['2'], [], ['__deleted'], true]);
  });

  it('a table without a key is a change log: every change appended with its __op', () => {
    const plan = planBatch({ ...table, primaryKey: [] }, [change('1', 'c', '1'), change('1', 'd', '2')]);
    expect([plan.log, plan.upserts.map((c) => c.version), plan.deletes, plan.extra, plan.extraValue(plan.upserts[1]!)]).toEqual([true, ['1', '2'], [], ['__op'], 'd']);
  });
});

describe('changeJson (the stream targets)', () => {
  it('carries 64-bit integers as text and bytes as base64, without the share metadata fields', () => {
    const c: RowChange = { op: 'u', version: '7', sourceTsMs: 1_700_000_000_000n, deleted: false, values: { id: 9007199254740993n, card: Buffer.from('卡'), name: '张三', __op: 'u' } };
    expect(changeJson(c)).toEqual({ op: 'u', version: '7', source_ts_ms: '1700000000000', deleted: false, values: { id: '9007199254740993', card: Buffer.from('卡').toString('base64'), name: '张三' } });
  });
});
