import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as amqpConnect } from 'amqplib';
import { Queue } from 'bullmq';
import { createConnection } from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring, createLogger, createMetricsRegistry, isCdcError, queues, type DepartmentConfig } from '@cityshare/shared';
import { createSinkMetrics } from '../services/sink/src/sink-metrics.js';
import { TARGETS, type TargetKind } from '../services/sink/src/targets/registry.js';
import type { RowChange, Target, TargetTable } from '../services/sink/src/targets/target.js';
import type { TargetDefinition } from '../services/sink/src/targets/target-definition.js';
import { stack } from '../scripts/support/stack.js';
import { eventually } from '../scripts/support/eventually.js';

/**
 * One contract, every target of the registry (services/sink/src/targets/registry.ts), each
 * built from its settings as a pipeline file has them, through its definition. A table
 * target (capabilities.delivery 'table': PostgreSQL, MariaDB on the machine's own port
 * 3306, the export target's PostgreSQL staging) is read back after the same scenarios; a
 * stream target (HTTP through BullMQ and Redis, RabbitMQ) holds no table to read back, so
 * it is held to what a receiver sees: every change, in order, exact, and the same state
 * after a redelivery. `harnesses` is keyed by kind: a target registered without one does
 * not compile, and the first test fails.
 */
const MARIADB = stack.targetMariadb;
const logger = createLogger('test', 'silent');
/** The pipeline's topic prefix, which names the targets' queues in Redis. */
const prefix = `conf${randomBytes(3).toString('hex')}`;

type Row = Record<string, string | null>;

interface TableHarness {
  delivery: 'table';
  /** The target's settings as a pipeline file has them; with soft delete, or undefined when it has no such setting. */
  settings(o: { softDelete: boolean }): unknown;
  /** Rows of a table (tables named soft_… from the soft-delete target), key order, values normalised to text (null stays null). */
  rows: (table: string) => Promise<Row[]>;
  setUp: () => Promise<void>;
  tearDown: () => Promise<void>;
}


const text = (v: unknown): string | null => (v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : Buffer.isBuffer(v) ? v.toString('hex') : typeof v === 'object' ? JSON.stringify(v) : String(v));
const normalise = (rows: Array<Record<string, unknown>>) => rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== '__synced_at' && k !== '__source_ts').map(([k, v]) => [k, text(v)])));

/** A PostgreSQL schema (and its _soft twin) read back: the postgres target's, or the export target's staging. */
function postgresSchemas(): Pick<TableHarness, 'rows' | 'setUp' | 'tearDown'> & { schema: string } {
  const schema = `conf_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: stack.postgresUrl });
  return {
    schema,
    rows: async (table) => {
      const s = table.startsWith('soft_') ? `${schema}_soft` : schema;
      return normalise((await client.query(`SELECT * FROM "${s}"."${table}" ORDER BY 1, "__version"`)).rows);
    },
    setUp: async () => client.connect().then(() => undefined),
    tearDown: async () => {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE; DROP SCHEMA IF EXISTS "${schema}_soft" CASCADE`);
      await client.end();
    },
  };
}

function postgresHarness(): TableHarness {
  const { schema, ...readBack } = postgresSchemas();
  return {
    delivery: 'table',
    settings: ({ softDelete }) => ({ kind: 'postgres', url: stack.postgresUrl, schema: softDelete ? `${schema}_soft` : schema, softDelete }),
    ...readBack,
  };
}

function mysqlHarness(): TableHarness {
  const db = `conf_${randomBytes(4).toString('hex')}`;
  let conn: Awaited<ReturnType<typeof createConnection>>;
  return {
    delivery: 'table',
    settings: ({ softDelete }) => ({ kind: 'mysql', url: `mysql://root@${MARIADB.host}:${MARIADB.port}/${softDelete ? `${db}_soft` : db}`, softDelete }),
    rows: async (table) => {
      const d = table.startsWith('soft_') ? `${db}_soft` : db;
      const [rows] = await conn.query(`SELECT * FROM \`${d}\`.\`${table}\` ORDER BY 1, __version`);
      return normalise(rows as Array<Record<string, unknown>>);
    },
    setUp: async () => {
      conn = await createConnection({ ...MARIADB, dateStrings: true, supportBigNumbers: true, bigNumberStrings: true, timezone: 'Z' });
      for (const d of [db, `${db}_soft`]) await conn.query(`CREATE DATABASE \`${d}\` DEFAULT CHARSET utf8mb4`);
    },
    tearDown: async () => {
      for (const d of [db, `${db}_soft`]) await conn.query(`DROP DATABASE IF EXISTS \`${d}\``);
      await conn.end();
    },
  };
}

