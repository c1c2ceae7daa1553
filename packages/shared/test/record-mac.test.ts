import { describe, expect, it } from 'vitest';
import { FileKeyring, type KeyProvider } from '../src/crypto/keyring.js';
import { RECORD_MAC_HEADER, recordForgery, recordMacHeaders } from '../src/crypto/record-mac.js';

const material = (b: number) => Buffer.alloc(32, b).toString('base64');
const keys = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: material(1) }], 'department:health': [{ id: 'h1', material: material(2) }] } });
const topic = 'demo.checkpoints';
const value = '{"file":"mariadb-bin.000002","pos":8183}';

/** A record as a consumer sees it: headers as Buffers. */
function signed(k: KeyProvider = keys, t = topic, key: string | null = 'cityhub', v: string | null = value) {
  const headers = Object.fromEntries(Object.entries(recordMacHeaders(k, t, key, v)).map(([name, h]) => [name, Buffer.from(h)]));
  return { key: key === null ? null : Buffer.from(key), value: v === null ? null : Buffer.from(v), headers };
}

describe('record MAC', () => {
  it('names its version and the active pipeline key, and verifies', () => {
    const record = signed();
    expect(record.headers[RECORD_MAC_HEADER]!.toString()).toMatch(/^v1:p1:[A-Za-z0-9+/]{43}=$/);
    expect(recordForgery(keys, topic, record)).toBeNull();
  });

  it('refuses a record whose topic, key or value was changed', () => {
    const record = signed();
    expect(recordForgery(keys, 'demo.table-schemas', record)).toMatchObject({ code: 'RECORD_FORGED' });
    expect(recordForgery(keys, topic, { ...record, key: Buffer.from('cityhub2') })).toMatchObject({ code: 'RECORD_FORGED' });
    expect(recordForgery(keys, topic, { ...record, value: Buffer.from(value.replace('8183', '9999')) })).toMatchObject({ code: 'RECORD_FORGED' });
    // No bytes can move between the parts: key "ab" + value "c" is not key "a" + value "bc".
    const split = signed(keys, topic, 'ab', 'c');
    expect(recordForgery(keys, topic, { ...split, key: Buffer.from('a'), value: Buffer.from('bc') })).toMatchObject({ code: 'RECORD_FORGED' });
    // An absent value (a tombstone) is not an empty one.
    const tombstone = signed(keys, topic, 'cityhub', null);
    expect(recordForgery(keys, topic, tombstone)).toBeNull();
    expect(recordForgery(keys, topic, { ...tombstone, value: Buffer.alloc(0) })).toMatchObject({ code: 'RECORD_FORGED' });
  });

  it('refuses a record without the header, with an altered or malformed one, or with two', () => {
    const record = signed();
    const header = record.headers[RECORD_MAC_HEADER]!.toString();
    const mac = Buffer.from(header.split(':')[2]!, 'base64');
    mac[0] = mac[0]! ^ 1;
    const refused = (headers: Record<string, Buffer | Buffer[]> | undefined) => recordForgery(keys, topic, { ...record, headers });
    expect(refused(undefined)).toMatchObject({ code: 'RECORD_FORGED', message: expect.stringMatching(/has no cityshare-mac header/) });
    expect(refused({ [RECORD_MAC_HEADER]: Buffer.from(`v1:p1:${mac.toString('base64')}`) })).toMatchObject({ code: 'RECORD_FORGED', message: expect.stringMatching(/does not verify under pipeline key p1/) });
    expect(refused({ [RECORD_MAC_HEADER]: Buffer.from(header.replace('v1:', 'v2:')) })).toMatchObject({ code: 'RECORD_FORGED' });
    expect(refused({ [RECORD_MAC_HEADER]: Buffer.from('v1:p1') })).toMatchObject({ code: 'RECORD_FORGED' });
    expect(refused({ [RECORD_MAC_HEADER]: Buffer.from(`${header}A`) })).toMatchObject({ code: 'RECORD_FORGED' });
    expect(refused({ [RECORD_MAC_HEADER]: [Buffer.from(header), Buffer.from(header)] })).toMatchObject({ code: 'RECORD_FORGED' });
  });

  it('refuses a MAC under another key: a wrong key, an unknown key id, or a key of another list', () => {
    const other = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: material(9) }] } });
    expect(recordForgery(keys, topic, signed(other))).toMatchObject({ code: 'RECORD_FORGED', message: expect.stringMatching(/does not verify/) });
    const unknown = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p9', material: material(1) }] } });
    expect(recordForgery(keys, topic, signed(unknown))).toMatchObject({ code: 'RECORD_FORGED', message: expect.stringMatching(/names key p9, which is not a key of the pipeline list/) });
    // A department holds its own key: a MAC under it, naming it, is not the pipeline's.
    const department = { activeKey: () => keys.activeKey('department:health'), keyById: (id: string) => keys.keyById(id), keyOf: (_: string, id: string) => keys.keyById(id) };
    expect(recordForgery(keys, topic, signed(department))).toMatchObject({ code: 'RECORD_FORGED', message: expect.stringMatching(/names key h1/) });
  });

  it('verifies under any key of the pipeline list after a rotation, and signs with the newest', () => {
    const before = signed();
    const rotated = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: material(1) }, { id: 'p2', material: material(3) }] } });
    const after = signed(rotated);
    expect(after.headers[RECORD_MAC_HEADER]!.toString()).toMatch(/^v1:p2:/);
    expect(recordForgery(rotated, topic, before)).toBeNull();
    expect(recordForgery(rotated, topic, after)).toBeNull();
    expect(recordForgery(keys, topic, after)).toMatchObject({ code: 'RECORD_FORGED' });
  });

  it('does not use the pipeline key bytes themselves as the HMAC key', async () => {
    const { createHmac } = await import('node:crypto');
    const record = signed(keys, topic, null, null);
    const raw = createHmac('sha256', keys.activeKey('pipeline').material).update(Buffer.from([0, 0, 0, topic.length])).update(topic).update(Buffer.from([255, 255, 255, 255, 255, 255, 255, 255])).digest('base64');
    expect(record.headers[RECORD_MAC_HEADER]!.toString()).not.toContain(raw);
  });
});

describe('record MAC lists', () => {
  const both = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: material(1) }], deliveries: [{ id: 'd1', material: material(3) }] } });
  const sinkOnly = new FileKeyring({ version: 1, keys: { deliveries: [{ id: 'd1', material: material(3) }] } });

  it("signs delivery records under the deliveries list, which a sink holds without the pipeline key", () => {
    const headers = recordMacHeaders(sinkOnly, 'demo.audit.deliveries', 'k', '{}', 'deliveries');
    const record = { key: Buffer.from('k'), value: Buffer.from('{}'), headers };
    expect(recordForgery(both, 'demo.audit.deliveries', record, 'deliveries')).toBeNull();
    // A delivery key cannot pass for a pipeline key, nor the reverse.
    expect(recordForgery(both, 'demo.audit.deliveries', record)).toMatchObject({ code: 'RECORD_FORGED' });
    const pipelineSigned = { ...record, headers: recordMacHeaders(both, 'demo.audit.deliveries', 'k', '{}') };
    expect(recordForgery(both, 'demo.audit.deliveries', pipelineSigned, 'deliveries')).toMatchObject({ code: 'RECORD_FORGED' });
  });
});
