import { spawnSync } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';

interface Delivery {
  at: number;
  table: string;
  changes: Array<{ op: string; version: string; values: Record<string, unknown> }>;
}

/**
 * A department's HTTP endpoint (a local server) behind the BullMQ queue in the real
 * Redis: outages, 429s and a batch the endpoint never takes.
 */
describe('webhook target', () => {
  const run = new PipelineRun();
  const pipelineFile = join(dirname(run.keyringFile), 'webhook-pipeline.yaml');
  const env = { CITYSHARE_PIPELINE: pipelineFile, SINK_DEPARTMENT: 'hotline' };
  let server: Server;
  let secret: Buffer;
  let sink: ServiceProcess;
  const delivered: Delivery[] = [];
  const attempts: Array<{ at: number; status: number; body: string }> = [];
  const state = { down: false, throttleNext: false, poisonFixed: false };

  const verify = (header: string | undefined, body: string) => {
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
    if (!m) return false;
    const expected = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest();
    return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex'));
  };
  const insert = (id: number, district = '海淀') =>
    run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES (?, '王小明', '110101199001010000', '13800000000', ?, NOW(6))`, [id, district]);
  const changesOf = (id: string) => delivered.flatMap((d) => d.changes).filter((c) => c.values.id === id);

  beforeAll(async () => {
    await run.setUp();
    secret = FileKeyring.ensure(run.keyringFile, ['department:hotline', 'webhook:hotline']).activeKey('webhook:hotline').material;
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        const status = !verify(req.headers['x-cityshare-signature'] as string | undefined, body) ? 401
          : state.down ? 503
          : state.throttleNext ? ((state.throttleNext = false), 429)
          : body.includes('POISON') && !state.poisonFixed ? 500
          : 200;
        attempts.push({ at: Date.now(), status, body });
        if (status === 200) delivered.push({ at: Date.now(), ...(JSON.parse(body) as Omit<Delivery, 'at'>) });
        res.writeHead(status, status === 429 ? { 'retry-after': '1' } : {}).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    run.writePipelineFile('webhook-pipeline.yaml', {
      serverId: 5701,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: [{
        name: 'hotline',
        target: { kind: 'http', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, redisUrl: stack.redisUrl, maxAttempts: 6, timeoutMs: 2000, backoffMs: 200 },
        grants: [{ table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', name: { mask: 'name' }, district: 'pass' } }],
      }, {
        name: 'health',
        target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema },
        grants: [{ table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', district: 'pass' } }],
      }],
    });
    await run.start('cdc-reader', env);
    await run.start('transformer', env);
    sink = await run.start('sink', env);
    await run.start('sink', { ...env, SINK_DEPARTMENT: 'health' });
  });

  afterAll(async () => {
    await run.tearDown();
    await new Promise((r) => server.close(r));
  });

  it('delivers every change once, signed, in order per key, across an outage of the endpoint', async () => {
    state.down = true;
    for (let id = 1; id <= 20; id++) await insert(id);
    await run.source.query(`UPDATE \`${run.civilDb}\`.citizens SET district = '西城' WHERE id <= 5`);
    await eventually(() => expect(attempts.filter((a) => a.status === 503).length).toBeGreaterThanOrEqual(2), 30_000, 100);
    // The endpoint's outage holds back only its department: health has every row meanwhile.
    await eventually(async () => expect(Number((await run.pg.query(`SELECT count(*) AS n FROM "${run.pgSchema}".citizens`)).rows[0].n)).toBe(20), 30_000, 200);
    expect(state.down).toBe(true);
    expect(delivered).toHaveLength(0);
    state.down = false;
    await eventually(() => expect(delivered.flatMap((d) => d.changes)).toHaveLength(25), 60_000, 200);
    expect(attempts.every((a) => a.status !== 401)).toBe(true);
    for (let id = 1; id <= 20; id++) {
      const changes = changesOf(String(id));
      expect(changes.map((c) => c.op)).toEqual(id <= 5 ? ['c', 'u'] : ['c']);
      expect(changes.map((c) => c.version)).toEqual([...changes.map((c) => c.version)].sort());
    }
    expect(changesOf('1')[1]!.values).toEqual({ id: '1', name: '王**', district: '西城' });
    expect(await sink.metrics()).toMatch(/^cityshare_sink_retries_total\{[^}]*\} [1-9]/m);
  });

  it('waits as long as a 429 Retry-After says', async () => {
    state.throttleNext = true;
    await insert(30);
    await eventually(() => expect(changesOf('30')).toHaveLength(1), 30_000, 100);
    const throttled = attempts.find((a) => a.status === 429)!;
    const next = attempts.find((a) => a.at > throttled.at && a.body === throttled.body)!;
    expect(next.at - throttled.at).toBeGreaterThanOrEqual(950);
  });

  it('moves a batch the endpoint keeps refusing to the dead-letter queue, goes on, and replays it on request', async () => {
    await insert(40, 'POISON');
    await eventually(() => expect(attempts.some((a) => a.status === 500)).toBe(true), 30_000, 100);
    await insert(41);
    await eventually(() => expect(changesOf('41')).toHaveLength(1), 60_000, 200);
    expect(attempts.filter((a) => a.status === 500)).toHaveLength(6);
    expect(changesOf('40')).toHaveLength(0);
    expect(await sink.metrics()).toMatch(/^cityshare_sink_dlq_total\{[^}]*\} 1$/m);

    state.poisonFixed = true;
    const cli = spawnSync(process.execPath, ['packages/cli/bin/cdc.js', '-c', pipelineFile, 'webhook-replay', 'hotline'], { cwd: stack.root, env: run.cliEnv, encoding: 'utf8' });
    expect(cli.stderr).toBe('');
    expect(cli.stdout).toContain('1 dead-lettered batch(es) of hotline queued again');
    await eventually(() => expect(changesOf('40')).toHaveLength(1), 30_000, 200);
  });
});
