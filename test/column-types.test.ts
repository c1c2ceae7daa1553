import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { readAllMessages, readRawEvents } from './support/kafka-peek.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';

const COLUMNS: Array<[string, string]> = [
  ['ti', 'TINYINT'], ['tiu', 'TINYINT UNSIGNED'], ['si', 'SMALLINT'], ['mi', 'MEDIUMINT'], ['i', 'INT'], ['iu', 'INT UNSIGNED'],
  ['bi', 'BIGINT'], ['biu', 'BIGINT UNSIGNED'], ['d', 'DECIMAL(65,30)'], ['d2', 'DECIMAL(10,2)'], ['f', 'FLOAT'], ['db', 'DOUBLE'],
  ['b1', 'BIT(1)'], ['b64', 'BIT(64)'], ['dd', 'DATE'], ['tm', 'TIME(6)'], ['y', 'YEAR'], ['dt0', 'DATETIME'], ['dt6', 'DATETIME(6)'],
  ['ts0', 'TIMESTAMP NULL'], ['ts6', 'TIMESTAMP(6) NULL'], ['c', 'CHAR(10)'], ['v', 'VARCHAR(100)'], ['t', 'TEXT'],
  ['l1', 'VARCHAR(20) CHARACTER SET latin1'], ['bn', 'BINARY(4)'], ['vb', 'VARBINARY(20)'], ['bl', 'BLOB'],
  ['e', "ENUM('a','b','c')"], ['s', "SET('x','y','z')"], ['j', 'JSON'], ['u', 'UUID'], ['i4', 'INET4'], ['i6', 'INET6'], ['g', 'POINT'],
  ['gm', 'GEOMETRY'],
];

// Each row is inserted twice: once before the reader starts (snapshot), once after (binlog).
const ROWS: Record<string, string> = {
  min: `-128, 0, -32768, -8388608, -2147483648, 0, -9223372036854775808, 0, '-99999999999999999999999999999999999.999999999999999999999999999999', -99999999.99, -3.40282e38, -1.7976931348623157e308, b'0', b'0', '1000-01-01', '-838:59:59.000000', 1901, '1000-01-01 00:00:00', '1000-01-01 00:00:00.000000', '1970-01-01 08:00:01', '1970-01-01 08:00:01.000000', '', '', '', '', x'00000000', x'', x'', 'a', '', '[]', '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::', ST_GeomFromText('POINT(-180 -90)'), ST_GeomFromText('MULTIPOINT(1 2, 3 4)', 4326)`,
  max: `127, 255, 32767, 8388607, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, '99999999999999999999999999999999999.999999999999999999999999999999', 99999999.99, 3.40282e38, 1.7976931348623157e308, b'1', b'1111111111111111111111111111111111111111111111111111111111111111', '9999-12-31', '838:59:59.000000', 2155, '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07', '2038-01-19 03:14:07.999999', '张三😀', '欧阳娜娜 🚌 O''Brien', REPEAT('长', 300), 'café ñ', x'deadbeef', x'00ff10', x'89504e470d0a1a0a', 'c', 'x,y,z', '{"big": 12345678901234567890, "zh": "北京", "a": [1.5, null, true]}', '123e4567-e89b-12d3-a456-426614174000', '192.168.10.255', '2001:db8::ff00:42:8329', ST_GeomFromText('POINT(116.397 39.909)', 4326), ST_GeomFromText('POLYGON((0 0, 10 0, 10 10, 0 10, 0 0), (1 1, 2 1, 2 2, 1 1))', 3857)`,
  nulls: Array(COLUMNS.length).fill('NULL').join(', '),
  edge: `0, 1, 0, 0, 0, 1, 0, 9007199254740993, '0.000000000000000000000000000001', 0.01, 0.1, 0.1, b'1', b'1000000000000000000000000000000000000000000000000000000000000001', '0000-00-00', '-00:00:00.500000', 0, '0000-00-00 00:00:00', '2024-02-29 13:14:15.000001', '2024-02-29 13:14:15', '2024-02-29 13:14:15.654321', 'tab\t', 'line\nbreak "q"', 'x', 'x', x'00', x'00', x'00', 'b', 'y', '{"n": -0.0, "e": 1e400}', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '255.255.255.255', '::1', ST_GeomFromText('POINT(0 0)'), ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1.5 2.25))')`,
};

/**
 * Every MySQL/MariaDB column type read by the real reader from a real MariaDB: snapshot
 * rows and binlog rows of the same data are identical, and exact.
 */
