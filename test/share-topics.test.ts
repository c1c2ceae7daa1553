import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { eventually } from '../scripts/support/eventually.js';
import { readAllMessages } from './support/kafka-peek.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';

/**
 * Two sources holding the same `db.table` (two servers with one schema; here two source
 * entries on the project's MariaDB), both granted to one department: each has a share topic
 * of its own, named by its source, and the department receives both, into two tables.
 */
describe('share topics named by source', () => {
  const run = new PipelineRun();
  let file = '';
  const rows = async (table: string) =>
    (await run.pg.query(`SELECT id, name FROM "${run.pgSchema}"."${table}" ORDER BY id`).catch(() => ({ rows: [] }))).rows as Array<{ id: string; name: string }>;

  beforeAll(async () => {
    await run.setUp();
    // The second source's reader authenticates as its own principal.
    const users = spawnSync('bash', [join(stack.root, 'deploy', 'local', 'stack.sh'), 'kafka-users', 'reader-annex'], { cwd: stack.root, encoding: 'utf8' });
    expect(users.status, users.stderr).toBe(0);
    file = run.writePipelineFile('two-sources.yaml', {
      serverId: 6101,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: [{
        name: 'health',
        target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema },
        grants: [
          { table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', name: { mask: 'name' } } },
          { table: `annex.${run.civilDb}.citizens`, targetTable: 'citizens_annex', columns: { id: 'pass', name: 'pass' } },
        ],
      }],
    });
    const pipeline = parse(readFileSync(file, 'utf8')) as { sources: Array<Record<string, unknown>> };
    pipeline.sources.push({ ...pipeline.sources[0]!, name: 'annex', serverId: 6102 });
    writeFileSync(file, stringify(pipeline));
    const env = { CITYSHARE_PIPELINE: file };
    await run.start('cdc-reader', { ...env, READER_SOURCE: 'cityhub' });
    await run.start('cdc-reader', { ...env, READER_SOURCE: 'annex' });
    await run.start('transformer', env);
    await run.start('sink', env);
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('gives each source its own share topic, and the department both tables', async () => {
    await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES (1, '王小明', '110101199001010000', '13800000000', '海淀', NOW(6)), (2, '李娜', '110101199001010001', '13800000001', '朝阳', NOW(6))`);
    await eventually(async () => {
      expect(await rows('citizens')).toEqual([{ id: '1', name: '王**' }, { id: '2', name: '李*' }]);
      expect(await rows('citizens_annex')).toEqual([{ id: '1', name: '王小明' }, { id: '2', name: '李娜' }]);
    }, 60_000, 500);
    const shared = await readAllMessages(run.brokers, new RegExp(`^${run.prefix}\\.share\\.health\\.`));
    expect([...new Set(shared.map((m) => m.topic))].sort()).toEqual([`${run.prefix}.share.health.annex.${run.civilDb}.citizens`, `${run.prefix}.share.health.cityhub.${run.civilDb}.citizens`]);
  });
});
