import { describe, expect, it } from 'vitest';
import { FileKeyring, repairVersion, type ColumnClass, type TableSchema } from '@cityshare/shared';
import { encoderFor } from '../src/event-encoder.js';
import { schemaRef, serializeEvent } from '../src/event-builder.js';
import { buildEvents, type BuildContext } from '../src/event-builder.js';
import type { RowsChange } from '../src/binlog-listener.js';
import { keyImage } from '../src/snapshot/repair-plan.js';

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

  it('sets personal and unclassified columns apart to be sealed, leaves public ones clear', () => {
    const [built] = buildEvents(change('insert', [{ before: null, after: row('1', '张三') }]), ctx);
    const { event } = built!;
    expect(event.after).toEqual({ id: '1', district: '海淀', registered_at: '2024-01-01T10:00:00.123456' });
    expect(serializeEvent(event)).not.toContain('张三');
    expect(serializeEvent(event)).not.toContain('sealed');
    expect(event.protected.sort()).toEqual(['added_later', 'name']);
    expect(built!.secrets).toEqual({ after: { name: '张三', added_later: 'x' } });
    expect(buildEvents(change('delete', [{ before: row('1', '张三'), after: null }]), ctx)[0]!.secrets).toEqual({ before: { name: '张三', added_later: 'x' } });
    expect(buildEvents(change('insert', [{ before: null, after: row('1', '张三') }]), { ...ctx, classes: () => ({ id: 'public', name: 'public', district: 'public', added_later: 'public', registered_at: 'public' }) })[0]!.secrets).toBeNull();
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

  it('builds a repair for one department: rows read as r, keys to delete as d, share keys sealed, versions after the position\'s own', () => {
    const repairChange: RowsChange = {
      ...change('repair', [
        { before: null, after: row('1', '张三') },
        { before: keyImage(schema, { id: '2' }), after: null },
        { before: keyImage(schema, {}), after: null, shareKey: '{"id":"tok:abc"}' },
      ]),
      txOffset: 0,
      repair: { department: 'health', request: 'r-1', stamp: 1_700_000_000_000 },
    };
    const events = buildEvents(repairChange, ctx, 1);
    expect(events.map((e) => e.event.op)).toEqual(['r', 'd', 'd']);
    expect(events.map((e) => e.event.source.version)).toEqual([0, 1, 2].map((row) => repairVersion({ file: 'mariadb-bin.000002', pos: 8183 }, 1_700_000_000_000, row)));
    for (const { event } of events) expect(event.source).toMatchObject({ snapshot: true, repair: { department: 'health', request: 'r-1' } });
    // The row's own Kafka key (and partition): a delete by source key is keyed like the row's other events.
    expect(events.slice(0, 2).map((e) => e.key)).toEqual(['{"id":"1"}', '{"id":"2"}']);
    expect(events[1]!.event.before).toEqual({ id: '2', district: null, registered_at: null });
    expect(events[1]!.secrets).toEqual({ before: { name: null, added_later: null } });
    // A share key travels sealed, and its Kafka key does not show it.
    expect(events[2]!.secrets).toEqual({ before: { name: null, added_later: null }, shareKey: '{"id":"tok:abc"}' });
    expect(serializeEvent(events[2]!.event)).not.toContain('tok:abc');
    expect(events[2]!.key).not.toContain('tok:abc');
    expect(buildEvents({ ...repairChange, rows: repairChange.rows.slice(2) }, ctx, 1)[0]!.key).toBe(events[2]!.key);
    // Other events carry no repair.
    expect(buildEvents(change('snapshot', [{ before: null, after: row('1', '张三') }]), ctx)[0]!.event.source).not.toHaveProperty('repair');
  });

  it('hashes the message key when a key column is protected', () => {
    const sealedKey: BuildContext = { ...ctx, classes: () => ({ id: 'secret', district: 'public' }) };
    const [a] = buildEvents(change('insert', [{ before: null, after: row('1', 'x') }]), sealedKey);
    const [b] = buildEvents(change('insert', [{ before: null, after: row('1', 'y') }]), sealedKey);
    expect(a!.key).not.toContain('1"');
    expect(a!.key).toBe(b!.key);
  });
});