describe('column types, snapshot and binlog', () => {
  const run = new PipelineRun();
  const db = `${run.id}_types`;
  const pipelineFile = join(dirname(run.keyringFile), 'types-pipeline.yaml');
  const ids = Object.keys(ROWS);
  let rows: Map<number, { op: string; after: Record<string, unknown> }>;

  const insert = async (offset: number) => {
    for (const [i, name] of ids.entries()) {
      // Zero dates need a permissive sql_mode; TIMESTAMP literals are in +08:00 (Beijing) on purpose.
      await run.source.query(`SET SESSION sql_mode = '', time_zone = '+08:00'`);
      await run.source.query(`INSERT INTO \`${db}\`.types VALUES (${offset + i}, ${ROWS[name]})`);
    }
  };

  beforeAll(async () => {
    await run.setUp();
    await run.source.query(`CREATE DATABASE \`${db}\``);
    await run.source.query(`CREATE TABLE \`${db}\`.types (id INT PRIMARY KEY, ${COLUMNS.map(([n, t]) => `\`${n}\` ${t}`).join(', ')}) DEFAULT CHARSET = utf8mb4`);
    run.writePipelineFile('types-pipeline.yaml', {
      sourceName: 'src',
      serverId: 5201,
      tables: [{ name: `${db}.types`, columns: Object.fromEntries([['id', 'public'], ...COLUMNS.map(([n]) => [n, 'public'])]) }],
    });
    await insert(100);
    const reader = await run.start('cdc-reader', { CITYSHARE_PIPELINE: pipelineFile, READER_SNAPSHOT_CHUNK_ROWS: '2' });
    await eventually(() => expect(readFileSync(reader.logFile, 'utf8')).toContain('snapshot complete'));
    await insert(200);
    rows = await eventually(async () => {
      const events = await readRawEvents(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.raw\\.`));
      const byId = new Map(events.map((e) => [Number(e.after!.id), e as typeof e & { after: Record<string, unknown> }]));
      expect(byId.size).toBe(ids.length * 2);
      return byId;
    }, 60_000, 500);
  });

  afterAll(async () => {
    await run.source.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await run.tearDown();
  });

  it('reads snapshot rows as op r and binlog rows as op c', () => {
    expect(rows.get(100)!.op).toBe('r');
    expect(rows.get(200)!.op).toBe('c');
  });

  it.each(ids.map((name, i) => [name, i]))('snapshot and binlog agree on the %s row', (_, i) => {
    const { id: a, ...snapshot } = rows.get(100 + (i as number))!.after;
    const { id: b, ...stream } = rows.get(200 + (i as number))!.after;
    expect(Number(b) - Number(a)).toBe(100);
    expect(stream).toEqual(snapshot);
  });

  it('keeps extreme values exact', () => {
    const max = rows.get(201)!.after;
    expect(max).toMatchObject({
      ti: 127, tiu: 255, iu: 4294967295, bi: '9223372036854775807', biu: '18446744073709551615',
      d: '99999999999999999999999999999999999.999999999999999999999999999999', d2: '99999999.99',
      f: Math.fround(3.40282e38), db: 1.7976931348623157e308, b1: '1', b64: '1'.repeat(64),
      dd: '9999-12-31', tm: '838:59:59.000000', y: 2155, dt0: '9999-12-31T23:59:59', dt6: '9999-12-31T23:59:59.999999',
      ts0: '2038-01-18T19:14:07Z', ts6: '2038-01-18T19:14:07.999999Z',
      c: '张三😀', v: "欧阳娜娜 🚌 O'Brien", t: '长'.repeat(300), l1: 'café ñ',
      bn: Buffer.from('deadbeef', 'hex').toString('base64'), vb: Buffer.from('00ff10', 'hex').toString('base64'),
      e: 'c', s: 'x,y,z', j: '{"big": 12345678901234567890, "zh": "北京", "a": [1.5, null, true]}',
      u: '123e4567-e89b-12d3-a456-426614174000', i4: '192.168.10.255', i6: '2001:db8::ff00:42:8329',
      g: 'SRID=4326;POINT(116.397 39.909)', gm: 'SRID=3857;POLYGON((0 0,10 0,10 10,0 10,0 0),(1 1,2 1,2 2,1 1))',
    });
    const min = rows.get(200)!.after;
    expect(min).toMatchObject({ bi: '-9223372036854775808', d: '-99999999999999999999999999999999999.999999999999999999999999999999', tm: '-838:59:59.000000', i6: '::', ts0: '1970-01-01T00:00:01Z', g: 'SRID=0;POINT(-180 -90)', gm: 'SRID=4326;MULTIPOINT(1 2,3 4)' });
    expect(rows.get(203)!.after).toMatchObject({ g: 'SRID=0;POINT(0 0)', gm: 'SRID=0;GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,1.5 2.25))' });
  });

  it('maps zero dates to null and keeps microseconds and small fractions', () => {
    const edge = rows.get(203)!.after;
    expect(edge).toMatchObject({ dd: null, dt0: null, dt6: '2024-02-29T13:14:15.000001', ts0: '2024-02-29T05:14:15Z', ts6: '2024-02-29T05:14:15.654321Z', tm: '-00:00:00.500000', biu: '9007199254740993', d: '0.000000000000000000000000000001', f: Math.fround(0.1), db: 0.1, y: 0, b64: '1' + '0'.repeat(62) + '1', i6: '::1' });
  });

  it('knows a MariaDB JSON column (LONGTEXT with a json_valid check) as JSON', async () => {
    const schemas = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.table-schemas$`))).map((m) => JSON.parse(m.value!.toString()));
    expect(schemas.length).toBeGreaterThanOrEqual(1);
    for (const schema of schemas) {
      expect(schema.columns.find((c: { name: string }) => c.name === 'j')).toMatchObject({ type: { kind: 'json' }, sourceType: 'json' });
      expect(schema.columns.find((c: { name: string }) => c.name === 't')).toMatchObject({ type: { kind: 'string' } });
    }
  });

  it('carries nulls as nulls', () => {
    const { id, ...nulls } = rows.get(202)!.after;
    expect(id).toBe(202);
    expect(Object.values(nulls).every((v) => v === null)).toBe(true);
  });
});