/** The export target's tables are its staging schema's (its scheduled files are test/export.test.ts's); it has no soft delete. */
function exportHarness(): TableHarness {
  const { schema, ...readBack } = postgresSchemas();
  const directory = mkdtempSync(join(tmpdir(), 'cityshare-conf-export-'));
  return {
    delivery: 'table',
    settings: ({ softDelete }) => (softDelete ? undefined : { kind: 'export', staging: { url: stack.postgresUrl, schema }, directory, schedule: { everyMs: 3_600_000 }, redisUrl: stack.redisUrl }),
    rows: readBack.rows,
    setUp: readBack.setUp,
    tearDown: async () => {
      await obliterate(queues.export(prefix, department.name));
      rmSync(directory, { recursive: true, force: true });
      await readBack.tearDown();
    },
  };
}

async function obliterate(queueName: string): Promise<void> {
  const queue = new Queue(queueName, { connection: { url: stack.redisUrl, maxRetriesPerRequest: null } });
  await queue.obliterate({ force: true });
  await queue.close();
}

interface Received {
  table: string;
  op: string;
  version: string;
  deleted: boolean;
  values: Record<string, unknown>;
}

interface StreamHarness {
  delivery: 'stream';
  /** The target's settings as a pipeline file has them (after setUp: the receiver's address is known then). */
  settings(): unknown;
  /** Changes as the receiving department got them, in arrival order. */
  received: Received[];
  setUp: () => Promise<void>;
  tearDown: () => Promise<void>;
}

function httpHarness(): StreamHarness {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const batch = JSON.parse(body) as { table: string; changes: Array<Omit<Received, 'table'>> };
      for (const c of batch.changes) received.push({ table: batch.table, ...c });
      res.writeHead(200).end();
    });
  });
  return {
    delivery: 'stream',
    received,
    settings: () => ({ kind: 'http', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, redisUrl: stack.redisUrl, maxAttempts: 3, timeoutMs: 2000, backoffMs: 100 }),
    setUp: () => new Promise<void>((r) => server.listen(0, '127.0.0.1', r)),
    tearDown: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await obliterate(queues.webhook(prefix, department.name));
    },
  };
}

function rabbitmqHarness(): StreamHarness {
  const received: Received[] = [];
  const exchange = `conf-${randomBytes(4).toString('hex')}`;
  let conn: Awaited<ReturnType<typeof amqpConnect>>;
  return {
    delivery: 'stream',
    received,
    settings: () => ({ kind: 'rabbitmq', url: stack.rabbitmqUrl, exchange }),
    setUp: async () => {
      conn = await amqpConnect(stack.rabbitmqUrl);
      const ch = await conn.createChannel();
      await ch.assertExchange(exchange, 'topic', { durable: true });
      const { queue } = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(queue, exchange, '#');
      await ch.consume(queue, (m) => {
        if (!m) return;
        received.push(JSON.parse(m.content.toString()) as Received);
        ch.ack(m);
      });
    },
    tearDown: async () => {
      const ch = await conn.createChannel();
      await ch.deleteExchange(exchange).catch(() => undefined);
      await conn.close();
    },
  };
}

/** How the suite sets up and reads back each kind: keyed by kind, so a registered target without a harness does not compile. */
const harnesses: Record<TargetKind, TableHarness | StreamHarness> = {
  postgres: postgresHarness(),
  mysql: mysqlHarness(),
  export: exportHarness(),
  http: httpHarness(),
  rabbitmq: rabbitmqHarness(),
};

/** The department the targets deliver for: its grants in force, and its webhook key (http signs with it). */
const department: DepartmentConfig = { name: 'conf', target: { kind: 'conformance' }, grants: [{ table: 'conf.db.citizens', columns: {} }, { table: 'conf.db.taps', columns: {} }] };
const keys = new FileKeyring({ version: 1, keys: { 'webhook:conf': [{ id: 'webhook-conf-1', material: randomBytes(32).toString('base64') }] } });
const metrics = createSinkMetrics(createMetricsRegistry('sink', { department: department.name }));

