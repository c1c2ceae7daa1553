import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring, consumeShareTopics, departmentGroupPrefix, envelopeKeyIds, openDepartmentValue, type ShareChange } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { readAllMessages, readRawEvents } from './support/kafka-peek.js';
import { kafkaSettingsOf } from '../scripts/support/kafka-security.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';
import type { TransactionRecord } from '../services/cdc-reader/src/reader-records.js';

/**
 * The walking skeleton end to end on the real stack: MariaDB binlog -> cdc-reader ->
 * Kafka -> transformer (policy, Avro, registry) -> Kafka -> sink -> PostgreSQL.
 */
describe('pipeline end to end', () => {
  const run = new PipelineRun();
  const citizens = [
    { id: 1, name: '张三', id_card: '110101199001011234', phone: '13812341234', birth: '1990-01-01', district: '海淀', address: '北京市海淀区中关村大街1号😀' },
    { id: 2, name: '欧阳娜娜', id_card: '31010419851230002X', phone: '13987654321', birth: '1985-12-30', district: '徐汇', address: '上海市徐汇区漕溪北路88号' },
    { id: 3, name: 'John Smith', id_card: '44030519700101005X', phone: '13700001111', birth: '1970-01-01', district: '南山', address: '深圳市南山区科技园' },
  ];
  const personalValues = [...citizens.flatMap((c) => [c.name, c.id_card, c.phone, c.address]), '急性阑尾炎', '高血压 II 期'];

  const readHealth = async (table: string, order = 'id') =>
    (await run.pg.query(`SELECT * FROM "${run.pgSchema}"."${table}" ORDER BY ${order}`)).rows as Array<Record<string, unknown>>;

  beforeAll(async () => {
    await run.setUp();
    await run.start('cdc-reader', { READER_TRANSACTION_MARKERS: 'true' });
    await run.start('transformer');
    await run.start('sink');
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('delivers inserts, updates, a primary-key change and deletes with the grant applied', async () => {
    for (const c of citizens) {
      await run.source.query(
        `INSERT INTO \`${run.civilDb}\`.citizens VALUES (?, ?, ?, ?, ?, ?, ?, '2024-03-01 08:30:00.123456')`,
        [c.id, c.name, c.id_card, c.phone, c.birth, c.district, c.address],
      );
    }
    await run.source.query(
      `INSERT INTO \`${run.healthDb}\`.clinic_visits VALUES (10, 1, '海淀医院', '2024-03-02 09:15:30.250', '急性阑尾炎', 12345678.90), (11, 2, '瑞金医院', '2024-03-03 14:00:00.000', '高血压 II 期', 0.01)`,
    );
    await run.source.query(`UPDATE \`${run.civilDb}\`.citizens SET phone = '13900002222', district = '朝阳' WHERE id = 1`);
    await run.source.query(`UPDATE \`${run.civilDb}\`.citizens SET id = 30 WHERE id = 3`);
    await run.source.query(`DELETE FROM \`${run.civilDb}\`.citizens WHERE id = 2`);

    const rows = await eventually(async () => {
      const r = await readHealth('citizens');
      expect(r.map((x) => x.id)).toEqual(['1', '30']);
      expect(r[0]!.district).toBe('朝阳');
      return r;
    });

    // Exactly the granted columns: address and registered_at are not shared.
    expect(Object.keys(rows[0]!).sort()).toEqual(['__source_ts', '__synced_at', '__version', 'birth_date', 'district', 'id', 'id_card', 'name', 'phone']);
    expect(rows[0]).toMatchObject({ name: '张*', phone: '139****2222', district: '朝阳' });
    expect(rows[1]).toMatchObject({ name: 'J*** S****', phone: '137****1111', district: '南山' });
    expect((rows[0]!.birth_date as Date).toISOString().slice(0, 10)).toBe('1990-01-01');

    // Encrypted columns open with the health department's key, and with no other.
    const idCard = rows[0]!.id_card as Buffer;
    const row1 = { source: 'cityhub', department: 'health', db: run.civilDb, table: 'citizens', column: 'id_card', key: { id: rows[0]!.id } };
    expect(openDepartmentValue(run.keys, idCard, row1)).toBe('110101199001011234');
    expect(idCard[0]).toBe(3); // bound to source, department, column and row
    expect(envelopeKeyIds(idCard)).toEqual({ suite: 'aes-256-gcm', kekId: run.keys.activeKey('department:health').id });
    const otherDepartment = FileKeyring.ensure(`${run.keyringFile}.other`, ['department:health']);
    expect(() => openDepartmentValue(otherDepartment, idCard, row1)).toThrow();
    // The department's own tool, with nothing but its keyring: `cdc decrypt`.
    const decrypt = (key: string, bytes: Buffer) =>
      spawnSync(process.execPath, ['packages/cli/bin/cdc.js', 'decrypt', '--keyring', run.keyringFile, '--source', 'cityhub', '--department', 'health', '--column', `${run.civilDb}.citizens.id_card`, '--key', key, `\\x${bytes.toString('hex')}`], { cwd: stack.root, encoding: 'utf8' });
    const cli = decrypt('{"id":"1"}', idCard);
    expect(cli.stderr).toBe('');
    expect(cli.stdout).toBe('"110101199001011234"\n');
    // Bound to its column, row, department and source: the same bytes open nowhere else.
    const moved = /DECRYPT_FAILED|does not verify/;
    expect(() => openDepartmentValue(run.keys, idCard, { ...row1, column: 'phone' })).toThrow(moved);
    // Presented as haidian's: haidian's own KEK list does not hold health's key, so not even the data key unwraps.
    expect(() => openDepartmentValue(run.keys, idCard, { ...row1, department: 'haidian' })).toThrow(/in the keyring list department:haidian/);
    expect(() => openDepartmentValue(run.keys, idCard, { ...row1, source: 'cityhub_west' })).toThrow(moved);
    // Row 1's ID card copied into row 30 (same column) does not open as row 30's.
    const row30 = rows[1]!.id_card as Buffer;
    expect(openDepartmentValue(run.keys, row30, { ...row1, key: { id: '30' } })).toBe('44030519700101005X');
    expect(() => openDepartmentValue(run.keys, idCard, { ...row1, key: { id: '30' } })).toThrow(moved);
    const copied = decrypt('{"id":"30"}', idCard);
    expect(copied.status).not.toBe(0);
    expect(copied.stderr).toMatch(/DECRYPT_FAILED/);
    expect(copied.stdout).toBe('');

    const visits = await eventually(async () => {
      const v = await readHealth('clinic_visits');
      expect(v).toHaveLength(2);
      return v;
    });
    expect(visits[0]).toMatchObject({ id: '10', citizen_id: '1', clinic: '海淀医院', fee: '12345678.90' });
    expect((visits[0]!.visited_at as Date).toISOString()).toBe('2024-03-02T09:15:30.250Z');
    expect(visits[1]!.fee).toBe('0.01');
    expect(openDepartmentValue(run.keys, visits[0]!.diagnosis as Buffer, { source: 'cityhub', department: 'health', db: run.healthDb, table: 'clinic_visits', column: 'diagnosis', key: { id: visits[0]!.id } })).toBe('急性阑尾炎');
  });

  it('lets a department read its share topic itself, decoded and decrypted with its keyring only', async () => {
    const seen: ShareChange[] = [];
    const consumer = await consumeShareTopics({
      // As the department's own principal, which may read its share topics and nothing else.
      kafka: kafkaSettingsOf('department-health'),
      registryUrl: stack.registryUrl,
      topics: [`${run.prefix}.share.health.cityhub.${run.civilDb}.citizens`],
      groupId: `${departmentGroupPrefix(run.prefix, 'health')}app`,
      keys: FileKeyring.load(run.keyringFile),
      source: 'cityhub',
      onChange: async (c) => {
        seen.push(c);
      },
    });
    try {
      const first = await eventually(() => seen.find((c) => c.key.id === '1' && c.op === 'c') ?? expect.fail('not yet'));
      expect(first).toMatchObject({ db: run.civilDb, table: 'citizens', deleted: false, values: { id: '1', name: '张*', id_card: '110101199001011234', district: '海淀' } });
      await eventually(() => expect(seen.some((c) => c.key.id === '2' && c.op === 'd' && c.deleted)).toBe(true));
    } finally {
      await consumer.stop();
    }
  });

  it('marks the end of every transaction with what it changed', async () => {
    const markers = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.transactions\\.`))).map((m) => JSON.parse(m.value!.toString()) as TransactionRecord);
    const visits = markers.find((m) => m.data_collections[`${run.healthDb}.clinic_visits`])!;
    expect(visits).toMatchObject({ status: 'END', event_count: 2, data_collections: { [`${run.healthDb}.clinic_visits`]: 2 } });
    expect(visits.gtid).toMatch(/^\d+-\d+-\d+$/);
    const raw = await readRawEvents(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.raw\\..*clinic_visits$`));
    expect(raw.map((e) => [e.source.gtid, e.source.txIndex]).sort()).toEqual([[visits.gtid, 0], [visits.gtid, 1]]);
  });

  it('runs the reader and the sink on keyrings of their own: no KEK, token or pipeline key where the department\'s rows land', async () => {
    const own = (file: string) => FileKeyring.load(join(dirname(run.keyringFile), file)).listNames().sort();
    expect(own('keyring.cdc-reader.json')).toEqual(['pipeline']);
    expect(own('keyring.sink-health.json')).toEqual(['deliveries']);
    // `cdc keys split` writes the same files for an operator's hosts.
    const out = join(dirname(run.keyringFile), 'split');
    const split = spawnSync(process.execPath, ['packages/cli/bin/cdc.js', '-c', join(stack.root, 'deploy', 'local', 'pipeline.yaml'), 'keys', 'split', '--keyring', run.keyringFile, '--out', out], { cwd: stack.root, env: run.cliEnv, encoding: 'utf8' });
    expect(split.status, split.stderr).toBe(0);
    expect(FileKeyring.load(join(out, 'sink-health.json')).listNames()).toEqual(['deliveries']);
    expect(FileKeyring.load(join(out, 'department-health.json')).listNames()).toEqual(['department:health']);
    expect(statSync(join(out, 'transformer.json')).mode & 0o777).toBe(0o600);
  });

  it('leaves no personal value in plaintext in any Kafka topic of the run', async () => {
    const messages = await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.`));
    const topicsSeen = new Set(messages.map((m) => m.topic.split('.')[1]));
    // The delivery records for the audit ledger are scanned too: counts and digests only. Heartbeats
    // come only once the source was idle for READER_HEARTBEAT_SECONDS, which a server other suites
    // keep busy may never be: scanned when there are some, not waited for.
    const scanned = ['raw', 'share', 'checkpoints', 'transactions', 'table-schemas', 'audit'];
    expect([...topicsSeen].filter((t) => t !== 'heartbeats').sort()).toEqual([...scanned].sort());
    for (const m of messages) {
      const bytes = Buffer.concat([m.key ?? Buffer.alloc(0), m.value ?? Buffer.alloc(0)]);
      for (const value of personalValues) {
        expect(bytes.includes(Buffer.from(value, 'utf8')), `${value} in ${m.topic}@${m.offset}`).toBe(false);
      }
    }
  });

  it('loses no row when the reader is killed mid-stream and restarted', async () => {
    const reader = run.services.find((s) => s.name === 'cdc-reader')!;
    const insert = (from: number, to: number) =>
      run.source.query(
        `INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, birth_date, district, address, registered_at) VALUES ${Array.from(
          { length: to - from },
          (_, i) => `(${from + i}, '市民${from + i}', '110101199001010000', '13800000000', '2000-01-01', '东城', NULL, NOW(6))`,
        ).join(', ')}`,
      );
    // Rows committed while the reader runs, then a kill -9 right after more commits.
    await insert(100, 200);
    await insert(200, 300);
    await reader.kill();
    await insert(300, 400);
    for (let i = 400; i < 450; i++) await insert(i, i + 1);
    await run.start('cdc-reader');
    await insert(450, 500);

    await eventually(async () => {
      const { rows } = await run.pg.query(`SELECT count(*)::int AS n, min(id)::int AS lo, max(id)::int AS hi FROM "${run.pgSchema}".citizens WHERE id >= 100`);
      expect(rows[0]).toEqual({ n: 400, lo: 100, hi: 499 });
    }, 90_000);
  });
});
