import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import { freePort } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';

/**
 * The registry loses every schema while rows flow (its storage wiped, the registry
 * restarted): the share records already written name schema ids the registry no longer
 * knows. A second registry of this suite's own (stack.sh registry-up on another port and
 * database), so the stack's registry, which other suites use, is never touched.
 */
describe('registry storage wiped mid-stream', () => {
  const run = new PipelineRun();
  const registryDb = `${run.id}_registry`;
  let registryPort = 0;
  let registryEnv: NodeJS.ProcessEnv = {};
  const registry = (command: 'registry-up' | 'registry-down') => {
    const r = spawnSync('bash', ['deploy/local/stack.sh', command], { cwd: stack.root, env: registryEnv, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`stack.sh ${command} failed: ${r.stdout}${r.stderr}`);
  };
  const insertCitizens = async (from: number, to: number) => {
    for (let id = from; id <= to; id++) {
      await run.source.query(
        `INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES (?, '李四', '110101199001011234', '13800001111', '海淀', NOW(6))`,
        [id],
      );
    }
  };
  const delivered = async () => ((await run.pg.query(`SELECT id FROM "${run.pgSchema}".citizens ORDER BY id`)).rows as Array<{ id: string }>).map((r) => Number(r.id));
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  beforeAll(async () => {
    registryPort = await freePort();
    registryEnv = { ...process.env, STACK_DIR: join(stack.root, '.stack', 'test', run.id), REGISTRY_PORT: String(registryPort), REGISTRY_DB: registryDb };
    registry('registry-up');
    await run.setUp();
  }, 120_000);

  afterAll(async () => {
    await run.tearDown();
    registry('registry-down');
    const admin = new pg.Client({ connectionString: stack.postgresUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${registryDb}"`);
    await admin.end();
  });

  it('pauses on the unknown schema ids, re-registers the contracts and delivers every row', async () => {
    // The demo pipeline with a server id of its own: suites of other checkouts may stream from the same MariaDB.
    const pipelineFile = join(dirname(run.keyringFile), 'pipeline.yaml');
    writeFileSync(pipelineFile, readFileSync(join(stack.root, 'deploy', 'local', 'pipeline.yaml'), 'utf8').replace(/serverId: \d+/, `serverId: ${7000 + Math.floor(Math.random() * 2000)}`));
    const env = {
      CITYSHARE_PIPELINE: pipelineFile,
      SOURCE_TLS_CA: stack.sourceTlsCa,
      SCHEMA_REGISTRY_URL: `http://127.0.0.1:${registryPort}/apis/ccompat/v7`,
      // Long enough that the new sink meets the unknown ids before the transformer's check.
      TRANSFORMER_REGISTRY_CHECK_MS: '40000',
    };
    await run.start('cdc-reader', env);
    await run.start('transformer', env);
    const firstSink = await run.start('sink', env);
    await insertCitizens(1, 20);
    await eventually(async () => expect(await delivered()).toEqual(range(1, 20)));

    // The sink stops (its caches go with it); the registry's storage is wiped and the registry restarted.
    await firstSink.stop();
    registry('registry-down');
    const admin = new pg.Client({ connectionString: stack.postgresUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE "${registryDb}"`);
    await admin.end();
    registry('registry-up');
    expect(await (await fetch(`${env.SCHEMA_REGISTRY_URL}/subjects`)).json()).toEqual([]);

    // Rows go on flowing; the transformer still writes the ids it had.
    await insertCitizens(21, 40);
    const sink = await run.start('sink', env);
    await insertCitizens(41, 60);
    await eventually(async () => expect(await delivered()).toEqual(range(1, 60)), 100_000);

    // Not silently: the sink said which partition waited for which schema, under a code.
    const log = readFileSync(sink.logFile, 'utf8');
    expect(log).toMatch(/SCHEMA_UNKNOWN/);
    expect(await sink.metrics()).toMatch(/cityshare_sink_schema_unknown_total\{[^}]*\} [1-9]/);
    expect(await sink.metrics()).toMatch(/cityshare_sink_partitions_paused\{[^}]*\} 0/);
  }, 240_000);
});
