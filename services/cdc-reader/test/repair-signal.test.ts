import { describe, expect, it } from 'vitest';
import { FileKeyring, recordForgery, type TableSchema } from '@cityshare/shared';
import { MAX_REPAIR_KEYS, openSignal, readerSignal, signalRecord, signalSummary, type RepairSignal } from '../src/reader-signal.js';
import { keyImage, planRepair } from '../src/snapshot/repair-plan.js';
import { canonicalKey } from '../src/event-builder.js';

const keys = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: Buffer.alloc(32, 7).toString('base64') }] } });
const repair = (over: Partial<RepairSignal> = {}) => ({ action: 'repair' as const, source: 'cityhub', table: 'civil.citizens', department: 'health', request: 'r-1', ...over });

describe('reader signals', () => {
  it('reads the snapshot signal as before, and a repair with what it leaves out empty', () => {
    expect(readerSignal.parse({ action: 'snapshot', source: 'cityhub', tables: ['civil.citizens'] })).toEqual({ action: 'snapshot', source: 'cityhub', tables: ['civil.citizens'] });
    expect(readerSignal.parse(repair({ keys: [{ id: '7' }], requestedBy: 'ops' }))).toEqual({ ...repair(), keys: [{ id: '7' }], deletes: [], shareKeys: [], requestedBy: 'ops' });
  });

  it(`refuses a repair naming nothing, or more than ${MAX_REPAIR_KEYS} keys in all, or no table, department or request`, () => {
    const problems = (signal: unknown) => {
      const r = readerSignal.safeParse(signal);
      return r.success ? [] : r.error.issues.map((i) => `${i.path.map(String).join('.')}: ${i.message}`);
    };
    expect(problems(repair())).toEqual([': a repair names no keys, deletes or share keys']);
    const half = Array.from({ length: MAX_REPAIR_KEYS / 2 }, (_, i) => ({ id: i }));
    expect(problems(repair({ keys: half, deletes: half }))).toEqual([]);
    expect(problems(repair({ keys: half, deletes: half, shareKeys: ['{"id":"tok:x"}'] }))).toEqual([`: a repair names ${MAX_REPAIR_KEYS + 1} keys, over ${MAX_REPAIR_KEYS}: split it`]);
    expect(problems(repair({ keys: [...half, ...half, { id: 1 }] }))[0]).toMatch(/^keys: Too big/);
    expect(problems({ ...repair({ keys: [{ id: 1 }] }), table: 'citizens' })[0]).toMatch(/^table:/);
    expect(problems({ ...repair({ keys: [{ id: 1 }] }), department: '' })[0]).toMatch(/^department:/);
    expect(problems({ ...repair({ keys: [{ id: 1 }] }), request: undefined })[0]).toMatch(/^request:/);
    expect(problems(repair({ keys: [{ id: { nested: 1 } as never }] }))[0]).toMatch(/^keys\.0\.id:/);
  });

  it('signs a repair with the pipeline key like a snapshot: altered, it is forged', () => {
    const { topic, message } = signalRecord(keys, 'demo', repair({ keys: [{ id: '7' }] }));
    expect(topic).toBe('demo.signals');
    expect(message.key).toBe('cityhub');
    expect(recordForgery(keys, topic, message)).toBeNull();
    const altered = { ...message, value: message.value.replace('"health"', '"police"') };
    expect(recordForgery(keys, topic, altered)).toMatchObject({ code: 'RECORD_FORGED' });
  });

  it('seals a repair\'s keys on the topic, bound to its source, table, department and request', () => {
    const signal = repair({ keys: [{ id_card: '110101199001011234' }], deletes: [{ id_card: '110101199001010000' }], shareKeys: ['{"id_card":"tok:abc"}'] });
    const { value } = signalRecord(keys, 'demo', signal).message;
    expect(value).not.toMatch(/110101|tok:abc|"keys"|"deletes"|"shareKeys"/);
    expect(JSON.parse(value)).toMatchObject({ action: 'repair', source: 'cityhub', table: 'civil.citizens', department: 'health', request: 'r-1', sealed: expect.stringMatching(/^enc:v1:/) });
    expect(openSignal(keys, value)).toEqual(readerSignal.parse(signal));
    // Moved to another department or request (past the MAC, by someone holding it), the keys do not open.
    expect(openSignal(keys, value.replace('"health"', '"police"'))).toMatchObject({ code: 'DECRYPT_FAILED' });
    // Keys in clear are not taken: whatever wrote them did not seal them.
    expect(openSignal(keys, JSON.stringify({ ...JSON.parse(value), keys: [{ id_card: '1' }] }))).toEqual({ code: 'SIGNAL_REFUSED', problems: ['a repair names its keys sealed, never in clear'] });
    expect(openSignal(keys, JSON.stringify({ ...JSON.parse(value), sealed: undefined }))).toEqual({ code: 'SIGNAL_REFUSED', problems: ['a repair without its sealed keys'] });
    // A snapshot signal is as it was.
    const snapshot = signalRecord(keys, 'demo', { action: 'snapshot', source: 'cityhub', tables: ['civil.citizens'] }).message.value;
    expect(JSON.parse(snapshot)).toEqual({ action: 'snapshot', source: 'cityhub', tables: ['civil.citizens'] });
    expect(openSignal(keys, snapshot)).toEqual(JSON.parse(snapshot));
  });

  it('summarizes a repair for the log by counts, never by its keys', () => {
    const summary = JSON.stringify(signalSummary(readerSignal.parse(repair({ keys: [{ id_card: '110101199001011234' }], shareKeys: ['{"id_card":"tok:abc"}'] }))));
    expect(summary).not.toMatch(/110101199001011234|tok:abc/);
    expect(JSON.parse(summary)).toMatchObject({ action: 'repair', table: 'civil.citizens', department: 'health', request: 'r-1', keys: 1, deletes: 0, shareKeys: 1 });
  });
});

