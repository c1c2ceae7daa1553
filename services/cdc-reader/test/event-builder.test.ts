import { describe, expect, it } from 'vitest';
import { FileKeyring, openValue, sealedEventAad, type TableSchema } from '@cityshare/shared';
import { schemaRef, serializeEvent } from '../src/event-builder.js';
import { buildEvents, type BuildContext } from '../src/event-builder.js';
import type { RowsChange } from '../src/binlog-listener.js';

const keys = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: Buffer.alloc(32, 7).toString('base64') }] } });
const schema: TableSchema = {
  db: 'civil',
  table: 'citizens',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: { kind: 'bigint', unsigned: true }, sourceType: 'bigint unsigned', nullable: false },
    { name: 'name', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar(64)', nullable: false },
    { name: 'district', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar(32)', nullable: false },
    { name: 'added_later', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar(8)', nullable: true },
    { name: 'registered_at', type: { kind: 'datetime', fsp: 6 }, sourceType: 'datetime(6)', nullable: false },
  ],
};
const ctx: BuildContext = {
  sourceName: 'cityhub',
  serverId: 5101,
  classes: () => ({ id: 'public', name: 'personal', district: 'public', registered_at: 'internal' }),
  pipelineKey: keys.activeKey('pipeline'),
};
const row = (id: string, name: string) => ({ id, name, district: '海淀', added_later: 'x', registered_at: '2024-01-01 10:00:00.123456' });
const change = (kind: RowsChange['kind'], rows: RowsChange['rows']): RowsChange => ({
  kind, schema, rows, file: 'mariadb-bin.000002', eventPos: 8183, gtid: '0-1-28', tsMs: 1_700_000_000_000, txOffset: 5,
});

describe('buildEvents', () => {
  it('builds a Debezium-shaped create with source position and a sortable version', () => {
    const [built] = buildEvents(change('insert', [{ before: null, after: row('1', '张三') }]), ctx, 1);
    expect(built!.key).toBe('{"id":"1"}');
    expect(built!.event.op).toBe('c');
    expect(built!.event.before).toBeNull();
    expect(built!.event.source).toMatchObject({ name: 'cityhub', db: 'civil', table: 'citizens', file: 'mariadb-bin.000002', pos: 8183, gtid: '0-1-28', row: 0, txIndex: 5, snapshot: false, version: '0000000002.000000008183.000000' });
    expect(built!.event.after!.registered_at).toBe('2024-01-01T10:00:00.123456');
  });

  it('seals personal and unclassified columns under the pipeline key, leaves public ones clear', () => {
    const [built] = buildEvents(change('insert', [{ before: null, after: row('1', '张三') }]), ctx);
    const { event } = built!;
    expect(event.after).toEqual({ id: '1', district: '海淀', registered_at: '2024-01-01T10:00:00.123456' });
    expect(serializeEvent(event)).not.toContain('张三');
    expect(event.protected.sort()).toEqual(['added_later', 'name']);
    const aad = sealedEventAad('civil', 'citizens', event.source.version);
    expect(openValue(keys, event.sealed!, aad)).toEqual({ after: { name: '张三', added_later: 'x' } });
    const wire = JSON.parse(serializeEvent(event));
    expect(wire).toEqual({ ...JSON.parse(JSON.stringify(event)), schema: undefined, schemaRef: schemaRef(schema).ref });
    expect(wire).not.toHaveProperty('schema');
    expect(schemaRef(structuredClone(schema)).ref).toBe(schemaRef(schema).ref);
  });

  it('splits a primary-key change into a delete of the old key and a create of the new one', () => {
    const events = buildEvents(change('update', [{ before: row('3', '李四'), after: row('30', '李四') }]), ctx);
    expect(events.map((e) => [e.event.op, e.key])).toEqual([['d', '{"id":"3"}'], ['c', '{"id":"30"}']]);
    expect(events[0]!.event.after).toBeNull();
    expect(events[1]!.event.before).toBeNull();
  });

  it('gives every row of one rows event its own version, in order', () => {
    const events = buildEvents(change('delete', [{ before: row('1', 'a'), after: null }, { before: row('2', 'b'), after: null }]), ctx);
    expect(events.map((e) => e.event.source.version)).toEqual(['0000000002.000000008183.000000', '0000000002.000000008183.000001']);
    expect(events.every((e) => e.event.op === 'd')).toBe(true);
    expect(events.map((e) => e.event.source.txIndex)).toEqual([5, 6]);
  });

  it('hashes the message key when a key column is protected', () => {
    const sealedKey: BuildContext = { ...ctx, classes: () => ({ id: 'secret', district: 'public' }) };
    const [a] = buildEvents(change('insert', [{ before: null, after: row('1', 'x') }]), sealedKey);
    const [b] = buildEvents(change('insert', [{ before: null, after: row('1', 'y') }]), sealedKey);
    expect(a!.key).not.toContain('1"');
    expect(a!.key).toBe(b!.key);
  });
});
