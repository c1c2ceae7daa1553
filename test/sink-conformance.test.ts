import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect as amqpConnect } from 'amqplib';
import { Queue } from 'bullmq';
import { createConnection } from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring, createLogger, isCdcError } from '@cityshare/shared';
import { MysqlTarget } from '../services/sink/src/targets/mysql.target.js';
import { RabbitmqTarget } from '../services/sink/src/targets/rabbitmq.target.js';
import { WebhookTarget } from '../services/sink/src/targets/webhook.target.js';
import { PostgresTarget } from '../services/sink/src/targets/postgres.target.js';
import type { RowChange, Target, TargetTable } from '../services/sink/src/targets/target.js';
import { stack } from '../scripts/support/stack.js';
import { eventually } from '../scripts/support/eventually.js';

/**
 * One contract, every target type (services/sink/src/targets/target.ts): the same
 * scenarios against a real PostgreSQL and a real MariaDB (the machine's own, port 3306);
 * the stream targets (HTTP through BullMQ and Redis, RabbitMQ) hold no table to read
 * back, so they are held to what a receiver sees: every change, in order, exact, and the
 * same state after a redelivery.
 */
const MARIADB = stack.targetMariadb;
const logger = createLogger('test', 'silent');

interface Harness {
  name: string;
  target: (softDelete?: boolean) => Target;
  /** Rows of a table, key order, values normalised to text (null stays null). */
  rows: (table: string) => Promise<Array<Record<string, string | null>>>;
  setUp: () => Promise<void>;
  tearDown: () => Promise<void>;
}

const text = (v: unknown): string | null => (v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : Buffer.isBuffer(v) ? v.toString('hex') : typeof v === 'object' ? JSON.stringify(v) : String(v));
const normalise = (rows: Array<Record<string, unknown>>) => rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== '__synced_at' && k !== '__source_ts').map(([k, v]) => [k, text(v)])));

function postgresHarness(): Harness {
  const schema = `conf_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: stack.postgresUrl });
  return {
    name: 'postgres',
    target: (softDelete = false) => new PostgresTarget({ url: stack.postgresUrl, schema: softDelete ? `${schema}_soft` : schema, softDelete }, logger),
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

function mysqlHarness(): Harness {
  const db = `conf_${randomBytes(4).toString('hex')}`;
  let conn: Awaited<ReturnType<typeof createConnection>>;
  const url = (d: string) => `mysql://root@${MARIADB.host}:${MARIADB.port}/${d}`;
  return {
    name: 'mysql (MariaDB)',
    target: (softDelete = false) => new MysqlTarget({ url: url(softDelete ? `${db}_soft` : db), softDelete }, logger),
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

const citizens = (name: string): TargetTable => ({
  name,
  // Granted as the test department's webhook target takes it (databases ignore it).
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

describe.each([postgresHarness(), mysqlHarness()])('target conformance: $name', (h) => {
  let target: Target;
  let soft: Target;

  beforeAll(async () => {
    await h.setUp();
    target = h.target();
    soft = h.target(true);
    await target.connect();
    await soft.connect();
  });

  afterAll(async () => {
    await target.close();
    await soft.close();
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

  it('soft delete: keeps a deleted row flagged, and an older change does not bring it back', async () => {
    const t = citizens('soft_citizens');
    await soft.ensureTable(t);
    const insert = change(1, 'a', 'c');
    const del = change(1, 'a', 'd');
    await soft.apply(t, [insert, del]);
    await soft.apply(t, [insert]);
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

interface Received {
  table: string;
  op: string;
  version: string;
  deleted: boolean;
  values: Record<string, unknown>;
}

interface StreamHarness {
  name: string;
  target: () => Target;
  /** Changes as the receiving department got them, in arrival order. */
  received: Received[];
  setUp: () => Promise<void>;
  tearDown: () => Promise<void>;
}

function webhookHarness(): StreamHarness {
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
  const queueName = `conf-${randomBytes(4).toString('hex')}`;
  const keys = new FileKeyring({ version: 1, keys: { 'webhook:conf': [{ id: 'webhook-conf-1', material: randomBytes(32).toString('base64') }] } });
  return {
    name: 'http (webhook through BullMQ)',
    received,
    target: () => new WebhookTarget({ department: 'conf', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, secret: randomBytes(32), redisUrl: stack.redisUrl, queueName, maxAttempts: 3, timeoutMs: 2000, backoffMs: 100, keys, grants: new Set(['conf.db.citizens', 'conf.db.taps']), retention: { completed: { ageSeconds: 3600, count: 1000 }, failed: { ageSeconds: 3600, count: 1000 } } }, logger),
    setUp: () => new Promise<void>((r) => server.listen(0, '127.0.0.1', r)),
    tearDown: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      const queue = new Queue(queueName, { connection: { url: stack.redisUrl, maxRetriesPerRequest: null } });
      await queue.obliterate({ force: true });
      await queue.close();
    },
  };
}

function rabbitmqHarness(): StreamHarness {
  const received: Received[] = [];
  const exchange = `conf-${randomBytes(4).toString('hex')}`;
  let conn: Awaited<ReturnType<typeof amqpConnect>>;
  return {
    name: 'rabbitmq',
    received,
    target: () => new RabbitmqTarget({ department: 'conf', url: stack.rabbitmqUrl, exchange, exchangeType: 'topic' }, logger),
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

describe.each([webhookHarness(), rabbitmqHarness()])('stream target conformance: $name', (h) => {
  let target: Target;

  beforeAll(async () => {
    await h.setUp();
    target = h.target();
    await target.connect();
  });

  afterAll(async () => {
    await target.close();
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

