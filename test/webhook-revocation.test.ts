import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring, queues } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';

const TAP_CLASSES = { id: 'public', card_no: 'personal', route: 'public', stop_name: 'public', tapped_at: 'internal', fare: 'internal' };
const JOB_STATES = ['active', 'waiting', 'delayed', 'prioritized', 'failed'] as const;

/**
 * What Redis keeps of a department's webhook batches, and for how long: batches of a
 * revoked grant are neither sent nor kept (queued, retrying, delayed or dead-lettered),
 * `cdc webhook-replay` does not send them, retention is bounded, and queued payloads are
 * sealed. Real Redis, real sink, a local HTTP receiver.
 */
describe('webhook batches after a revoke', () => {
  const run = new PipelineRun();
  const pipelineFile = join(dirname(run.keyringFile), 'webhook-revocation.yaml');
  const env = { CITYSHARE_PIPELINE: pipelineFile, SINK_DEPARTMENT: 'hotline' };
  const queueName = queues.webhook(run.prefix, 'hotline');
  const citizensGrant = `cityhub.${run.civilDb}.citizens`;
  const retention = { completed: { ageSeconds: 600, count: 2 }, failed: { ageSeconds: 3600, count: 50 } };
  let server: Server;
  let sink: ServiceProcess;
  let redis: Redis;
  let queue: Queue;
  const received: Array<{ at: number; status: number; body: string }> = [];
  const state = { down: false };

  const insertCitizen = (id: number, district = '海淀') =>
    run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES (?, '王小明', '110101199001010000', '13800000000', ?, NOW(6))`, [id, district]);
  const insertTap = (route: string) =>
    run.source.query(`INSERT INTO \`${run.transportDb}\`.bus_card_taps (card_no, route, stop_name, tapped_at, fare) VALUES ('6222000011112222', ?, '中关村', NOW(6), 2.00)`, [route]);
  const writePipeline = (withCitizens: boolean) => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    run.writePipelineFile('webhook-revocation.yaml', {
      serverId: 5711,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }, { name: `${run.transportDb}.bus_card_taps`, columns: TAP_CLASSES }],
      departments: [{
        name: 'hotline',
        target: { kind: 'http', url, redisUrl: stack.redisUrl, maxAttempts: 50, timeoutMs: 2000, backoffMs: 300, retention },
        grants: [
          ...(withCitizens ? [{ table: citizensGrant, columns: { id: 'pass', name: { mask: 'name' }, district: 'pass' } }] : []),
          { table: `cityhub.${run.transportDb}.bus_card_taps`, columns: { id: 'pass', route: 'pass' } },
        ],
      }],
    });
  };
  const citizenBodiesSince = (at: number) => received.filter((r) => r.at >= at && r.body.includes('"table":"citizens"'));
  const jobCounts = async () => queue.getJobCounts(...JOB_STATES);
  const replay = () => spawnSync(process.execPath, ['packages/cli/bin/cdc.js', '-c', pipelineFile, 'webhook-replay', 'hotline'], { cwd: stack.root, env: run.cliEnv, encoding: 'utf8' });

  beforeAll(async () => {
    await run.setUp();
    FileKeyring.ensure(run.keyringFile, ['department:hotline', 'webhook:hotline']);
    redis = new Redis(stack.redisUrl, { maxRetriesPerRequest: null });
    queue = new Queue(queueName, { connection: { url: stack.redisUrl, maxRetriesPerRequest: null } });
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        // A batch naming POISON is one the endpoint will never take (4xx: dead-lettered at once).
        const status = body.includes('POISON') ? 422 : state.down ? 503 : 200;
        received.push({ at: Date.now(), status, body });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    writePipeline(true);
    await run.start('cdc-reader', env);
    await run.start('transformer', env);
    sink = await run.start('sink', env);
  });

  afterAll(async () => {
    await run.tearDown();
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
    redis?.disconnect();
    await new Promise((r) => server.close(r));
  });

  it('keeps queued batches sealed and completed and failed batches within the configured retention', async () => {
    for (let id = 1; id <= 5; id++) await insertCitizen(id);
    await eventually(() => expect(received.filter((r) => r.status === 200 && r.body.includes('海淀')).length).toBeGreaterThanOrEqual(1), 60_000, 200);
    for (let id = 6; id <= 9; id++) {
      await insertCitizen(id);
      await eventually(async () => expect(received.some((r) => r.status === 200 && r.body.includes(`"id":"${id}"`))).toBe(true), 30_000, 100);
    }
    // The endpoint has the data; Redis only ever held it sealed.
    const keys = await redis.keys(`bull:${queueName}:*`);
    const stored = [];
    for (const key of keys) if ((await redis.type(key)) === 'hash') stored.push(JSON.stringify(await redis.hgetall(key)));
    expect(stored.length).toBeGreaterThan(0);
    for (const text of stored) {
      expect(text).not.toContain('海淀');
      expect(text).not.toContain('王**');
      expect(text).not.toMatch(/\\"district\\"/);
    }
    // Completed batches are kept at most `count` (and `ageSeconds`); failed ones as configured, never forever.
    const completed = await queue.getCompleted(0, -1);
    expect(completed.length).toBeGreaterThan(0);
    expect(completed.length).toBeLessThanOrEqual(retention.completed.count);
    for (const job of completed) {
      expect(job.opts.removeOnComplete).toEqual({ age: retention.completed.ageSeconds, count: retention.completed.count });
      expect(job.opts.removeOnFail).toEqual({ age: retention.failed.ageSeconds, count: retention.failed.count });
    }
  });

  it('cdc webhook-replay refuses the dead-lettered batches of a revoked grant and sends none of them', async () => {
    await insertCitizen(40, 'POISON');
    await eventually(async () => expect(await queue.getFailedCount()).toBe(1), 30_000, 200);
    await sink.stop();
    writePipeline(false);
    const before = received.length;
    const cli = replay();
    expect(cli.status).toBe(4);
    expect(cli.stderr).toContain('GRANT_REVOKED');
    expect(cli.stderr).toContain(citizensGrant);
    expect(cli.stdout).not.toContain('queued again');
    // Not queued again (no sink runs now: a queued batch would wait in Redis) and gone from the dead-letter queue.
    expect(await jobCounts()).toMatchObject({ waiting: 0, delayed: 0, prioritized: 0, failed: 0 });
    await new Promise((r) => setTimeout(r, 500));
    expect(received.length).toBe(before);
  });

  it('removes queued, retrying, delayed and dead-lettered batches of a grant once it is revoked, and sends none of them', async () => {
    writePipeline(true);
    sink = await run.start('sink', env);
    await insertCitizen(50, 'POISON');
    await eventually(async () => expect(await queue.getFailedCount()).toBe(1), 30_000, 200);
    state.down = true;
    for (let id = 51; id <= 55; id++) await insertCitizen(id);
    await eventually(() => expect(received.filter((r) => r.status === 503).length).toBeGreaterThanOrEqual(2), 30_000, 100);
    // A batch a retry with backoff would leave delayed, queued the way the sink queues them.
    const active = (await queue.getActive())[0]!;
    await queue.add('batch', active.data, { delay: 60_000 });
    const held = await jobCounts();
    expect((held.active ?? 0) + (held.waiting ?? 0)).toBeGreaterThanOrEqual(1);
    expect(held.delayed).toBe(1);
    expect(held.failed).toBe(1);

    writePipeline(false);
    await eventually(async () => expect(await jobCounts()).toEqual({ active: 0, waiting: 0, delayed: 0, prioritized: 0, failed: 0 }), 30_000, 200);
    const revokedAt = Date.now();
    state.down = false;
    // The grant left in force still delivers; nothing of the revoked one does.
    await insertTap('RT-731');
    await eventually(() => expect(received.some((r) => r.status === 200 && r.body.includes('RT-731'))).toBe(true), 60_000, 200);
    expect(citizenBodiesSince(revokedAt)).toEqual([]);
    const purged = /^cityshare_sink_webhook_purged_total\{[^}]*\} (\d+)/m.exec(await sink.metrics());
    expect(Number(purged?.[1])).toBeGreaterThanOrEqual(3);
    expect(readFileSync(sink.logFile, 'utf8')).toMatch(/"code":"GRANT_REVOKED"/);
  });
});