describe('encoderFor (the reader\'s direct JSON writer)', () => {
  const wide: TableSchema = {
    db: 'civil "q"',
    table: 'wide',
    primaryKey: ['k2', 'id'],
    columns: [
      { name: 'id', type: { kind: 'bigint', unsigned: true }, sourceType: 'bigint unsigned', nullable: false },
      { name: 'k2', type: { kind: 'int', bits: 32, unsigned: false }, sourceType: 'int', nullable: false },
      { name: '7', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar(8)', nullable: true },
      { name: 'name', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar(64)', nullable: true },
      { name: 'd', type: { kind: 'double' }, sourceType: 'double', nullable: true },
      { name: 'f', type: { kind: 'float' }, sourceType: 'float', nullable: true },
      { name: 'b', type: { kind: 'bool' }, sourceType: 'tinyint(1)', nullable: true },
      { name: 'dt', type: { kind: 'timestamp', fsp: 3 }, sourceType: 'timestamp(3)', nullable: true },
      { name: 'day', type: { kind: 'date' }, sourceType: 'date', nullable: true },
      { name: 'bin', type: { kind: 'bytes' }, sourceType: 'blob', nullable: true },
      { name: 'amount', type: { kind: 'decimal', precision: 12, scale: 2 }, sourceType: 'decimal(12,2)', nullable: true },
      { name: '2', type: { kind: 'json' }, sourceType: 'json', nullable: true },
    ],
  };
  const wideRow = (id: number, name: string | null) => ({
    id: String(id), k2: id % 3, '7': 'seven\u2028', name, d: id / 7, f: 0.1 * id, b: id % 2, dt: '2024-02-03 04:05:06.789', day: '0000-00-00',
    bin: Buffer.from([0, 1, 2, id & 255]), amount: '12.50', '2': '{"a":[1,2]}',
  });
  const classesSets: Array<Record<string, string>> = [
    { id: 'public', k2: 'public', '7': 'public', name: 'personal', d: 'public', f: 'internal', b: 'public', dt: 'secret', day: 'public', bin: 'personal', amount: 'public', '2': 'secret' },
    { id: 'public', k2: 'public', '7': 'public', name: 'public', d: 'public', f: 'public', b: 'public', dt: 'public', day: 'public', bin: 'public', amount: 'public', '2': 'public' },
    { id: 'secret', k2: 'public', name: 'public' },
  ];
  const wideChange = (kind: RowsChange['kind'], rows: RowsChange['rows'], gtid: string | null): RowsChange => ({
    kind, schema: wide, rows, file: 'mariadb-bin.000017', eventPos: 123456, gtid, tsMs: 1_700_000_000_123, txOffset: 3,
  });
  it.each(classesSets.map((c, i) => [i, c] as const))('writes what serializeEvent(buildEvents(...)) writes (classes %i)', (_, classes) => {
    const context: BuildContext = { ...ctx, sourceName: 'city"hub', classes: () => classes as Record<string, ColumnClass> };
    const changes = [
      wideChange('insert', [{ before: null, after: wideRow(1, '张三') }, { before: null, after: wideRow(2, null) }], '0-1-9'),
      wideChange('update', [{ before: wideRow(3, 'a'), after: wideRow(3, 'b\n"') }, { before: wideRow(4, 'x'), after: wideRow(40, 'y') }], null),
      wideChange('delete', [{ before: wideRow(5, '😀'), after: null }], '0-1-10'),
      wideChange('snapshot', [{ before: null, after: { ...wideRow(6, 'z'), d: Number.NaN } }], null),
      {
        ...wideChange('repair', [
          { before: null, after: wideRow(7, 'r') },
          { before: keyImage(wide, { id: '8', k2: 2 }), after: null },
          { before: keyImage(wide, {}), after: null, shareKey: '{"k2":1,"id":"tok:\\"9"}' },
        ], null),
        repair: { department: 'health "h"', request: 'r-1', stamp: 1_700_000_000_999 },
      },
    ];
    for (const c of changes) {
      const expected = buildEvents(c, context, 42).map(({ event, key, secrets }) => ({ key, json: serializeEvent(event), secrets: secrets && JSON.stringify(secrets), op: event.op }));
      const got: Array<{ key: string; json: string; secrets: string | null; op: string }> = [];
      encoderFor(wide, context.classes('', ''), context.pipelineKey).encode(c, context.sourceName, context.serverId, schemaRef(wide).ref, 42, (key, json, secrets, op) => got.push({ key, json, secrets, op }));
      expect(got).toEqual(expected);
    }
  });

  it('recompiles when the classes change (reclassification)', () => {
    const a = encoderFor(wide, classesSets[0]! as Record<string, ColumnClass>, ctx.pipelineKey);
    expect(encoderFor(wide, classesSets[0]! as Record<string, ColumnClass>, ctx.pipelineKey)).toBe(a);
    expect(encoderFor(wide, classesSets[1]! as Record<string, ColumnClass>, ctx.pipelineKey).sealedNames).toEqual([]);
  });
});
