import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { masks } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { readAllMessages, readRawEvents } from './support/kafka-peek.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';

const ROWS = 20_000;

/**
 * Lock-free chunked snapshot while the table keeps changing, with a kill -9 in the
 * middle: the department ends with exactly the source's rows under the policy.
 */
describe('snapshot of existing rows', () => {
  const run = new PipelineRun();

  beforeAll(async () => {
    await run.setUp();
    const values = Array.from({ length: ROWS }, (_, i) => `(${i + 1}, '市民${i + 1}', '110101199001010000', '138${String(i).padStart(8, '0')}', '1990-01-01', 'D${i % 7}', NULL, '2024-01-01 00:00:00')`);
    for (let i = 0; i < ROWS; i += 5000) {
      await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, birth_date, district, address, registered_at) VALUES ${values.slice(i, i + 5000).join(', ')}`);
    }
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('snapshots while rows change, survives kill -9 mid-snapshot, and converges on the source', async () => {
    const small = { READER_SNAPSHOT_CHUNK_ROWS: '200' };
    await run.startDelivery();
    const reader = await run.start('cdc-reader', small);

    // Concurrent writes across the whole key range while chunks are being read.
    let writing = true;
    const writer = (async () => {
      let n = 0;
      while (writing) {
        const id = 1 + ((n * 7919) % ROWS);
        if (n % 10 === 3) await run.source.query(`DELETE FROM \`${run.civilDb}\`.citizens WHERE id = ?`, [id]);
        else await run.source.query(`UPDATE \`${run.civilDb}\`.citizens SET district = ?, phone = ? WHERE id = ?`, [`U${n}`, `139${String(n).padStart(8, '0')}`, id]);
        if (n % 25 === 0) await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, birth_date, district, registered_at) VALUES (?, 'new', '110101199001010000', '13700000000', NULL, 'N', NOW())`, [ROWS + 1 + n]);
        n++;
      }
    })();

    try {
      // Kill the reader once part of the table is done, then restart it.
      const metric = async (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'm').exec(await reader.metrics())?.[1] ?? 0);
      await eventually(async () => expect(await metric('cityshare_reader_snapshot_rows_total')).toBeGreaterThanOrEqual(2000), 60_000, 20);
      // ... and once a checkpoint has stored that progress.
      const written = await metric('cityshare_reader_checkpoints_total');
      await eventually(async () => expect(await metric('cityshare_reader_checkpoints_total')).toBeGreaterThan(written), 10_000, 20);
      await reader.kill();
      const restarted = await run.start('cdc-reader', small);
      await eventually(async () => {
        expect(readFileSync(restarted.logFile, 'utf8')).toMatch(/"resumeAfterRows":[1-9]\d*/);
      }, 30_000);
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      writing = false;
      await writer;
    }

    const [sourceRows] = await run.source.query(`SELECT id, district, phone FROM \`${run.civilDb}\`.citizens ORDER BY id`);
    const expected = (sourceRows as Array<{ id: string; district: string; phone: string }>).map((r) => ({ id: String(r.id), district: r.district, phone: masks.phone(r.phone) }));
    await eventually(async () => {
      const { rows } = await run.pg.query(`SELECT id, district, phone FROM "${run.pgSchema}".citizens ORDER BY id`);
      expect(rows.length).toBe(expected.length);
      expect(rows).toEqual(expected);
    }, 120_000, 1000);

    const raw = await readRawEvents(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.raw\\..*\\.citizens$`));
    const snapshotEvents = raw.filter((e) => e.op === 'r');
    expect(snapshotEvents.length).toBeGreaterThanOrEqual(ROWS * 0.9);
    expect(snapshotEvents.every((e) => e.source.snapshot)).toBe(true);

    // The resume above read the last key back; in the topic and the logs it is never in clear.
    const checkpoints = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.checkpoints$`))).map((m) => JSON.parse(m.value!.toString()));
    const lastKeys = checkpoints.flatMap((c) => Object.values(c.snapshot ?? {}).map((t) => (t as { lastKey: unknown }).lastKey));
    expect(lastKeys.some((k) => typeof k === 'string')).toBe(true);
    expect(lastKeys.every((k) => k === null || (typeof k === 'string' && k.startsWith('enc:v1:')))).toBe(true);
    expect(readFileSync(reader.logFile, 'utf8')).not.toMatch(/"lastKey"/);
  });
});

describe('ad-hoc re-snapshot', () => {
  const run = new PipelineRun();

  beforeAll(async () => {
    await run.setUp();
    const values = Array.from({ length: 1000 }, (_, i) => `(${i + 1}, '市民', '110101199001010000', '13800000000', '东城', NOW())`);
    await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES ${values.join(', ')}`);
    await run.startDelivery();
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('heals a department table when an operator asks for a re-snapshot with the CLI', async () => {
    const reader = await run.start('cdc-reader');
    const count = async () => Number((await run.pg.query(`SELECT count(*) AS n FROM "${run.pgSchema}".citizens`)).rows[0].n);
    await eventually(async () => expect(await count()).toBe(1000));
    await run.pg.query(`DELETE FROM "${run.pgSchema}".citizens WHERE id <= 300`);
    expect(await count()).toBe(700);

    // Followed with a progress bar from the reader's metrics until the snapshot is done.
    const cli = spawnSync(process.execPath, ['packages/cli/bin/cdc.js', 'snapshot', `${run.civilDb}.citizens`, '--progress', `http://127.0.0.1:${reader.port}/metrics`], { cwd: stack.root, env: run.cliEnv, encoding: 'utf8', timeout: 60_000 });
    expect(cli.stderr).toBe('');
    expect(cli.status).toBe(0);
    expect(cli.stdout).toContain('re-snapshot of');
    expect(cli.stdout).toMatch(new RegExp(`${run.civilDb}\\.citizens \\|[^|]+\\| 100% 1000/1000 rows, ETA done`));
    await eventually(async () => expect(await count()).toBe(1000), 60_000, 500);

    const refused = spawnSync(process.execPath, ['packages/cli/bin/cdc.js', 'snapshot', 'nope.nothing'], { cwd: stack.root, env: run.cliEnv, encoding: 'utf8' });
    expect(refused.status).toBe(5);
    expect(refused.stderr).toMatch(/TABLE_NOT_FOUND: not registered on source cityhub: nope\.nothing/);
  });
});