/** A target built as the sink builds it: settings checked by its definition's schema, then its constructor. */
function build(definition: TargetDefinition, settings: unknown): Target {
  const config = definition.config.parse(settings);
  return definition.create(config, { department, prefix, keys, logger, metrics, labels: { department: department.name, target: definition.kind } });
}

const ofDelivery = <H extends TableHarness | StreamHarness>(delivery: H['delivery']) =>
  TARGETS.filter((t) => t.capabilities.delivery === delivery).map((definition) => ({ name: definition.kind, definition: definition as TargetDefinition, h: harnesses[definition.kind] as H }));

describe('conformance coverage', () => {
  it('has a harness for every registered target, of the delivery it declares', () => {
    expect(Object.keys(harnesses).sort()).toEqual(TARGETS.map((t) => t.kind).sort());
    for (const t of TARGETS) expect(harnesses[t.kind].delivery, t.kind).toBe(t.capabilities.delivery);
  });
});

const citizens = (name: string): TargetTable => ({
  name,
  // Granted to the test department (the http target queues only changes of grants in force; others ignore it).
  grant: 'conf.db.citizens',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'long', nullable: false },
    { name: 'name', type: 'string', nullable: true },
    { name: 'fee', type: { type: 'bytes', logicalType: 'decimal', precision: 12, scale: 2 }, nullable: true },
  ],
});
let n = 0;
/** A change with a version that sorts after every earlier one of the test. */
const change = (id: number, name: string | null, op = 'u', version = `00000001.${String(++n).padStart(10, '0')}.00000`): RowChange => ({
  op, version, sourceTsMs: 1_700_000_000_000n, deleted: op === 'd', values: { id: BigInt(id), name, fee: '12345678.90' },
});

describe.each(ofDelivery<TableHarness>('table'))('table target conformance: $name', ({ definition, h }) => {
  let target: Target;
  let soft: Target | undefined;
  const softSettings = h.settings({ softDelete: true });

  beforeAll(async () => {
    await h.setUp();
    target = build(definition, h.settings({ softDelete: false }));
    soft = softSettings === undefined ? undefined : build(definition, softSettings);
    await target.connect();
    await soft?.connect();
  });

  afterAll(async () => {
    await target?.close();
    await soft?.close();
    await h.tearDown();
  });

  it('creates the table and upserts, updates and deletes by key, values exact', async () => {
    const t = citizens('basic');
    await target.ensureTable(t);
    await target.apply(t, [change(1, '张三', 'c'), change(2, '李四', 'c'), change(1, '张三丰'), change(2, null, 'd')]);
    expect(await h.rows('basic')).toEqual([{ id: '1', name: '张三丰', fee: '12345678.90', __version: expect.any(String) }]);
  });

  it('leaves the same state when the same changes arrive twice', async () => {
    const t = citizens('twice');
    await target.ensureTable(t);
    const batch = [change(1, 'a', 'c'), change(2, 'b', 'c'), change(1, 'a2'), change(3, 'c', 'c'), change(3, null, 'd')];
    expect(await target.apply(t, batch)).toMatchObject({ applied: 2 });
    const once = await h.rows('twice');
    expect(await target.apply(t, batch)).toEqual({ applied: 0, stale: 3 });
    expect(await h.rows('twice')).toEqual(once);
  });

  it('rejects an older change after a newer one (version guard), for upserts and deletes', async () => {
    const t = citizens('guard');
    await target.ensureTable(t);
    const older = change(1, 'old');
    const newer = change(1, 'new');
    const olderDelete = { ...change(1, null, 'd'), version: older.version };
    await target.apply(t, [newer]);
    expect(await target.apply(t, [older])).toEqual({ applied: 0, stale: 1 });
    expect(await target.apply(t, [olderDelete])).toEqual({ applied: 0, stale: 1 });
    expect((await h.rows('guard')).map((r) => r.name)).toEqual(['new']);
  });

  it('adds a newly granted column to an existing table', async () => {
    const t = citizens('evolve');
    await target.ensureTable(t);
    await target.apply(t, [change(1, 'a', 'c')]);
    const wider: TargetTable = { ...t, columns: [...t.columns, { name: 'blood_type', type: 'string', nullable: true }] };
    await target.ensureTable(wider);
    await target.apply(wider, [{ ...change(2, 'b', 'c'), values: { id: 2n, name: 'b', fee: '1.00', blood_type: 'AB' } }]);
    expect((await h.rows('evolve')).map((r) => [r.id, r.blood_type])).toEqual([['1', null], ['2', 'AB']]);
  });

  it('keeps a change log for a table without a key, each change once', async () => {
    const t: TargetTable = { name: 'taps', grant: 'conf.db.taps', primaryKey: [], columns: [{ name: 'card', type: 'string', nullable: true }] };
    await target.ensureTable(t);
    const batch: RowChange[] = [
      { op: 'c', version: '00000001.0000000001.00000', sourceTsMs: 1n, deleted: false, values: { card: 'x' } },
      { op: 'd', version: '00000001.0000000002.00000', sourceTsMs: 2n, deleted: true, values: { card: 'x' } },
    ];
    await target.apply(t, batch);
    expect(await target.apply(t, batch)).toEqual({ applied: 0, stale: 2 });
    expect((await h.rows('taps')).map((r) => [r.card, r.__op])).toEqual([['x', 'c'], ['x', 'd']]);
  });

  it.skipIf(softSettings === undefined)('soft delete: keeps a deleted row flagged, and an older change does not bring it back', async () => {
    const soft_ = soft!;
    const t = citizens('soft_citizens');
    await soft_.ensureTable(t);
    const insert = change(1, 'a', 'c');
    const del = change(1, 'a', 'd');
    await soft_.apply(t, [insert, del]);
    await soft_.apply(t, [insert]);
    const rows = await h.rows('soft_citizens');
    expect(rows).toHaveLength(1);
    expect(['true', '1']).toContain(rows[0]!.__deleted);
    expect(rows[0]!.__version).toBe(del.version);
  });

  it('says TARGET_REJECTED for data the target refuses, and writes nothing of the batch', async () => {
    const t = citizens('refused');
    await target.ensureTable(t);
    const bad = { ...change(2, 'b', 'c'), values: { id: null, name: 'b', fee: '1.00' } };
    const err = await target.apply(t, [change(1, 'a', 'c'), bad]).catch((e: unknown) => e);
    expect(isCdcError(err, 'TARGET_REJECTED')).toBe(true);
    expect(await h.rows('refused')).toEqual([]);
  });
});

