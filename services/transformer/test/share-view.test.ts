import { describe, expect, it } from 'vitest';
import { EnvelopeEncryptor, FileKeyring, KeyringKekProvider, openDepartmentValue, sealValue, sealedEventAad, type ChangeEvent } from '@cityshare/shared';
import { projectEvent, type ViewKeys } from '../src/share-view.js';
import type { DepartmentView } from '../src/department-views.js';

const m = (b: number) => Buffer.alloc(32, b).toString('base64');
const keyring = new FileKeyring({
  version: 1,
  keys: { pipeline: [{ id: 'p1', material: m(1) }], 'department:health': [{ id: 'h1', material: m(2) }] },
});
const keys: ViewKeys = { pipeline: keyring, department: new EnvelopeEncryptor(new KeyringKekProvider(keyring), 'department:health'), token: keyring.activeKey('department:health') };
const sealImage = (side: 'before' | 'after', v: unknown, table = 'citizens') => sealValue(keyring.activeKey('pipeline'), { [side]: v }, sealedEventAad('civil', table, 'v1'));
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
    { column: 'phone', action: 'tokenize' },
    { column: 'id_card', action: 'encrypt' },
    { column: 'visits', action: 'pass' },
  ],
};

describe('projectEvent', () => {
  const record = projectEvent(event, view, keys);

  it('delivers only granted columns plus change metadata', () => {
    expect(Object.keys(record.value).sort()).toEqual(['__deleted', '__op', '__source_ts_ms', '__version', 'id', 'id_card', 'name', 'phone', 'visits']);
    expect(record.key).toBe('{"id":"7"}');
    expect(record.value.__op).toBe('u');
    expect(record.value.__source_ts_ms).toBe(1000n);
  });

  it('masks, tokenizes and encrypts as granted; passes 64-bit values exactly', () => {
    expect(record.value.name).toBe('王**');
    expect(record.value.phone).toMatch(/^tok:h1:[A-Za-z0-9_-]{43}$/);
    expect(projectEvent(event, view, keys).value.phone).toBe(record.value.phone);
    expect(openDepartmentValue(keyring, record.value.id_card as Buffer, 'civil', 'citizens', 'id_card')).toBe('110101199001011234');
    expect(record.value.visits).toBe(9007199254740993n);
  });

  it('uses the before image of a delete', () => {
    const del = projectEvent({ ...event, op: 'd', before: event.after, after: null, sealed: sealImage('before', secret) }, view, keys);
    expect(del.value.__deleted).toBe(true);
    expect(del.value.name).toBe('王**');
  });

  it('refuses sealed images moved to another event or table', () => {
    expect(() => projectEvent({ ...event, source: { ...event.source, version: 'v2' } }, view, keys)).toThrow(/does not verify/);
    expect(() => projectEvent({ ...event, sealed: sealImage('after', secret, 'other') }, view, keys)).toThrow(/does not verify/);
  });

  it('refuses to deliver when a key column is encrypted (rows could not be matched)', () => {
    const bad: DepartmentView = { department: 'health', rules: [{ column: 'id', action: 'encrypt' }] };
    expect(() => projectEvent(event, bad, keys)).toThrow(/key columns must be pass or tokenize/);
  });

  it('refuses to deliver when a key column is not granted', () => {
    expect(() => projectEvent(event, { department: 'health', rules: [{ column: 'district', action: 'pass' }] }, keys)).toThrow(/not granted/);
  });
});
