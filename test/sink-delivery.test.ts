import { dirname, join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import { FileKeyring } from '@cityshare/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { readAllMessages } from './support/kafka-peek.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';

/**
 * Delivery to a department's MySQL/MariaDB database (the machine's MariaDB on 3306) next
 * to a PostgreSQL department: rows a target refuses go to that department's dead-letter
 * topic and the rest arrive; a sink killed mid-stream resumes with nothing lost or doubled.
 */
describe('sink delivery to MySQL/MariaDB', () => {
  const run = new PipelineRun();
  const archiveDb = `${run.id}_archive`;
  const pipelineFile = join(dirname(run.keyringFile), 'sink-pipeline.yaml');
  let mysql: Connection;
  let archiveSink: ServiceProcess;
  const env = { CITYSHARE_PIPELINE: pipelineFile, SINK_DEPARTMENT: 'archive' };
  const archived = async () => {
    const [rows] = await mysql.query(`SELECT id, name, district FROM \`${archiveDb}\`.citizens ORDER BY id`);
    return rows as Array<{ id: string; name: string; district: string }>;
  };
  const insert = (from: number, to: number, name = '王小明') =>
    run.source.query(
      `INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES ${Array.from({ length: to - from + 1 }, (_, i) => `(${from + i}, '${name}', '110101199001010000', '13800000000', '海淀', NOW(6))`).join(', ')}`,
    );

  beforeAll(async () => {
    await run.setUp();
    FileKeyring.ensure(run.keyringFile, ['department:archive']);
    mysql = await createConnection({ ...stack.targetMariadb, supportBigNumbers: true, bigNumberStrings: true });
    await mysql.query(`CREATE DATABASE \`${archiveDb}\` DEFAULT CHARSET utf8mb4`);
    run.writePipelineFile('sink-pipeline.yaml', {
      serverId: 5601,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: [{
        name: 'archive',
        target: { kind: 'mysql', url: `mysql://root@${stack.targetMariadb.host}:${stack.targetMariadb.port}/${archiveDb}` },
        grants: [{ table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', name: 'pass', district: 'pass', registered_at: 'pass' } }],
      }],
    });
    await run.start('cdc-reader', env);
    await run.start('transformer', env);
    archiveSink = await run.start('sink', env);
  });

  afterAll(async () => {
    await mysql.query(`DROP DATABASE IF EXISTS \`${archiveDb}\``);
    await mysql.end();
    await run.tearDown();
  });

  it('creates the table and delivers with exact types', async () => {
    await insert(1, 3);
    await eventually(async () => expect((await archived()).map((r) => r.id)).toEqual(['1', '2', '3']));
    const [cols] = await mysql.query(`SELECT COLUMN_NAME AS c, COLUMN_TYPE AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'citizens' ORDER BY ORDINAL_POSITION`, [archiveDb]);
    expect(cols).toEqual(expect.arrayContaining([{ c: 'id', t: 'decimal(20,0)' }, { c: 'registered_at', t: 'datetime(6)' }, { c: '__version', t: 'varchar(64)' }]));
  });

  it('sends a row the target refuses to the department dead-letter topic and delivers the rest', async () => {
    // The department's own rule on its table, unknown to the pipeline.
    await mysql.query(`ALTER TABLE \`${archiveDb}\`.citizens ADD CONSTRAINT no_test_rows CHECK (name <> 'REJECT')`);
    await insert(10, 10, 'REJECT');
    await insert(11, 12);
    await eventually(async () => expect((await archived()).map((r) => r.id)).toEqual(['1', '2', '3', '11', '12']));
    const dead = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.dlq\\.sink\\.archive$`))).map((m) => JSON.parse(m.value!.toString()));
    expect(dead).toEqual([expect.objectContaining({ code: 'TARGET_REJECTED', department: 'archive', table: 'citizens' })]);
    expect(dead[0].reason).toMatch(/no_test_rows/);
    expect(await archiveSink.metrics()).toMatch(/^cityshare_sink_dlq_total\{[^}]*\} 1$/m);
  });

  it('loses and doubles nothing when the sink is killed mid-stream', async () => {
    const writing = (async () => {
      for (let i = 0; i < 20; i++) await insert(1000 + i * 100, 1000 + i * 100 + 99);
    })();
    await eventually(async () => expect((await archived()).length).toBeGreaterThan(300), 60_000, 50);
    await archiveSink.kill();
    await writing;
    archiveSink = await run.start('sink', env);
    await eventually(async () => expect((await archived()).length).toBe(5 + 2000), 90_000, 500);
    const [dupes] = await mysql.query(`SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM \`${archiveDb}\`.citizens`);
    const { n, d } = (dupes as Array<{ n: string; d: string }>)[0]!;
    expect([Number(n), Number(d)]).toEqual([2005, 2005]);
  });
});
