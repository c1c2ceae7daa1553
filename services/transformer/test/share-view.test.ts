import { describe, expect, it } from 'vitest';
import { EnvelopeEncryptor, FileKeyring, KeyringKekProvider, compileRowFilter, envelopeKeyIds, decodeRawMessage, openDepartmentValue, sealValue, sealedEventAad, type ChangeEvent } from '@cityshare/shared';
import { openImages, projectEvent, projectShareKeyDelete, type ViewKeys } from '../src/share-view.js';
import type { DepartmentView } from '../src/department-views.js';

const m = (b: number) => Buffer.alloc(32, b).toString('base64');
const keyring = new FileKeyring({
  version: 1,
  keys: { pipeline: [{ id: 'p1', material: m(1) }], 'department:health': [{ id: 'h1', material: m(2) }], 'token:citizen': [{ id: 't1', material: m(3) }] },
});
const keys: ViewKeys = {
  encryptor: (suite) => new EnvelopeEncryptor(new KeyringKekProvider(keyring), 'department:health', { suite }),
  token: (domain) => keyring.activeKey(domain === undefined ? 'department:health' : `token:${domain}`),
};
const sealImage = (side: 'before' | 'after', v: unknown, table = 'citizens') => sealValue(keyring.activeKey('pipeline'), { [side]: v }, sealedEventAad('civil', table, 'v1'));
/** Where the health department received row 7's id_card. */
const row7 = { source: 'cityhub', department: 'health', db: 'civil', table: 'citizens', column: 'id_card', key: { id: '7' } };
const secret = { name: '王小明', phone: '13912345678', id_card: '110101199001011234' };

