import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import { readAllMessages } from './support/kafka-peek.js';
import { stack } from '../scripts/support/stack.js';
import type { HeartbeatRecord } from '../services/cdc-reader/src/reader-records.js';

/** The reader's safety checks against a real MariaDB: purged binlogs and bad sources. */
describe('reader recovery', () => {
  const run = new PipelineRun();
  const count = async () => Number((await run.pg.query(`SELECT count(*) AS n FROM "${run.pgSchema}".citizens`)).rows[0].n);
  const insert = (from: number, to: number) =>
    run.source.query(
      `INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES ${Array.from({ length: to - from + 1 }, (_, i) => `(${from + i}, '市民', '110101199001010000', '13800000000', '东城', NOW())`).join(', ')}`,
    );

  beforeAll(async () => {
    await run.setUp();
    await run.startDelivery();
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('refuses a checkpoint whose binlog was purged, and re-snapshots when told to', async () => {
    const reader = await run.start('cdc-reader');
    await insert(1, 50);
    await eventually(async () => expect(await count()).toBe(50));
    await reader.stop();

    // Changes the reader never saw, then their binlog disappears.
    await insert(51, 60);
    await run.source.query('FLUSH BINARY LOGS');
    const [status] = await run.source.query('SHOW MASTER STATUS');
    const current = (status as Array<{ File: string }>)[0]!.File;
    // MariaDB keeps a binlog until its binlog checkpoint passed it, so purge until it is gone.
    await eventually(async () => {
      await run.source.query(`PURGE BINARY LOGS TO '${current}'`);
      const [logs] = await run.source.query('SHOW BINARY LOGS');
      expect((logs as Array<{ Log_name: string }>).map((l) => l.Log_name)).toEqual([current]);
    }, 60_000, 500);

    const refused = run.service('cdc-reader');
    await expect(refused.start()).rejects.toThrow(/exited with 1/);
    const log = readFileSync(refused.logFile, 'utf8');
    expect(log).toContain('BINLOG_PURGED');
    expect(log).toContain('READER_ON_PURGED=resnapshot');

    await run.start('cdc-reader', { READER_ON_PURGED: 'resnapshot' });
    await eventually(async () => expect(await count()).toBe(60));
  });

  it('refuses to start on a table without a primary key, naming it', async () => {
    await run.source.query(`CREATE TABLE \`${run.healthDb}\`.nokey (a INT)`);
    await run.source.query(`RENAME TABLE \`${run.healthDb}\`.clinic_visits TO \`${run.healthDb}\`.clinic_visits_old, \`${run.healthDb}\`.nokey TO \`${run.healthDb}\`.clinic_visits`);
    try {
      const svc = run.service('cdc-reader');
      await expect(svc.start()).rejects.toThrow(/exited with 1/);
      expect(readFileSync(svc.logFile, 'utf8')).toMatch(/TABLE_WITHOUT_KEY: table .*clinic_visits on source cityhub has no primary key/);
    } finally {
      await run.source.query(`DROP TABLE \`${run.healthDb}\`.clinic_visits`);
      await run.source.query(`RENAME TABLE \`${run.healthDb}\`.clinic_visits_old TO \`${run.healthDb}\`.clinic_visits`);
    }
  });

  it('on an idle source, heartbeats move the checkpoint past unregistered tables\' transactions and lag reads 0', async () => {
    const reader = await run.start('cdc-reader', { READER_HEARTBEAT_SECONDS: '1' });
    const scratch = `\`${run.healthDb}\`.not_registered`;
    await run.source.query(`CREATE TABLE ${scratch} (id INT PRIMARY KEY)`);
    for (let i = 1; i <= 5; i++) await run.source.query(`INSERT INTO ${scratch} VALUES (${i})`);
    const [status] = await run.source.query('SHOW MASTER STATUS');
    const end = (status as Array<{ File: string; Position: number }>)[0]!;
    const metric = async (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(await reader.metrics())?.[1] ?? NaN);
    // Other suites may write to the same source meanwhile (the lanes share the stack): the binlog then goes on past
    // `end`, and a heartbeat comes only once the source has been idle for a second, so this may take a while.
    const atOrPast = (p: { file: string; pos: number } | undefined) => p !== undefined && (p.file > end.File || (p.file === end.File && p.pos >= end.Position));
    await eventually(async () => {
      const beats = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.heartbeats$`))).map((m) => JSON.parse(m.value!.toString()) as HeartbeatRecord);
      expect(beats.at(-1)).toMatchObject({ source: 'cityhub' });
      expect(atOrPast(beats.at(-1)), `last heartbeat ${JSON.stringify(beats.at(-1))} at or past ${end.File}:${end.Position}`).toBe(true);
      const checkpoints = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.checkpoints$`))).map((m) => JSON.parse(m.value!.toString()) as { file: string; pos: number });
      expect(atOrPast(checkpoints.at(-1)), `last checkpoint ${JSON.stringify(checkpoints.at(-1))} at or past ${end.File}:${end.Position}`).toBe(true);
      expect(await metric('cityshare_reader_heartbeats_total')).toBeGreaterThan(0);
      expect(await metric('cityshare_reader_lag_seconds')).toBeLessThan(2);
    }, 60_000, 500);
  });
  it('gives every reader start a replica server id of its own; a set id that collides is SERVER_ID_CONFLICT, ridden out', async () => {
    // The run's readers share one log file: look at what was written after `from`.
    const logOf = (svc: { logFile: string }, from: number) => readFileSync(svc.logFile, 'utf8').slice(from);
    const ids = (text: string) => text.split('\n').filter((l) => l.includes('"source checked"')).map((l) => (JSON.parse(l) as { replicaServerId: number }).replicaServerId);
    const probe = run.service('cdc-reader');
    const before = readFileSync(probe.logFile, 'utf8').length;
    // The demo pipeline sets no serverId: two readers of one source (no lease) both stream.
    const a = await run.start('cdc-reader');
    const b = await run.start('cdc-reader');
    await new Promise((r) => setTimeout(r, 4000));
    expect([a.running, b.running]).toEqual([true, true]);
    const both = logOf(a, before);
    expect(both).not.toContain('SERVER_ID_CONFLICT');
    // Not a crash, but not a standby either: the second one says so.
    expect(both).toMatch(/"code":"READER_DUPLICATE","others":[1-9].*run it as a standby/);
    const started = ids(both);
    expect(started).toHaveLength(2);
    expect(started[0]).not.toBe(started[1]);
    await a.stop();
    await b.stop();

    // Both given the same id: the source refuses one of them; the refused reader says so with
    // the code, keeps running and its checkpoint, and connects again with backoff.
    const from = readFileSync(probe.logFile, 'utf8').length;
    const file = run.writePipelineFile('same-server-id.yaml', { serverId: 7777, tables: [{ name: `${run.civilDb}.citizens`, columns: { id: 'public', name: 'personal' } }] });
    const c = await run.start('cdc-reader', { CITYSHARE_PIPELINE: file });
    const d = await run.start('cdc-reader', { CITYSHARE_PIPELINE: file });
    await eventually(() => expect(logOf(c, from)).toMatch(/SERVER_ID_CONFLICT.*same server_uuid\/server_id is already connected/), 30_000, 250);
    expect(logOf(c, from)).toContain('give every reader and replica of the source its own');
    expect(logOf(c, from)).not.toContain('BINLOG_PURGED');
    expect([c.running, d.running]).toEqual([true, true]);
    await d.stop();
    await eventually(async () => expect(await c.isReady()).toBe(true), 60_000, 250);
    expect(new Set(ids(logOf(c, from)))).toEqual(new Set([7777]));
    await c.stop();
  });
});
