import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRawMessage, keyNames, masks, openDepartmentValue, recordForgery, tokenize, topics, type DeliveryRecord } from '@cityshare/shared';
import { signalRecord, type ReaderSignal } from '../services/cdc-reader/src/signal-listener.js';
import { eventually } from '../scripts/support/eventually.js';
import { adminKafka } from '../scripts/support/kafka-security.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';
import { readAllMessages } from './support/kafka-peek.js';

/** A repair's version: after every other at its high watermark (position.ts repairVersion). */
const REPAIR_VERSION = /^\d{10}\.\d{12}\.999999\.\d{13}\.\d{6}$/;

/**
 * `cdc repair`'s path through the pipeline on the real stack: two departments receive the
 * same table (health by its key, the Haidian office by a token of it, inside a row filter);
 * a department's table is tampered with directly, and a repair signal for that department
 * re-delivers exactly the rows named, through the reader's watermark window, the transformer's
 * projection and the sink's version guard, to that department only, with delivery records.
 */
describe('repair of one department', () => {
  const run = new PipelineRun();
  const pipelineFile = join(dirname(run.keyringFile), 'repair-pipeline.yaml');
  const health = run.pgSchema;
  const haidian = run.haidianPgSchema;
  let reader: ServiceProcess;

  const insertCitizen = (id: number, district: string) =>
    run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, birth_date, district, address, registered_at) VALUES (?, ?, ?, ?, '1990-01-01', ?, '北京市', NOW(6))`, [id, `王${id}号`, `1101011990010100${String(id).padStart(2, '0')}`, `1391234${String(id).padStart(4, '0')}`, district]);
  const rows = async (schema: string) => (await run.pg.query(`SELECT * FROM "${schema}".citizens ORDER BY id`)).rows as Array<Record<string, unknown>>;
  /** What a department's row says, its ciphertext opened with the department's key (a new ciphertext of the same value is equal). */
  const healthView = async () => (await rows(health)).map((r) => ({
    id: r.id, name: r.name, phone: r.phone, birth_date: r.birth_date, district: r.district,
    id_card: opened(r.id_card as Buffer, r.id),
  }));
  /** A ciphertext copied from another row does not open (it is bound to its row). */
  const opened = (ciphertext: Buffer, id: unknown) => {
    try {
      return openDepartmentValue(run.keys, ciphertext, { source: 'cityhub', department: 'health', db: run.civilDb, table: 'citizens', column: 'id_card', key: { id } });
    } catch (err) {
      return (err as { code?: string }).code;
    }
  };
  const haidianView = async () => (await rows(haidian)).map((r) => ({ id: r.id, name: r.name, district: r.district }));
  const shareTopic = (department: string) => topics.share(run.prefix, department, 'cityhub', run.civilDb, 'citizens');
  const rawTopic = () => topics.raw(run.prefix, 'cityhub', run.civilDb, 'citizens');

  const admin = adminKafka('test-repair').admin();
  const endOffsets = async (topic: string) => (await admin.fetchTopicOffsets(topic)).map((p) => `${p.partition}:${p.high}`).sort();
  /** Once the department's transformer stream has committed past every raw event there is, it has seen the repair. */
  const streamPassed = (department: string) => eventually(async () => {
    const [committed] = await admin.fetchOffsets({ groupId: `${run.prefix}.transformer.${department}`, topics: [rawTopic()] });
    const ends = await admin.fetchTopicOffsets(rawTopic());
    for (const end of ends) expect(committed!.partitions.find((p) => p.partition === end.partition)?.offset ?? '-1').toBe(end.high);
  }, 30_000);
  /** Copies a department row under another key, as someone writing the department's table directly would. */
  const copyRow = async (schema: string, from: string, to: string) => {
    await run.pg.query(`CREATE TEMP TABLE copied AS SELECT * FROM "${schema}".citizens WHERE id = $1`, [from]);
    await run.pg.query('UPDATE copied SET id = $1', [to]);
    await run.pg.query(`INSERT INTO "${schema}".citizens SELECT * FROM copied`);
    await run.pg.query('DROP TABLE copied');
  };
  const repair = async (signal: Omit<Extract<ReaderSignal, { action: 'repair' }>, 'action' | 'source' | 'table'>) => {
    const { topic, message } = signalRecord(run.keys, run.prefix, { action: 'repair', source: 'cityhub', table: `${run.civilDb}.citizens`, requestedBy: 'test', ...signal });
    const producer = adminKafka('test-repair-signal').producer();
    await producer.connect();
    await producer.send({ topic, messages: [message] });
    await producer.disconnect();
  };
  /** The repair's raw events, by request, opened. */
  const repairEvents = async (request: string) => (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${rawTopic().replaceAll('.', '\\.')}$`)))
    .flatMap((m) => {
      const frame = decodeRawMessage(m.value!);
      return frame.events.map((event, i) => ({ event, secrets: frame.secretsOf(i, run.keys) }));
    })
    .filter(({ event }) => event.source.repair?.request === request);

  beforeAll(async () => {
    await run.setUp();
    await admin.connect();
    run.writePipelineFile('repair-pipeline.yaml', {
      serverId: 5461,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: [
        { name: 'health', target: { kind: 'postgres', url: stack.postgresUrl, schema: health }, grants: [{ table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', name: { mask: 'name' }, phone: { mask: 'phone' }, id_card: 'encrypt', birth_date: 'pass', district: 'pass' } }] },
        { name: 'haidian', target: { kind: 'postgres', url: stack.postgresUrl, schema: haidian }, grants: [{ table: `cityhub.${run.civilDb}.citizens`, filter: 'district == "海淀"', columns: { id: { tokenize: { domain: 'citizen' } }, name: { mask: 'name' }, district: 'pass' } }] },
      ],
    });
    const env = { CITYSHARE_PIPELINE: pipelineFile };
    reader = await run.start('cdc-reader', env);
    await run.start('transformer', env);
    await run.start('sink', { ...env, SINK_DEPARTMENT: 'health' });
    await run.start('sink', { ...env, SINK_DEPARTMENT: 'haidian' });
    for (let id = 1; id <= 12; id++) await insertCitizen(id, id % 2 === 1 ? '海淀' : '朝阳');
    await eventually(async () => expect((await rows(health)).length).toBe(12), 60_000);
    await eventually(async () => expect((await rows(haidian)).length).toBe(6), 60_000);
    // The reader's signal consumer starts at the end of the topic: it must be in its group before a signal is sent.
    await eventually(async () => {
      const { groups: [group] } = await admin.describeGroups([`${run.prefix}.reader.cityhub.signals`]);
      expect(group?.state).toBe('Stable');
    }, 30_000);
  });

  afterAll(async () => {
    await admin.disconnect();
    await run.tearDown();
  });

  it('restores a tampered, a deleted and removes an extra row at one department, and sends the other nothing', async () => {
    const expected = await healthView();
    expect(expected.map((r) => r.id)).toEqual(Array.from({ length: 12 }, (_, i) => String(i + 1)));
    expect(expected[2]).toMatchObject({ name: masks.name('王3号'), id_card: '110101199001010003' });
    const haidianBefore = await endOffsets(shareTopic('haidian'));
    const healthBefore = await endOffsets(shareTopic('health'));

    // Tampered with directly: a masked value changed, a row deleted, a row that never was at the source added.
    await run.pg.query(`UPDATE "${health}".citizens SET name = '李**' WHERE id = 3`);
    await run.pg.query(`DELETE FROM "${health}".citizens WHERE id = 5`);
    await copyRow(health, '1', '999');
    const tampered = await healthView();
    expect(tampered.map((r) => r.id)).toEqual([...expected.map((r) => r.id).filter((id) => id !== '5'), '999']);
    expect(tampered.at(-1)!.id_card).toBe('DECRYPT_FAILED');

    // Keys as a department's table or a verifier's report gives them: text or numbers.
    await repair({ department: 'health', request: 'repair-1', keys: [{ id: '3' }, { id: 5 }], deletes: [{ id: '999' }] });
    await eventually(async () => expect(await healthView()).toEqual(expected), 60_000, 500);

    // Through the pipeline: raw events for health only, at versions past everything the department held.
    const events = await repairEvents('repair-1');
    expect(events.map(({ event }) => [event.op, event.before?.id ?? event.after?.id]).sort()).toEqual([['d', '999'], ['r', '3'], ['r', '5']]);
    for (const { event } of events) {
      expect(event.source).toMatchObject({ snapshot: true, repair: { department: 'health', request: 'repair-1' } });
      expect(event.source.version).toMatch(REPAIR_VERSION);
    }
    const deleted = events.find(({ event }) => event.op === 'd')!;
    expect(deleted.event.before).toEqual({ id: '999', district: null, registered_at: null });
    expect(deleted.secrets).toEqual({ before: { name: null, id_card: null, phone: null, birth_date: null, address: null } });
    const versions = (await rows(health)).filter((r) => r.id === '3' || r.id === '5').map((r) => r.__version);
    expect(versions.every((v) => REPAIR_VERSION.test(String(v)))).toBe(true);

    // The other department's stream read the repair's events and produced nothing.
    await streamPassed('haidian');
    expect(await endOffsets(shareTopic('haidian'))).toEqual(haidianBefore);
    expect(await endOffsets(shareTopic('health'))).not.toEqual(healthBefore);

    // Delivered as every change is: the sink's signed delivery records for the audit ledger.
    const deliveriesTopic = topics.deliveries(run.prefix);
    await eventually(async () => {
      const records = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${deliveriesTopic.replaceAll('.', '\\.')}$`)))
        .filter((m) => recordForgery(run.keys, deliveriesTopic, { key: m.key!, value: m.value!, headers: m.headers }, keyNames.deliveries) === null)
        .map((m) => JSON.parse(m.value!.toString()) as DeliveryRecord)
        .filter((r) => REPAIR_VERSION.test(r.toVersion) || REPAIR_VERSION.test(r.fromVersion));
      expect(records.length).toBeGreaterThan(0);
      expect(new Set(records.map((r) => r.department))).toEqual(new Set(['health']));
      expect(records.reduce((n, r) => n + r.rows, 0)).toBeGreaterThanOrEqual(3);
    }, 30_000);

    // One log line per repair, with counts; never a key.
    const line = readFileSync(reader.logFile, 'utf8').split('\n').find((l) => l.includes('"request":"repair-1"') && l.includes('repair queued for delivery'));
    expect(JSON.parse(line!)).toMatchObject({ department: 'health', table: `${run.civilDb}.citizens`, keys: 3, read: 2, deleted: 1, shareKeyDeletes: 0, absent: 0 });
    const metrics = await reader.metrics();
    expect(metrics).toMatch(new RegExp(`cityshare_reader_repair_rows_total\\{[^}]*op="r"[^}]*\\} 2`));
    expect(metrics).toMatch(new RegExp(`cityshare_reader_repair_rows_total\\{[^}]*op="d"[^}]*\\} 1`));
  });

  it('delivers the row the source has for a key it was asked to delete, instead of deleting it', async () => {
    const expected = await healthView();
    await run.pg.query(`DELETE FROM "${health}".citizens WHERE id = 8`);
    await run.pg.query(`UPDATE "${health}".citizens SET phone = '000' WHERE id = 9`);
    await repair({ department: 'health', request: 'repair-2', deletes: [{ id: 8 }, { id: '9' }] });
    await eventually(async () => expect(await healthView()).toEqual(expected), 60_000, 500);
    const events = await repairEvents('repair-2');
    expect(events.map(({ event }) => [event.op, event.after?.id]).sort()).toEqual([['r', '8'], ['r', '9']]);
  });

  it('deletes rows a department holds by the token of their key, and one outside its filter, at that department only', async () => {
    const expected = await haidianView();
    const held = await rows(haidian);
    // The office's key is a token of the citizen domain: the token of row 2 (朝阳, outside its filter) is what it would hold.
    const token = (id: string) => tokenize(run.keys.activeKey('token:citizen'), id);
    expect(held.map((r) => r.id)).toContain(token('1'));
    await copyRow(haidian, token('1'), token('2'));
    await copyRow(haidian, token('1'), 'tok:forged');
    const healthBefore = await endOffsets(shareTopic('health'));

    // The source row 2 is outside the filter: read again, it is not delivered, so its delete comes by share key.
    await repair({ department: 'haidian', request: 'repair-3', deletes: [{ id: 2 }], shareKeys: [JSON.stringify({ id: token('2') }), JSON.stringify({ id: 'tok:forged' })] });
    await eventually(async () => expect(await haidianView()).toEqual(expected), 60_000, 500);
    const events = await repairEvents('repair-3');
    expect(events.map(({ event }) => event.op).sort()).toEqual(['d', 'd', 'r']);
    // The share keys travel sealed, never in an event's clear part.
    const shareKeyEvents = events.filter(({ secrets }) => secrets?.shareKey !== undefined);
    expect(shareKeyEvents.map(({ secrets }) => secrets!.shareKey).sort()).toEqual([JSON.stringify({ id: token('2') }), JSON.stringify({ id: 'tok:forged' })].sort());
    for (const { event } of shareKeyEvents) expect(JSON.stringify(event)).not.toContain('tok:');

    await streamPassed('health');
    expect(await endOffsets(shareTopic('health'))).toEqual(healthBefore);
  });

  it('ignores and counts a repair signal the pipeline key does not authenticate', async () => {
    const forged = async () => Number(/^cityshare_forged_records_total\{[^}]*topic_kind="signals"[^}]*\} (\d+)/m.exec(await reader.metrics())?.[1] ?? 0);
    const before = await forged();
    const expected = await healthView();
    await run.pg.query(`UPDATE "${health}".citizens SET name = '赵**' WHERE id = 4`);
    const { topic, message } = signalRecord(run.keys, run.prefix, { action: 'repair', source: 'cityhub', table: `${run.civilDb}.citizens`, department: 'health', request: 'forged-1', keys: [{ id: 4 }] });
    const producer = adminKafka('test-repair-forger').producer();
    await producer.connect();
    // Signed, then retargeted: the MAC covers the value, so it no longer verifies.
    await producer.send({ topic, messages: [{ ...message, value: message.value.replace('forged-1', 'forged-2') }] });
    await producer.disconnect();
    await eventually(async () => expect(await forged()).toBe(before + 1), 30_000);
    expect(readFileSync(reader.logFile, 'utf8')).not.toMatch(/"request":"forged-[12]"/);
    expect((await healthView()).find((r) => r.id === '4')!.name).toBe('赵**');
    // A genuine repair of the row afterwards is acted on.
    await repair({ department: 'health', request: 'repair-6', keys: [{ id: 4 }] });
    await eventually(async () => expect(await healthView()).toEqual(expected), 60_000, 500);
  });

  it('refuses a repair for a department without a grant on the table, and one of keys that are not its primary key', async () => {
    await repair({ department: 'police', request: 'repair-4', keys: [{ id: 1 }] });
    await repair({ department: 'health', request: 'repair-5', keys: [{ name: '王1号' }] });
    await eventually(() => {
      const log = readFileSync(reader.logFile, 'utf8');
      expect(log).toMatch(/"code":"SIGNAL_REFUSED".*"request":"repair-4".*department police has no grant on the table/);
      expect(log).toMatch(/"code":"SIGNAL_REFUSED".*"request":"repair-5".*keys\[0\] names columns name; the primary key is id/);
      expect(log).not.toContain('王1号');
    }, 30_000);
    // The keys travelled sealed: the signals topic holds none of them in clear.
    const signals = await readAllMessages(stack.kafkaBrokers, new RegExp(`^${topics.signals(run.prefix).replaceAll('.', '\\.')}$`));
    expect(signals.length).toBe(7);
    for (const m of signals) expect(m.value!.toString()).not.toMatch(/王1号|tok:forged|"keys"/);
  });
});
