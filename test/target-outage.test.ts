import { connect, type Channel, type ChannelModel } from 'amqplib';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';
import { TcpProxy } from './support/tcp-proxy.js';

/** The same URL through a local proxy port. */
function through(url: string, proxy: TcpProxy): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString();
}

const proxyOf = (url: string, defaultPort: number) => {
  const u = new URL(url);
  return new TcpProxy({ host: u.hostname, port: Number(u.port || defaultPort) });
};

/**
 * A department's target lost while rows flow (the network to it cut, the real server left
 * running): its sink stays up, says why on /readyz and in `cityshare_dependency_up`, and once
 * the target is back delivers every row, without anyone restarting it.
 */
describe('target outages: a sink cut off its department target rides it out', () => {
  const run = new PipelineRun();
  const pgProxy = proxyOf(stack.postgresUrl, 5432);
  const amqpProxy = proxyOf(stack.rabbitmqUrl, 5672);
  const redisProxy = proxyOf(stack.redisUrl, 6379);
  const exchange = `${run.id}.bureau`;
  const inbox = `${run.id}.bureau.inbox`;
  const env = { CITYSHARE_PIPELINE: '' };
  const sinks: Record<string, ServiceProcess> = {};
  let amqp: ChannelModel;
  let channel: Channel;
  let endpoint: Server;
  const received = new Set<number>();
  const posted = new Set<number>();

  const readyz = async (svc: ServiceProcess) => {
    const res = await fetch(`http://127.0.0.1:${svc.port}/readyz`);
    return { status: res.status, body: await res.text() };
  };
  const dependencyUp = async (svc: ServiceProcess, dependency: string) =>
    new RegExp(`^cityshare_dependency_up\\{[^}]*dependency="${dependency}"[^}]*\\} (\\d)`, 'm').exec(await svc.metrics())?.[1];
  const insert = (from: number, to: number) =>
    run.source.query(
      `INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES ${Array.from({ length: to - from + 1 }, (_, i) => `(${from + i}, '王小明', '110101199001010000', '13800000000', 'd${from + i}', NOW(6))`).join(', ')}`,
    );
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
  const inPostgres = async () =>
    ((await run.pg.query(`SELECT id, district FROM "${run.pgSchema}".citizens ORDER BY id`).catch(() => ({ rows: [] }))).rows as Array<{ id: string; district: string }>).map((r) => ({ id: Number(r.id), district: r.district }));

  /**
   * Rows written in small batches while `cut` happens: the cut lands mid-stream. Waits for
   * the sink to report the outage, checks it stays up through it, restores and waits for
   * every row.
   */
  async function rideOut(sink: ServiceProcess, proxy: TcpProxy, from: number, to: number, delivered: () => Promise<number[]>): Promise<void> {
    const writing = (async () => {
      for (let id = from; id <= to; id += 10) {
        await insert(id, Math.min(to, id + 9));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    // Some of the stream is being delivered when the cut comes.
    await eventually(async () => expect((await delivered()).filter((id) => id >= from).length).toBeGreaterThan(0), 60_000, 20);
    await proxy.cut();
    await writing;
    await eventually(async () => expect(await readyz(sink)).toMatchObject({ status: 503, body: expect.stringContaining('TARGET_UNREACHABLE') }), 60_000, 250);
    expect(await dependencyUp(sink, 'target')).toBe('0');
    await new Promise((r) => setTimeout(r, 3000));
    expect(sink.running).toBe(true);
    await proxy.restore();
    await eventually(async () => expect(await delivered()).toEqual(range(1, to)), 120_000, 500);
    expect(sink.running).toBe(true);
    await eventually(async () => expect((await readyz(sink)).status).toBe(200), 30_000, 250);
    expect(await dependencyUp(sink, 'target')).toBe('1');
    // Logged per state change, not per try: the lost connection, and the runtime waiting for the target.
    const lines = readFileSync(sink.logFile, 'utf8').split('\n').filter((l) => l.includes('"code":"TARGET_UNREACHABLE"'));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2);
  }

  beforeAll(async () => {
    await run.setUp();
    FileKeyring.ensure(run.keyringFile, ['department:bureau', 'department:hotline', 'webhook:hotline']);
    for (const proxy of [pgProxy, amqpProxy, redisProxy]) await proxy.restore();
    // The departments' side: a queue bound to the exchange, an HTTP endpoint; both reached directly.
    amqp = await connect(stack.rabbitmqUrl);
    channel = await amqp.createChannel();
    await channel.assertExchange(exchange, 'topic', { durable: true });
    await channel.assertQueue(inbox, { durable: true });
    await channel.bindQueue(inbox, exchange, 'citizens.*');
    await channel.consume(inbox, (m) => {
      if (!m) return;
      received.add(Number((JSON.parse(m.content.toString()) as { values: { id: string } }).values.id));
      channel.ack(m);
    });
    endpoint = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        for (const c of (JSON.parse(body) as { changes: Array<{ values: { id: string } }> }).changes) posted.add(Number(c.values.id));
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
    const grant = { table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', district: 'pass' } };
    env.CITYSHARE_PIPELINE = run.writePipelineFile('target-outage.yaml', {
      serverId: 6401,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: [
        { name: 'health', target: { kind: 'postgres', url: through(stack.postgresUrl, pgProxy), schema: run.pgSchema }, grants: [grant] },
        { name: 'bureau', target: { kind: 'rabbitmq', url: through(stack.rabbitmqUrl, amqpProxy), exchange }, grants: [grant] },
        { name: 'hotline', target: { kind: 'http', url: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/hook`, redisUrl: through(stack.redisUrl, redisProxy), maxAttempts: 6, timeoutMs: 2000, backoffMs: 200 }, grants: [grant] },
      ],
    });
    await run.start('cdc-reader', env);
    await run.start('transformer', env);
    for (const department of ['health', 'bureau', 'hotline']) sinks[department] = await run.start('sink', { ...env, SINK_DEPARTMENT: department });
    await insert(1, 10);
    await eventually(async () => expect((await inPostgres()).length).toBe(10), 90_000, 250);
  });

  afterAll(async () => {
    await channel?.deleteQueue(inbox).catch(() => undefined);
    await channel?.deleteExchange(exchange).catch(() => undefined);
    await amqp?.close().catch(() => undefined);
    await run.tearDown();
    await new Promise((r) => endpoint?.close(r));
    for (const proxy of [pgProxy, amqpProxy, redisProxy]) await proxy.cut();
  });

  it('PostgreSQL lost mid-stream: the sink stays up, reports TARGET_UNREACHABLE, and the table ends equal to what was sent', async () => {
    await rideOut(sinks.health!, pgProxy, 11, 400, async () => (await inPostgres()).map((r) => r.id));
    expect(await inPostgres()).toEqual(range(1, 400).map((id) => ({ id, district: `d${id}` })));
  });

  it('RabbitMQ lost mid-stream: the sink stays up, reports TARGET_UNREACHABLE, and every row reaches the exchange', async () => {
    await rideOut(sinks.bureau!, amqpProxy, 401, 800, async () => [...received].sort((a, b) => a - b));
  });

  it('Redis of the webhook queue lost mid-stream: the sink stays up, reports TARGET_UNREACHABLE, and every row is posted', async () => {
    await rideOut(sinks.hotline!, redisProxy, 801, 1200, async () => [...posted].sort((a, b) => a - b));
  });
});