/** The state a receiver keeps when it applies each change only if its version is newer (what docs/delivery.md asks of stream receivers). */
function fold(received: Received[]): Map<string, Received> {
  const state = new Map<string, Received>();
  for (const r of received) {
    const key = `${r.table}/${String(r.values.id)}`;
    const held = state.get(key);
    if (!held || r.version > held.version) state.set(key, r);
  }
  return state;
}

describe.each(ofDelivery<StreamHarness>('stream'))('stream target conformance: $name', ({ definition, h }) => {
  let target: Target;

  beforeAll(async () => {
    await h.setUp();
    target = build(definition, h.settings());
    await target.connect();
  });

  afterAll(async () => {
    await target?.close();
    await h.tearDown();
  });

  it('delivers every change of a batch in order, with its op, version and exact values', async () => {
    const t = citizens('stream_basic');
    await target.ensureTable(t);
    const batch = [change(1, '张三', 'c'), change(2, '李四', 'c'), change(1, '张三丰'), change(2, '李四', 'd')];
    expect(await target.apply(t, batch)).toEqual({ applied: 4, stale: 0 });
    await eventually(() => expect(h.received.filter((r) => r.table === 'stream_basic')).toHaveLength(4), 20_000, 50);
    const got = h.received.filter((r) => r.table === 'stream_basic');
    expect(got.map((r) => [r.op, r.version])).toEqual(batch.map((c) => [c.op, c.version]));
    expect(got[2]!.values).toEqual({ id: '1', name: '张三丰', fee: '12345678.90' });
    expect(got[3]!.deleted).toBe(true);
  });

  it('leaves the same state when the same changes arrive twice, for a receiver keeping the newest version', async () => {
    const t = citizens('stream_twice');
    const batch = [change(1, 'a', 'c'), change(2, 'b', 'c'), change(1, 'a2')];
    await target.apply(t, batch);
    await eventually(() => expect(h.received.filter((r) => r.table === 'stream_twice')).toHaveLength(3), 20_000, 50);
    const once = fold(h.received.filter((r) => r.table === 'stream_twice'));
    await target.apply(t, batch);
    await eventually(() => expect(h.received.filter((r) => r.table === 'stream_twice')).toHaveLength(6), 20_000, 50);
    expect(fold(h.received.filter((r) => r.table === 'stream_twice'))).toEqual(once);
  });
});

