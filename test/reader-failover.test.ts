import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';

/** One active reader per source, a standby that takes over when it dies (lease in the real Redis). */
describe('reader failover', () => {
  const run = new PipelineRun();
  const ha = { READER_LEASE_REDIS_URL: stack.redisUrl, READER_LEASE_TTL_MS: '2000' };
  const ids = async () => (await run.pg.query(`SELECT id FROM "${run.pgSchema}".citizens ORDER BY id`)).rows.map((r) => Number(r.id));
  const insert = (id: number) =>
    run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES (?, '市民', '110101199001010000', '13800000000', '东城', NOW())`, [id]);

  beforeAll(async () => {
    await run.setUp();
    await run.startDelivery();
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('keeps the standby idle while the active reader lives, and fails over within seconds', async () => {
    const active = await run.start('cdc-reader', ha);
    const standby = run.service('cdc-reader', ha);
    await standby.start({ until: 'alive' });

    for (let id = 1; id <= 20; id++) await insert(id);
    await eventually(async () => expect(await ids()).toHaveLength(20));
    expect(await standby.isReady()).toBe(false);
    expect(await standby.metrics()).toMatch(/cityshare_reader_active\{[^}]*\} 0/);
    expect(await active.metrics()).toMatch(/cityshare_reader_active\{[^}]*\} 1/);

    await active.kill();
    const killedAt = Date.now();
    for (let id = 21; id <= 40; id++) await insert(id);
    await eventually(() => standby.isReady().then((r) => expect(r).toBe(true)), 15_000, 100);
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).toBeLessThan(8_000);
    await eventually(async () => expect(await ids()).toEqual(Array.from({ length: 40 }, (_, i) => i + 1)));
  });
});
