import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { readAllMessages, readRawEvents } from './support/kafka-peek.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';
import type { SchemaChangeRecord } from '../services/cdc-reader/src/reader-records.js';

/**
 * ALTER TABLE mid-stream, with a kill -9 of the reader between DDL statements: rows
 * before a change keep the old columns, rows after it the new ones, and a column added
 * by ALTER TABLE is not shared until a DBA classifies it and a grant names it.
 */
/** A counter's value from a service's /metrics, by its name and the start of its labels. */
async function metricOf(svc: ServiceProcess, prefix: string): Promise<number> {
  const line = (await svc.metrics()).split('\n').find((l) => l.startsWith(prefix));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('schema changes mid-stream', () => {
  const run = new PipelineRun();
  const t = () => `\`${run.civilDb}\`.citizens`;

  beforeAll(async () => {
    await run.setUp();
    await run.startDelivery();
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('decodes every row with the columns in force when it was written', async () => {
    const reader = await run.start('cdc-reader');
    await run.source.query(`INSERT INTO ${t()} (id, name, id_card, phone, district, address, registered_at) VALUES (1, '赵一', '110101199001010011', '13800000001', '东城', '地址一', NOW())`);
    // A new column in the middle shifts every later column.
    await run.source.query(`ALTER TABLE ${t()} ADD COLUMN blood_type VARCHAR(3) AFTER name`);
    await run.source.query(`INSERT INTO ${t()} (id, name, blood_type, id_card, phone, district, registered_at) VALUES (2, '钱二', 'AB', '110101199001010022', '13800000002', '西城', NOW())`);
    await reader.kill();
    await run.source.query(`UPDATE ${t()} SET blood_type = 'O', phone = '13900000001' WHERE id = 1`);
    await run.source.query(`ALTER TABLE ${t()} DROP COLUMN address`);
    await run.source.query(`INSERT INTO ${t()} (id, name, blood_type, id_card, phone, district, registered_at) VALUES (3, '孙三', 'B', '110101199001010033', '13800000003', '朝阳', NOW())`);
    await run.start('cdc-reader');
    await run.source.query(`ALTER TABLE ${t()} CHANGE district district_name VARCHAR(32) NOT NULL`);
    await run.source.query(`INSERT INTO ${t()} (id, name, blood_type, id_card, phone, district_name, registered_at) VALUES (4, '李四', 'A', '110101199001010044', '13800000004', '海淀', NOW())`);

    const rows = await eventually(async () => {
      const { rows } = await run.pg.query(`SELECT * FROM "${run.pgSchema}".citizens ORDER BY id`);
      expect(rows.map((r) => r.id)).toEqual(['1', '2', '3', '4']);
      expect(rows[0].phone).toBe('139****0001');
      return rows;
    });
    expect(rows.map((r) => [r.name, r.phone, r.district])).toEqual([
      ['赵*', '139****0001', '东城'],
      ['钱*', '138****0002', '西城'],
      ['孙*', '138****0003', '朝阳'],
      // The renamed column is a new, unclassified column: not shared.
      ['李*', '138****0004', null],
    ]);
    expect(Object.keys(rows[0])).not.toContain('blood_type');
    expect(Object.keys(rows[0])).not.toContain('district_name');

    const schemas = new Map((await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.table-schemas$`))).map((m) => [m.key!.toString(), JSON.parse(m.value!.toString())]));
    const raw = (await readRawEvents(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.raw\\.`)))
      .filter((e) => e.source.table === 'citizens')
      .map((e) => ({ ...e, schema: schemas.get(e.schemaRef) }));
    const insertOf = (id: string) => raw.find((e) => e.op === 'c' && e.after?.id === id)!;
    expect(insertOf('1').schema.columns.map((c: { name: string }) => c.name)).not.toContain('blood_type');
    expect(insertOf('2').schema.columns.map((c: { name: string }) => c.name).slice(0, 3)).toEqual(['id', 'name', 'blood_type']);
    expect(insertOf('2').protected).toContain('blood_type');
    expect(JSON.stringify(insertOf('2'))).not.toContain('"AB"');
    expect(insertOf('3').schema.columns.map((c: { name: string }) => c.name)).not.toContain('address');
    // Unclassified after the rename: sealed like a secret column.
    expect(insertOf('4').after).not.toHaveProperty('district_name');
    expect(insertOf('4').protected).toContain('district_name');

    const changes = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.schema-changes\\.`))).map((m) => JSON.parse(m.value!.toString()) as SchemaChangeRecord);
    expect(changes.map((c) => /^ALTER TABLE \S+ (\w+)/.exec(c.ddl)?.[1])).toEqual(['ADD', 'DROP', 'CHANGE']);
    expect(changes[0]!.tables).toEqual([`${run.civilDb}.citizens`]);
  });

  it('publishes only changes of registered tables, without literals; never a statement with a password', async () => {
    const user = `${run.id}_ops`;
    const before = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.schema-changes\\.`))).length;
    try {
      await run.source.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'Pa55-${run.id}-word'`);
      await run.source.query(`ALTER USER '${user}'@'%' IDENTIFIED BY 'Other-${run.id}-pw'`);
      await run.source.query(`CREATE TABLE \`${run.civilDb}\`.unregistered (id INT PRIMARY KEY, note VARCHAR(40) DEFAULT 'unregistered-${run.id}')`);
      await run.source.query(`ALTER TABLE ${t()} ADD COLUMN nationality VARCHAR(20) DEFAULT '汉族-${run.id}' COMMENT 'from 110101199001010011'`);
    } finally {
      await run.source.query(`DROP USER IF EXISTS '${user}'@'%'`);
    }
    const changes = await eventually(async () => {
      const all = await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.schema-changes\\.`));
      expect(all.length).toBe(before + 1);
      return all.slice(before).map((m) => m.value!.toString());
    });
    expect(JSON.parse(changes[0]!) as SchemaChangeRecord).toMatchObject({ tables: [`${run.civilDb}.citizens`], ddl: `ALTER TABLE ${t()} ADD COLUMN nationality VARCHAR(20) DEFAULT '?' COMMENT '?'` });
    const everything = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.`))).map((m) => `${m.key?.toString()}${m.value?.toString('latin1')}`).join('\n');
    for (const secret of [`Pa55-${run.id}-word`, `Other-${run.id}-pw`, `unregistered-${run.id}`, run.id + '_ops', '110101199001010011']) expect(everything).not.toContain(secret);
    // Other tables' DDL is counted, not logged (a shared server's migrations would flood the log).
    const reader = run.services.filter((svc) => svc.name === 'cdc-reader').at(-1)!;
    const counted = (registered: string) => metricOf(reader, `cityshare_reader_schema_changes_total{source="cityhub",registered="${registered}"`);
    await eventually(async () => expect(await counted('false')).toBeGreaterThanOrEqual(1));
    expect(await counted('true')).toBeGreaterThanOrEqual(1);
    const logged = readFileSync(reader.logFile, 'utf8').split('\n').filter((l) => l.includes('"msg":"schema change"') && l.includes(`"pid":${reader.pid}`));
    expect(logged.some((l) => l.includes('unregistered'))).toBe(false);
    expect(logged.some((l) => l.includes(`${run.civilDb}.citizens`))).toBe(true);
  });
});

describe('schema change while a table is being snapshotted', () => {
  const run = new PipelineRun();

  beforeAll(async () => {
    await run.setUp();
    const values = Array.from({ length: 3000 }, (_, i) => `(${i + 1}, '市民', '110101199001010000', '13800000000', '东城', NOW())`);
    await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES ${values.join(', ')}`);
    await run.startDelivery();
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('reads the remaining chunks with the new columns and loses no row', async () => {
    const reader = await run.start('cdc-reader', { READER_SNAPSHOT_CHUNK_ROWS: '50' });
    await run.source.query(`ALTER TABLE \`${run.civilDb}\`.citizens DROP COLUMN address, CHANGE phone mobile VARCHAR(20)`);
    await eventually(async () => {
      const { rows } = await run.pg.query(`SELECT count(*)::int AS n FROM "${run.pgSchema}".citizens`);
      expect(rows[0].n).toBe(3000);
    }, 90_000, 500);
    expect(reader.running).toBe(true);
  });
});
