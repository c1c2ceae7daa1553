import { spawn } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Queue } from 'bullmq';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';

/** A department that takes its data on a schedule: snapshot files and a signed push, from BullMQ's scheduler. */
describe('scheduled export target', () => {
  const run = new PipelineRun();
  const staging = `${run.id}_stats_staging`;
  const directory = join(dirname(run.keyringFile), 'exports');
  const pushed: Array<{ table: string; body: string; signed: boolean }> = [];
  let server: Server;
  let secret: Buffer;

  /** Rows of the newest snapshot file of a table. */
  const latest = () => {
    const dir = join(directory, 'citizens');
    if (!existsSync(dir)) return [];
    const files = readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort();
    return files.length === 0 ? [] : readFileSync(join(dir, files.at(-1)!), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  };

  beforeAll(async () => {
    await run.setUp();
    secret = FileKeyring.ensure(run.keyringFile, ['department:stats', 'webhook:stats']).activeKey('webhook:stats').material;
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(req.headers['x-cityshare-signature']));
        const signed = !!m && createHmac('sha256', secret).update(`${m[1]}.${body}`).digest('hex') === m[2];
        pushed.push({ table: String(req.headers['x-cityshare-table']), body, signed });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const env = {
      SINK_DEPARTMENT: 'stats',
      CITYSHARE_PIPELINE: run.writePipelineFile('export-pipeline.yaml', {
        serverId: 5901,
        tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
        departments: [{
          name: 'stats',
          target: {
            kind: 'export',
            staging: { url: stack.postgresUrl, schema: staging },
            directory,
            pushUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/exports`,
            schedule: { everyMs: 1000 },
            redisUrl: stack.redisUrl,
          },
          grants: [{ table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', district: 'pass', birth_date: { mask: 'date_to_year' } } }],
        }],
      }),
    };
    await run.start('cdc-reader', env);
    await run.start('transformer', env);
    await run.start('sink', env);
  });

  afterAll(async () => {
    await run.tearDown();
    await run.pg.query(`DROP SCHEMA IF EXISTS "${staging}" CASCADE`).catch(() => undefined);
    await new Promise((r) => server.close(r));
  });

  it('writes a snapshot of the current state at every tick and pushes it signed', async () => {
    for (const [id, district] of [[1, '海淀'], [2, '东城'], [3, '西城']] as const) {
      await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, birth_date, district, registered_at) VALUES (?, '王小明', '110101199001010000', '13800000000', '1992-05-17', ?, NOW(6))`, [id, district]);
    }
    await eventually(() => expect(latest()).toEqual([
      { id: '1', district: '海淀', birth_date: '1992' },
      { id: '2', district: '东城', birth_date: '1992' },
      { id: '3', district: '西城', birth_date: '1992' },
    ]), 60_000, 250);

    await run.source.query(`UPDATE \`${run.civilDb}\`.citizens SET district = '朝阳' WHERE id = 1`);
    await run.source.query(`DELETE FROM \`${run.civilDb}\`.citizens WHERE id = 3`);
    await eventually(() => expect(latest().map((r) => [r.id, r.district])).toEqual([['1', '朝阳'], ['2', '东城']]), 60_000, 250);

    const last = pushed.filter((p) => p.table === 'citizens').at(-1)!;
    expect(last.signed).toBe(true);
    expect(pushed.every((p) => p.signed)).toBe(true);
    expect(pushed.some((p) => p.body.includes('"朝阳"'))).toBe(true);
  });
});

/** One export of a table much larger than the heap the export may use: streamed in pages, file readable by its owner only. */
describe('export of a large table', () => {
  const id = `x${Date.now().toString(36)}`;
  const staging = `${id}_staging`;
  const directory = mkdtempSync(join(tmpdir(), `${id}-exports-`));
  const secret = randomBytes(32);
  const db = new pg.Pool({ connectionString: stack.postgresUrl, max: 1 });
  const rows = 300_000;
  let server: Server;
  const pushed: Array<{ signed: boolean; lines: number; bytes: number }> = [];

  beforeAll(async () => {
    // About 100 MB of rows: more than the 96 MB heap the export gets below.
    await db.query(`CREATE SCHEMA "${staging}"`);
    await db.query(`CREATE TABLE "${staging}".readings (id BIGINT PRIMARY KEY, note TEXT NOT NULL, __version TEXT NOT NULL)`);
    await db.query(`INSERT INTO "${staging}".readings SELECT g, repeat(md5(g::text), 10), 'v' FROM generate_series(1, ${rows}) g`);
    // The push endpoint checks the signature over the streamed body without keeping it.
    server = createServer((req, res) => {
      const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(req.headers['x-cityshare-signature']));
      const mac = createHmac('sha256', secret).update(`${m?.[1]}.`);
      let lines = 0;
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        mac.update(c);
        bytes += c.length;
        for (const b of c) if (b === 10) lines++;
      });
      req.on('end', () => {
        pushed.push({ signed: !!m && mac.digest('hex') === m[2], lines, bytes });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });

  afterAll(async () => {
    const queue = new Queue(`${id}-export`, { connection: { url: stack.redisUrl } });
    await queue.obliterate({ force: true });
    await queue.close();
    await db.query(`DROP SCHEMA IF EXISTS "${staging}" CASCADE`);
    await db.end();
    await new Promise((r) => server.close(r));
  });

  it('streams the table in pages within a bounded heap, writes the file 0600 and pushes it signed', async () => {
    const options = {
      department: 'stats', stagingUrl: stack.postgresUrl, stagingSchema: staging, directory, redisUrl: stack.redisUrl, queueName: `${id}-export`,
      pushUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/import`, secret: secret.toString('hex'), schedule: { everyMs: 60_000 }, tables: 1,
    };
    // Asynchronously: the push endpoint answers from this very process.
    const child = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const proc = spawn(process.execPath, ['--max-old-space-size=96', '--import', 'tsx', 'test/support/export-once.ts'], { cwd: stack.root, env: { ...process.env, EXPORT_ONCE: JSON.stringify(options) }, timeout: 150_000 });
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      proc.on('close', (status) => resolve({ status, stdout, stderr }));
    });
    expect(child.status, child.stderr.slice(-2000)).toBe(0);
    expect(JSON.parse(child.stdout.trim())).toEqual({ table: 'readings', rows });
    const files = readdirSync(join(directory, 'readings'));
    expect(files).toEqual([expect.stringMatching(/^readings-.*\.jsonl$/)]);
    const file = join(directory, 'readings', files[0]!);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const size = statSync(file).size;
    expect(size).toBeGreaterThan(96 * 1024 * 1024);
    const fd = openSync(file, 'r');
    const head = Buffer.alloc(400);
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    expect(JSON.parse(head.toString('utf8').split('\n')[0]!)).toEqual({ id: '1', note: createHash('md5').update('1').digest('hex').repeat(10) });
    expect(pushed).toEqual([{ signed: true, lines: rows, bytes: size }]);
  });
});