const event: ChangeEvent = {
  op: 'u',
  before: null,
  after: { id: '7', district: '朝阳', visits: '9007199254740993' },
  sealed: sealImage('after', secret),
  source: { name: 'cityhub', serverId: 1, gtid: '0-1-5', file: 'b.000001', pos: 10, row: 0, txIndex: 0, db: 'civil', table: 'citizens', ts_ms: 1000, snapshot: false, version: 'v1' },
  ts_ms: 1,
  schema: {
    db: 'civil',
    table: 'citizens',
    primaryKey: ['id'],
    columns: [
      { name: 'id', type: { kind: 'bigint', unsigned: true }, sourceType: 'bigint unsigned', nullable: false },
      { name: 'name', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar', nullable: false },
      { name: 'phone', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar', nullable: true },
      { name: 'id_card', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'char(18)', nullable: false },
      { name: 'district', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar', nullable: false },
      { name: 'visits', type: { kind: 'bigint', unsigned: false }, sourceType: 'bigint', nullable: true },
    ],
  },
  protected: ['name', 'phone', 'id_card'],
};

const view: DepartmentView = {
  department: 'health',
  rules: [
    { column: 'id', action: 'pass' },
    { column: 'name', action: 'mask', mask: 'name' },
    { column: 'phone', action: 'tokenize', domain: undefined, options: {} },
    { column: 'id_card', action: 'encrypt', suite: 'aes-256-gcm' },
    { column: 'visits', action: 'pass' },
  ],
};

/** The pipeline's column classes of the table. */
const classes = { id: 'public', name: 'personal', phone: 'personal', id_card: 'secret', district: 'public', visits: 'internal' } as const;

/** projectEvent with the event's images opened, as the transformer calls it (an event in an earlier reader's layout, with its own seal). */
const project = (e: ChangeEvent, v: DepartmentView) => projectEvent(e, openImages(e, decodeRawMessage(Buffer.from(JSON.stringify(e)), { acceptLegacySeals: true }).secretsOf(0, keyring), classes), v, keys);

describe('projectEvent', () => {
  const record = project(event, view)!;

  it('delivers only granted columns plus change metadata', () => {
    expect(Object.keys(record.value).sort()).toEqual(['__deleted', '__op', '__source_ts_ms', '__version', 'id', 'id_card', 'name', 'phone', 'visits']);
    expect(record.key).toBe('{"id":"7"}');
    expect(record.value.__op).toBe('u');
    expect(record.value.__source_ts_ms).toBe(1000n);
  });

  it('masks, tokenizes and encrypts as granted; passes 64-bit values exactly', () => {
    expect(record.value.name).toBe('王**');
    expect(record.value.phone).toMatch(/^tok:h1:[A-Za-z0-9_-]{43}$/);
    expect(project(event, view)!.value.phone).toBe(record.value.phone);
    expect(openDepartmentValue(keyring, record.value.id_card as Buffer, row7)).toBe('110101199001011234');
    expect(record.value.visits).toBe(9007199254740993n);
  });

  it('binds each ciphertext to its source, department and row: moved elsewhere it does not open', () => {
    const rowB = project({ ...event, after: { ...event.after!, id: '8' } }, view)!;
    expect(rowB.key).toBe('{"id":"8"}');
    expect(openDepartmentValue(keyring, rowB.value.id_card as Buffer, { ...row7, key: JSON.parse(rowB.key) })).toBe(secret.id_card);
    const moved = expect.objectContaining({ code: 'DECRYPT_FAILED' });
    // Row 7's ciphertext placed into row 8 (same column): before the binding it opened.
    expect(() => openDepartmentValue(keyring, record.value.id_card as Buffer, { ...row7, key: { id: '8' } })).toThrow(moved);
    // Delivered to health, presented as another department's (holding the same KEK) or another source's.
    const haidianWithHealthKek = new FileKeyring({ version: 1, keys: { 'department:haidian': [{ id: 'h1', material: m(2) }] } });
    expect(() => openDepartmentValue(haidianWithHealthKek, record.value.id_card as Buffer, { ...row7, department: 'haidian' })).toThrow(moved);
    // Without that KEK in its own list, not even the data key unwraps.
    expect(() => openDepartmentValue(keyring, record.value.id_card as Buffer, { ...row7, department: 'haidian' })).toThrow(expect.objectContaining({ code: 'KEY_NOT_FOUND' }));
    expect(() => openDepartmentValue(keyring, record.value.id_card as Buffer, { ...row7, source: 'cityhub_west' })).toThrow(moved);
    const west = project({ ...event, source: { ...event.source, name: 'cityhub_west' } }, view)!;
    expect(() => openDepartmentValue(keyring, west.value.id_card as Buffer, row7)).toThrow(moved);
    expect(openDepartmentValue(keyring, west.value.id_card as Buffer, { ...row7, source: 'cityhub_west' })).toBe(secret.id_card);
  });

  it('binds a tokenized key as the department receives it, the token', () => {
    const tokenKey: DepartmentView = { department: 'health', rules: [{ column: 'id', action: 'tokenize', domain: 'citizen', options: {} }, { column: 'id_card', action: 'encrypt', suite: 'aes-256-gcm' }] };
    const r = project(event, tokenKey)!;
    expect(JSON.parse(r.key).id).toMatch(/^tok:/);
    expect(openDepartmentValue(keyring, r.value.id_card as Buffer, { ...row7, key: JSON.parse(r.key) })).toBe(secret.id_card);
    expect(() => openDepartmentValue(keyring, r.value.id_card as Buffer, row7)).toThrow(expect.objectContaining({ code: 'DECRYPT_FAILED' }));
  });

  it('binds a value of a table without a key to the change position its change log is keyed by', () => {
    const keyless = { ...event, schema: { ...event.schema, primaryKey: [] } };
    const r = project(keyless, view)!;
    expect(r.key).toBe('{}');
    expect(openDepartmentValue(keyring, r.value.id_card as Buffer, { ...row7, key: { __version: 'v1' } })).toBe(secret.id_card);
    expect(() => openDepartmentValue(keyring, r.value.id_card as Buffer, { ...row7, key: { __version: 'v2' } })).toThrow(expect.objectContaining({ code: 'DECRYPT_FAILED' }));
  });

  it('uses the before image of a delete', () => {
    const del = project({ ...event, op: 'd', before: event.after, after: null, sealed: sealImage('before', secret) }, view)!;
    expect(del.value.__deleted).toBe(true);
    expect(del.value.name).toBe('王**');
  });

  it('refuses an event stripped of its sealed columns, even with its protected list emptied', () => {
    const sealedNothing = sealValue(keyring.activeKey('pipeline'), null, sealedEventAad('civil', 'citizens', 'v1'));
    expect(() => project({ ...event, sealed: sealedNothing, protected: [] }, view)).toThrow(/lacks name, phone, id_card of its schema in its after image/);
    expect(() => project({ ...event, sealed: sealedNothing }, view)).toThrow(/protected columns but no sealed images/);
    expect(() => project({ ...event, sealed: null, protected: [] }, view)).toThrow(expect.objectContaining({ code: 'RECORD_FORGED' }));
  });

  it('refuses an event holding a column the pipeline protects in clear (personal, secret or unclassified): the sealing was bypassed', () => {
    const inClear = { ...event, after: { ...event.after!, phone: '13912345678' } };
    expect(() => project(inClear, view)).toThrow(expect.objectContaining({ code: 'RECORD_FORGED', message: expect.stringMatching(/holds phone in clear in its after image/) }));
    const unclassified = { ...event, before: { ...event.after!, blood_type: 'AB' }, op: 'u' as const };
    expect(() => project(unclassified, view)).toThrow(expect.objectContaining({ code: 'RECORD_FORGED', message: expect.stringMatching(/holds blood_type in clear in its before image/) }));
  });

  it('refuses sealed images moved to another event or table', () => {
    expect(() => project({ ...event, source: { ...event.source, version: 'v2' } }, view)).toThrow(/does not verify/);
    expect(() => project({ ...event, sealed: sealImage('after', secret, 'other') }, view)).toThrow(/does not verify/);
  });

  it('refuses to deliver when a key column is encrypted (rows could not be matched)', () => {
    const bad: DepartmentView = { department: 'health', rules: [{ column: 'id', action: 'encrypt', suite: 'aes-256-gcm' }] };
    expect(() => project(event, bad)).toThrow(/key columns must be pass or tokenize/);
  });

  it('refuses to deliver when a key column is not granted', () => {
    expect(() => project(event, { department: 'health', rules: [{ column: 'district', action: 'pass' }] })).toThrow(/not granted/);
  });

  it('tokenizes in a shared domain: two departments get the same token for the same value', () => {
    const shared: DepartmentView = { department: 'health', rules: [{ column: 'id', action: 'pass' }, { column: 'phone', action: 'tokenize', domain: 'citizen', options: { format: 'digits' } }] };
    const token = project(event, shared)!.value.phone as string;
    expect(token).toMatch(/^\d{11}$/);
    expect(token).not.toBe(secret.phone);
    expect(project(event, { ...shared, department: 'haidian' })!.value.phone).toBe(token);
  });

  it('encrypts with the SM4-CTR + HMAC-SM3 suite when the grant says so', () => {
    const sm4: DepartmentView = { department: 'health', rules: [{ column: 'id', action: 'pass' }, { column: 'id_card', action: 'encrypt', suite: 'sm4-ctr-hmac-sm3' }] };
    const value = project(event, sm4)!.value.id_card as Buffer;
    expect(envelopeKeyIds(value)).toEqual({ suite: 'sm4-ctr-hmac-sm3', kekId: 'h1' });
    expect(openDepartmentValue(keyring, value, row7)).toBe(secret.id_card);
  });
});

describe('row filters', () => {
  const haidian: DepartmentView = { ...view, filter: compileRowFilter('district == "海淀"') };
  const update = (from: string, to: string): ChangeEvent => ({ ...event, op: 'u', before: { ...event.after!, district: from }, after: { ...event.after!, district: to }, sealed: sealValue(keyring.activeKey('pipeline'), { before: secret, after: secret }, sealedEventAad('civil', 'citizens', 'v1')) });

  it('shares only the rows inside the filter', () => {
    expect(project({ ...event, op: 'c', after: { ...event.after!, district: '海淀' } }, haidian)!.value.__op).toBe('c');
    expect(project({ ...event, op: 'c', after: { ...event.after!, district: '朝阳' } }, haidian)).toBeNull();
  });

  it('turns a row moving into the view into a create and a row leaving it into a delete', () => {
    expect(project(update('朝阳', '海淀'), haidian)!.value).toMatchObject({ __op: 'c', __deleted: false });
    const leaving = project(update('海淀', '朝阳'), haidian)!;
    expect(leaving.value).toMatchObject({ __op: 'd', __deleted: true, name: '王**' });
    expect(leaving.key).toBe('{"id":"7"}');
    expect(project(update('海淀', '海淀'), haidian)!.value.__op).toBe('u');
    expect(project(update('朝阳', '东城'), haidian)).toBeNull();
  });

  it('filters on sealed (personal) columns too, opened in memory only', () => {
    const byName: DepartmentView = { ...view, filter: compileRowFilter('name starts_with "王"') };
    expect(project(event, byName)).not.toBeNull();
    expect(project(event, { ...view, filter: compileRowFilter('name starts_with "李"') })).toBeNull();
  });
});

describe('repairs (`cdc repair`)', () => {
  const haidian: DepartmentView = { ...view, filter: compileRowFilter('district == "海淀"') };
  const tokenKey: DepartmentView = { department: 'health', rules: [{ column: 'id', action: 'tokenize', domain: 'citizen', options: {} }, { column: 'name', action: 'mask', mask: 'name' }, { column: 'id_card', action: 'encrypt', suite: 'aes-256-gcm' }] };
  const repair = { department: 'health', request: 'r-1' };
  const nulls = { name: null, phone: null, id_card: null };
  /** A repair's delete by source key: the key, every other column null. */
  const repairDelete: ChangeEvent = { ...event, op: 'd', before: { id: '7', district: null, visits: null }, after: null, sealed: sealImage('before', nulls), source: { ...event.source, repair } };
  /** A repair's delete by share key: every column null, the key sealed beside them. */
  const byShareKey = (shareKey: string, e: ChangeEvent = { ...repairDelete, before: { id: null, district: null, visits: null } }) => {
    const sealed = sealValue(keyring.activeKey('pipeline'), { before: nulls, shareKey }, sealedEventAad('civil', 'citizens', 'v1'));
    const opened = decodeRawMessage(Buffer.from(JSON.stringify({ ...e, sealed })), { acceptLegacySeals: true }).secretsOf(0, keyring)!;
    openImages({ ...e, sealed }, opened, classes);
    return (v: DepartmentView) => projectShareKeyDelete(e, opened.shareKey!, v);
  };

  it('delivers a row read by a repair through the row filter, as a snapshot row', () => {
    const read: ChangeEvent = { ...event, op: 'r', source: { ...event.source, repair } };
    expect(project({ ...read, after: { ...read.after!, district: '海淀' } }, haidian)!.value).toMatchObject({ __op: 'r', __deleted: false, name: '王**' });
    expect(project(read, haidian)).toBeNull();
  });

  it('deletes a row by its source key whatever the filter says now, keyed as the department holds it', () => {
    const outside = project(repairDelete, haidian)!;
    expect(outside.key).toBe('{"id":"7"}');
    expect(outside.value).toEqual({ id: '7', name: null, phone: null, id_card: null, visits: null, __op: 'd', __version: 'v1', __source_ts_ms: 1000n, __deleted: true });
    // A stream delete outside the filter still delivers nothing: only a repair's goes past it.
    expect(project({ ...repairDelete, source: event.source }, haidian)).toBeNull();
    // A tokenized key: the token of the row's key, as every record of the row has it.
    expect(project(repairDelete, tokenKey)!.key).toBe(project(event, tokenKey)!.key);
  });

  it('deletes a department row by its share key: key fields typed from it, every other field null', () => {
    const held = project(event, tokenKey)!;
    const token = byShareKey(held.key)(tokenKey);
    expect(token.key).toBe(held.key);
    expect(token.value).toEqual({ id: JSON.parse(held.key).id, name: null, id_card: null, __op: 'd', __version: 'v1', __source_ts_ms: 1000n, __deleted: true });
    // A passed key is canonicalized (a department's text of it too), so it is the row's message key.
    for (const given of ['{"id":"7"}', '{"id":7}', '{"id":" 7"}']) {
      const passed = byShareKey(given)(view);
      expect(passed.key).toBe('{"id":"7"}');
      expect(passed.value).toMatchObject({ id: '7', name: null, phone: null, id_card: null, visits: null, __deleted: true });
    }
  });

  it('refuses a share key that is not the department\'s key, or outside a repair\'s delete (RECORD_INVALID)', () => {
    const invalid = (f: () => unknown, why: RegExp) => expect(f).toThrow(expect.objectContaining({ code: 'RECORD_INVALID', message: expect.stringMatching(why) }));
    invalid(() => byShareKey('not json')(view), /share key is not a JSON object/);
    invalid(() => byShareKey('{"visits":"1"}')(view), /lacks key column id/);
    invalid(() => byShareKey('{"id":"7","district":"海淀"}')(view), /names district, not key columns/);
    invalid(() => byShareKey('{"id":"x7"}')(view), /id is not a value of its type \(bigint unsigned\)/);
    invalid(() => byShareKey('{"id":7}')(tokenKey), /id is not a token/);
    invalid(() => byShareKey('{"id":"7"}', { ...repairDelete, source: event.source, before: { id: null, district: null, visits: null } })(view), /only in a repair's delete/);
  });
});
