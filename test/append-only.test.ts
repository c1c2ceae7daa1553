import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';
import { createLogger } from '@cityshare/shared';
import { PostgresTarget } from '../services/sink/src/targets/postgres.target.js';
import type { TargetTable } from '../services/sink/src/targets/target.js';

/**
 * A table without a primary key, registered append-only: every change reaches the
 * department as one row of a change log, in source order, each exactly once.
 */
describe('append-only table without a key', () => {
  const run = new PipelineRun();
  const table = `\`${run.transportDb}\`.gate_log`;
  const pipelineFile = join(dirname(run.keyringFile), 'append-only-pipeline.yaml');
  const log = async () =>
    (await run.pg.query(`SELECT card_no, gate, "__op" AS op FROM "${run.pgSchema}".gate_log ORDER BY "__version"`)).rows;

  beforeAll(async () => {
    await run.setUp();
    await run.source.query(`CREATE TABLE ${table} (card_no VARCHAR(20) NOT NULL, gate VARCHAR(16) NOT NULL, passed_at DATETIME(6) NOT NULL) DEFAULT CHARSET = utf8mb4`);
    // A row from before registration: not snapshotted (no key to chunk by), so never delivered.
    await run.source.query(`INSERT INTO ${table} VALUES ('old', 'G0', NOW(6))`);
    run.writePipelineFile('append-only-pipeline.yaml', {
      serverId: 5301,
      tables: [{ name: `${run.transportDb}.gate_log`, appendOnly: true, columns: { card_no: 'internal', gate: 'public', passed_at: 'internal' } }],
      departments: [{
        name: 'health',
        target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema },
        grants: [{ table: `cityhub.${run.transportDb}.gate_log`, columns: { card_no: 'pass', gate: 'pass', passed_at: 'pass' } }],
      }],
    });
    const env = { CITYSHARE_PIPELINE: pipelineFile };
    await run.start('cdc-reader', env);
    await run.start('transformer', env);
    await run.start('sink', env);
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('delivers inserts, updates and deletes as a change log, in order, once each', async () => {
    await run.source.query(`INSERT INTO ${table} VALUES ('c1', 'G1', NOW(6)), ('c2', 'G2', NOW(6))`);
    await run.source.query(`UPDATE ${table} SET gate = 'G9' WHERE card_no = 'c1'`);
    await run.source.query(`DELETE FROM ${table} WHERE card_no = 'c2'`);
    await eventually(async () => expect(await log()).toEqual([
      { card_no: 'c1', gate: 'G1', op: 'c' },
      { card_no: 'c2', gate: 'G2', op: 'c' },
      { card_no: 'c1', gate: 'G9', op: 'u' },
      { card_no: 'c2', gate: 'G2', op: 'd' },
    ]), 60_000, 500);
  });

  it('appends a redelivered change only once', async () => {
    const sink = new PostgresTarget({ url: stack.postgresUrl, schema: run.pgSchema }, createLogger('test', 'silent'));
    try {
      await sink.connect();
      const table: TargetTable = { name: 'redelivered_log', primaryKey: [], columns: [{ name: 'gate', type: 'string', nullable: true }] };
      await sink.ensureTable(table);
      const change = { op: 'c', version: '00000001.0000000100.00000', sourceTsMs: 1_700_000_000_000n, deleted: false, values: { gate: 'G1' } };
      expect(await sink.apply(table, [change])).toEqual({ applied: 1, stale: 0 });
      expect(await sink.apply(table, [change, { ...change, version: '00000001.0000000200.00000' }])).toEqual({ applied: 1, stale: 1 });
      expect((await run.pg.query(`SELECT count(*)::int AS n FROM "${run.pgSchema}".redelivered_log`)).rows[0].n).toBe(2);
    } finally {
      await sink.close();
    }
  });
});