describe('planRepair', () => {
  const schema: TableSchema = {
    db: 'civil',
    table: 'citizens',
    primaryKey: ['region', 'id'],
    columns: [
      { name: 'id', type: { kind: 'bigint', unsigned: true }, sourceType: 'bigint unsigned', nullable: false },
      { name: 'region', type: { kind: 'bytes' }, sourceType: 'binary(2)', nullable: false },
      { name: 'since', type: { kind: 'datetime', fsp: 6 }, sourceType: 'datetime(6)', nullable: false },
      { name: 'name', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar(64)', nullable: true },
    ],
  };
  const health = (d: string) => d === 'health';
  const plan = (over: Partial<RepairSignal>) => planRepair(readerSignal.parse(repair(over)) as RepairSignal, schema, health);

  it('turns keys given as canonical values or a department\'s text into the source\'s own, each read once', () => {
    const p = plan({ keys: [{ id: 7, region: 'AAE=' }, { region: '\\x0001', id: '7' }], deletes: [{ id: '8', region: 'AAE=' }], shareKeys: ['{"id":"tok:1"}', '{"id":"tok:1"}'] });
    const row7 = canonicalKey(schema, { id: '7', region: Buffer.from([0, 1]) });
    expect(p.keys.map((k) => k.key)).toEqual([row7, canonicalKey(schema, { id: '8', region: Buffer.from([0, 1]) })]);
    expect(p.keys[0]!.values).toEqual({ region: Buffer.from([0, 1]), id: '7' });
    expect([...p.deletes]).toEqual([p.keys[1]!.key]);
    expect(p.shareKeys).toEqual(['{"id":"tok:1"}']);
    expect(keyImage(schema, p.keys[1]!.values)).toEqual({ id: '8', region: Buffer.from([0, 1]), since: null, name: null });
  });

  it('refuses, saying why and never a key value: unregistered or keyless table, no grant, keys that are not the primary key', () => {
    const refusal = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        expect((err as { code: string }).code).toBe('SIGNAL_REFUSED');
        expect((err as Error).message).not.toMatch(/4711|secret-name/);
        return (err as Error).message;
      }
      return expect.fail('not refused');
    };
    const signal = readerSignal.parse(repair({ keys: [{ id: 4711, region: 'AAE=' }] })) as RepairSignal;
    expect(refusal(() => planRepair(signal, undefined, health))).toMatch(/r-1 of civil\.citizens for health refused: the table is not registered/);
    expect(refusal(() => planRepair(signal, { ...schema, primaryKey: [] }, health))).toMatch(/no primary key/);
    expect(refusal(() => planRepair(signal, schema, () => false))).toMatch(/department health has no grant on the table/);
    expect(refusal(() => plan({ keys: [{ id: 4711 }] }))).toMatch(/keys\[0\] names columns id; the primary key is region, id/);
    expect(refusal(() => plan({ deletes: [{ id: 4711, region: 'AAE=', name: 'secret-name' }] }))).toMatch(/deletes\[0\] names columns id, region, name/);
    expect(refusal(() => plan({ keys: [{ id: null, region: 'AAE=' }] }))).toMatch(/keys\[0\]\.id is null/);
    expect(refusal(() => plan({ keys: [{ id: '4711x', region: 'AAE=' }] }))).toMatch(/keys\[0\]\.id is not a value of its type \(bigint unsigned\)/);
    expect(refusal(() => plan({ shareKeys: ['tok:4711'] }))).toMatch(/shareKeys\[0\] is not the JSON object of a share record's key/);
  });
});
