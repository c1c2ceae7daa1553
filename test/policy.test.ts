import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring, decodeRawMessage, envelopeKeyIds, keyNames, openDepartmentValue, sealJson, sealValue, sealedEventAad, tokenize } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { readAllMessages } from './support/kafka-peek.js';
import { adminKafka } from '../scripts/support/kafka-security.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';

/**
 * Per-department policy on the real stack: two departments, different grants on the same
 * table; policy changes (grant, revoke, classify) applied without restarts; an
 * incompatible schema change pauses the table and loses nothing.
 */
describe('department policy', () => {
  const run = new PipelineRun();
  const pipelineFile = join(dirname(run.keyringFile), 'policy-pipeline.yaml');
  const haidianSchema = run.haidianPgSchema;
  let transformer: ServiceProcess;

  const citizenClasses: Record<string, string> = { id: 'public', name: 'personal', id_card: 'secret', phone: 'personal', birth_date: 'personal', district: 'public', address: 'personal', registered_at: 'internal' };
  // address: the health department's own token domain (a token it cannot reverse).
  const healthCitizens: Record<string, unknown> = { id: 'pass', name: { mask: 'name' }, phone: { mask: 'phone' }, district: 'pass', id_card: { tokenize: { domain: 'citizen' } }, address: 'tokenize' };
  const haidianCitizens: Record<string, unknown> = { id: 'pass', district: 'pass', birth_date: { mask: 'date_to_year' }, id_card: { tokenize: { domain: 'citizen' } }, phone: { encrypt: { suite: 'sm4-ctr-hmac-sm3' } } };
  const policy = {
    citizenClasses,
    labClasses: { id: 'public', code: 'internal', note: 'internal' } as Record<string, string>,
    health: { citizens: healthCitizens, lab: { id: 'pass', code: 'pass', note: 'pass' } as Record<string, unknown> | null },
    haidian: { citizens: haidianCitizens as Record<string, unknown> | null, lab: { id: 'pass', note: 'pass' } as Record<string, unknown> },
  };

  /** Writes the pipeline file atomically (as an operator's tooling should), from `policy`. */
  const writePolicy = () => {
    const grants = (dept: 'health' | 'haidian') => [
      ...(policy[dept].citizens ? [{ table: `cityhub.${run.civilDb}.citizens`, columns: policy[dept].citizens, ...(dept === 'haidian' ? { filter: 'district == "海淀"' } : {}) }] : []),
      ...(policy[dept].lab ? [{ table: `cityhub.${run.healthDb}.lab_results`, columns: policy[dept].lab }] : []),
    ];
    run.writePipelineFile('policy-pipeline.yaml', {
      serverId: 5401,
      tables: [
        { name: `${run.civilDb}.citizens`, columns: policy.citizenClasses },
        { name: `${run.healthDb}.lab_results`, columns: policy.labClasses, quality: { note: { regex: '^[a-z]+$' } } },
      ],
      departments: [
        { name: 'health', target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema }, grants: grants('health') },
        { name: 'haidian', target: { kind: 'postgres', url: stack.postgresUrl, schema: haidianSchema }, grants: grants('haidian') },
      ],
    });
  };
  // A department that has received nothing of a table yet has no such table (the sink creates it on the first row).
  const rows = async (schema: string, table: string) =>
    (await run.pg.query(`SELECT * FROM "${schema}"."${table}" ORDER BY id`).catch((err: { code?: string }) => {
      if (err.code === '42P01') return { rows: [] };
      throw err;
    })).rows as Array<Record<string, unknown>>;
  const insertCitizen = (id: number, district = '海淀', extra = '') =>
    run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, birth_date, district, address, registered_at${extra ? ', blood_type' : ''}) VALUES (?, '王小明', '110108199205170018', '13512345678', '1992-05-17', ?, '北京市海淀区学院路1号', NOW(6)${extra ? ', ?' : ''})`, extra ? [id, district, extra] : [id, district]);
  const reloads = async () => Number(/^cityshare_transformer_policy_reloads_total\{[^}]*outcome="applied"[^}]*\} (\d+)/m.exec(await transformer.metrics())?.[1] ?? 0);

  beforeAll(async () => {
    await run.setUp();
    await run.source.query(`CREATE TABLE \`${run.healthDb}\`.lab_results (id INT PRIMARY KEY, code INT NOT NULL, note VARCHAR(20))`);
    writePolicy();
    const env = { CITYSHARE_PIPELINE: pipelineFile };
    await run.start('cdc-reader', env);
    transformer = await run.start('transformer', env);
    await run.start('sink', { ...env, SINK_DEPARTMENT: 'health' });
    await run.start('sink', { ...env, SINK_DEPARTMENT: 'haidian' });
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('gives two departments different views of the same table, joinable on a shared token domain', async () => {
    await insertCitizen(1);
    const health = await eventually(async () => (await rows(run.pgSchema, 'citizens')).at(0) ?? expect.fail('no row yet'));
    const haidian = await eventually(async () => (await rows(haidianSchema, 'citizens')).at(0) ?? expect.fail('no row yet'));
    expect(health).toMatchObject({ id: '1', name: '王**', phone: '135****5678', district: '海淀' });
    expect(Object.keys(health)).not.toContain('birth_date');
    expect(haidian).toMatchObject({ id: '1', district: '海淀', birth_date: '1992' });
    expect(Object.keys(haidian)).not.toContain('name');
    // An own-domain token is keyed by token:own:health, not by the KEK the department holds
    // to decrypt: with that KEK it could hash every address (or phone, ID number) and reverse it.
    const keys = FileKeyring.load(run.keyringFile);
    expect(health.address).toBe(tokenize(keys.activeKey(keyNames.ownTokens('health')), '北京市海淀区学院路1号'));
    expect(health.address).not.toBe(tokenize(keys.activeKey(keyNames.department('health')), '北京市海淀区学院路1号'));
    // Both get the ID card as a token of the shared `citizen` domain: equal, and not the number.
    expect(haidian.id_card).toBe(health.id_card);
    expect(String(health.id_card)).toMatch(/^tok:/);
    // The district office gets the phone encrypted with the SM4 suite, for its key only.
    expect(envelopeKeyIds(haidian.phone as Buffer)).toMatchObject({ suite: 'sm4-ctr-hmac-sm3' });
    const phoneOf = (id: unknown) => ({ source: 'cityhub', department: 'haidian', db: run.civilDb, table: 'citizens', column: 'phone', key: { id } });
    expect(openDepartmentValue(FileKeyring.load(run.keyringFile), haidian.phone as Buffer, phoneOf(haidian.id))).toBe('13512345678');
    // Bound to the department it was delivered to: presented as the health department's value, it does not open
    // (health's KEK list does not hold haidian's key; and with it, the binding would not verify).
    expect(() => openDepartmentValue(FileKeyring.load(run.keyringFile), haidian.phone as Buffer, { ...phoneOf(haidian.id), department: 'health' })).toThrow(/in the keyring list department:health/);
  });

  it('shares with a district office only the rows of its district, and removes a row that moves away', async () => {
    await insertCitizen(10, '朝阳');
    await insertCitizen(11, '海淀');
    await eventually(async () => expect((await rows(run.pgSchema, 'citizens')).map((r) => r.id)).toEqual(expect.arrayContaining(['10', '11'])));
    await eventually(async () => expect((await rows(haidianSchema, 'citizens')).map((r) => r.id)).toContain('11'));
    expect((await rows(haidianSchema, 'citizens')).map((r) => r.id)).not.toContain('10');
    await run.source.query(`UPDATE \`${run.civilDb}\`.citizens SET district = '朝阳' WHERE id = 11`);
    await run.source.query(`UPDATE \`${run.civilDb}\`.citizens SET district = '海淀' WHERE id = 10`);
    await eventually(async () => expect((await rows(haidianSchema, 'citizens')).map((r) => r.id)).toEqual(['1', '10']));
  });

  it('refuses an earlier reader\'s event whose clear part was edited (another key, past the row filter), its genuine seal kept: RECORD_FORGED, nothing delivered', async () => {
    const topic = `${run.prefix}.raw.cityhub.${run.civilDb}.citizens`;
    await insertCitizen(40, '朝阳');
    await eventually(async () => expect((await rows(run.pgSchema, 'citizens')).map((r) => r.id)).toContain('40'));
    const frame = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${topic.replaceAll('.', '\\.')}$`)))
      .map((m) => decodeRawMessage(m.value!))
      .find((f) => f.events.some((e) => e.op === 'c' && String(e.after?.id) === '40'))!;
    const index = frame.events.findIndex((e) => e.op === 'c' && String(e.after?.id) === '40');
    const event = frame.events[index]!;
    // The change as an earlier reader wrote it: its columns sealed on their own, bound to `db.table@version` only.
    const { db, table, version } = event.source;
    const sealed = sealValue(run.keys.activeKey(keyNames.pipeline), frame.secretsOf(index, run.keys), sealedEventAad(db, table, version));
    // Edited by whoever can write the topic: another primary key, and a district the office's row filter lets through.
    const edited = Buffer.from(JSON.stringify([{ ...event, after: { ...event.after, id: typeof event.after!.id === 'string' ? '41' : 41, district: '海淀' }, sealed }]));
    const producer = adminKafka('test-forger').producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: '{"id":"41"}', value: edited }] });
    await producer.disconnect();
    const forged = await eventually(async () => {
      const delivered = [...await rows(run.pgSchema, 'citizens'), ...await rows(haidianSchema, 'citizens')].filter((r) => r.id === '41');
      expect(delivered, 'the edited event was delivered').toEqual([]);
      const dead = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.dlq\\.transformer$`))).map((m) => JSON.parse(m.value!.toString()));
      const found = dead.filter((d) => d.code === 'RECORD_FORGED' && Buffer.from(d.payload, 'base64').equals(edited));
      expect(found.map((d) => d.department).sort()).toEqual(['haidian', 'health']);
      return found;
    }, 30_000);
    for (const d of forged) expect(d).toMatchObject({ topic, index: null });
    // Real changes still go through, and the edited one never arrives.
    await insertCitizen(42, '海淀');
    await eventually(async () => expect((await rows(haidianSchema, 'citizens')).map((r) => r.id)).toContain('42'));
    expect([...await rows(run.pgSchema, 'citizens'), ...await rows(haidianSchema, 'citizens')].map((r) => r.id)).not.toContain('41');
  });

  it('rotates a department key without a restart: new values under the new key, old ones still open', async () => {
    const file = JSON.parse(readFileSync(run.keyringFile, 'utf8'));
    const oldId = file.keys['department:haidian'].at(-1).id;
    file.keys['department:haidian'].push({ id: 'haidian-rotated', material: randomBytes(32).toString('base64'), created: new Date().toISOString() });
    const applied = await reloads();
    writeFileSync(`${run.keyringFile}.tmp`, JSON.stringify(file, null, 2));
    renameSync(`${run.keyringFile}.tmp`, run.keyringFile);
    await eventually(async () => expect(await reloads()).toBeGreaterThan(applied), 15_000);
    await insertCitizen(12, '海淀');
    const byId = await eventually(async () => {
      const r = new Map((await rows(haidianSchema, 'citizens')).map((x) => [x.id, x]));
      expect(r.has('12')).toBe(true);
      return r;
    });
    const keys = FileKeyring.load(run.keyringFile);
    expect(envelopeKeyIds(byId.get('12')!.phone as Buffer).kekId).toBe('haidian-rotated');
    expect(envelopeKeyIds(byId.get('1')!.phone as Buffer).kekId).toBe(oldId);
    const phoneOf = (id: string) => ({ source: 'cityhub', department: 'haidian', db: run.civilDb, table: 'citizens', column: 'phone', key: { id } });
    expect(openDepartmentValue(keys, byId.get('12')!.phone as Buffer, phoneOf('12'))).toBe('13512345678');
    expect(openDepartmentValue(keys, byId.get('1')!.phone as Buffer, phoneOf('1'))).toBe('13512345678');
  });

  it('shares a column added by ALTER TABLE only once a DBA classifies it and a grant names it', async () => {
    await run.source.query(`ALTER TABLE \`${run.civilDb}\`.citizens ADD COLUMN blood_type VARCHAR(3)`);
    await insertCitizen(2, '海淀', 'AB');
    await eventually(async () => expect((await rows(run.pgSchema, 'citizens')).map((r) => r.id)).toContain('2'));
    expect(Object.keys((await rows(run.pgSchema, 'citizens'))[1]!)).not.toContain('blood_type');

    // Granting an unclassified column is refused when the file loads; the running policy stays.
    const applied = await reloads();
    policy.health.citizens = { ...healthCitizens, blood_type: 'pass' };
    writePolicy();
    await eventually(async () => expect(await transformer.metrics()).toMatch(/cityshare_transformer_policy_reloads_total\{[^}]*outcome="rejected"[^}]*\} [1-9]/), 15_000);
    expect(await reloads()).toBe(applied);

    policy.citizenClasses = { ...citizenClasses, blood_type: 'personal' };
    writePolicy();
    await eventually(async () => expect(await reloads()).toBeGreaterThan(applied), 15_000);
    await insertCitizen(3, '海淀', 'O');
    await eventually(async () => expect((await rows(run.pgSchema, 'citizens')).find((r) => r.id === '3')).toMatchObject({ blood_type: 'O' }));
    // Still not shared with the department whose grant does not name it.
    await eventually(async () => expect((await rows(haidianSchema, 'citizens')).map((r) => r.id)).toContain('3'));
    expect(Object.keys((await rows(haidianSchema, 'citizens'))[0]!)).not.toContain('blood_type');
  });

  it('stops a revoked department\'s records within 5 seconds, without a restart', async () => {
    const applied = await reloads();
    policy.haidian.citizens = null;
    writePolicy();
    const revokedAt = Date.now();
    for (let id = 100; Date.now() - revokedAt < 8_000; id++) {
      await insertCitizen(id);
      await new Promise((r) => setTimeout(r, 100));
    }
    await eventually(async () => expect(await reloads()).toBeGreaterThan(applied), 15_000);
    const ids = (await rows(haidianSchema, 'citizens')).map((r) => Number(r.id)).filter((id) => id >= 100);
    const healthIds = await eventually(async () => {
      const all = (await rows(run.pgSchema, 'citizens')).map((r) => Number(r.id)).filter((id) => id >= 100);
      expect(all.length).toBeGreaterThanOrEqual(50);
      return all;
    });
    // Rows inserted every ~100 ms: at most about 5 s worth reached the revoked department.
    expect(ids.length).toBeLessThan(50);
    expect(healthIds.length).toBeGreaterThan(ids.length + 20);
  });

  it('applies a revoke published together with a grant that cannot load, within 5 seconds, and reports the other', async () => {
    const rejected = async () => Number(/^cityshare_transformer_policy_reloads_total\{[^}]*outcome="rejected"[^}]*\} (\d+)/m.exec(await transformer.metrics())?.[1] ?? 0);
    const before = await rejected();
    const lab = `\`${run.healthDb}\`.lab_results`;
    const labGrant = policy.health.lab;
    // One file: health's lab grant revoked, and a new grant for haidian naming a column nobody classified.
    policy.health.lab = null;
    policy.haidian.citizens = { id: 'pass', nosuch: 'pass' };
    writePolicy();
    const writtenAt = Date.now();
    for (let id = 1000; Date.now() - writtenAt < 8_000; id++) {
      await run.source.query(`INSERT INTO ${lab} (id, code, note) VALUES (?, 1, 'after')`, [id]);
      await new Promise((r) => setTimeout(r, 100));
    }
    await eventually(async () => expect(await rejected()).toBeGreaterThan(before), 15_000);
    const haidianIds = await eventually(async () => {
      const ids = (await rows(haidianSchema, 'lab_results')).map((r) => Number(r.id)).filter((id) => id >= 1000);
      expect(ids.length).toBeGreaterThanOrEqual(60);
      return ids;
    });
    // Rows inserted every ~100 ms: at most about 5 s worth reached the department whose grant was revoked.
    const healthIds = (await rows(run.pgSchema, 'lab_results')).map((r) => Number(r.id)).filter((id) => id >= 1000);
    expect(healthIds.length).toBeLessThan(50);
    expect(haidianIds.length).toBeGreaterThan(healthIds.length + 20);
    policy.haidian.citizens = null;
    policy.health.lab = labGrant;
    writePolicy();
    await eventually(async () => {
      await run.source.query(`REPLACE INTO ${lab} (id, code, note) VALUES (999, 1, 'back')`);
      expect((await rows(run.pgSchema, 'lab_results')).map((r) => Number(r.id))).toContain(999);
    }, 30_000, 1000);
    // The next tests start from empty lab results.
    await run.source.query(`DELETE FROM ${lab} WHERE id >= 999`);
    for (const schema of [run.pgSchema, haidianSchema]) await eventually(async () => expect(await rows(schema, 'lab_results')).toEqual([]), 30_000, 500);
  });

  it('pauses a table for the department whose contract breaks, not for the others; loses nothing; resumes when the grant is fixed', async () => {
    const lab = `\`${run.healthDb}\`.lab_results`;
    await run.source.query(`INSERT INTO ${lab} VALUES (1, 7, 'before')`);
    await eventually(async () => expect((await rows(run.pgSchema, 'lab_results')).map((r) => r.code)).toEqual([7]));
    // INT -> VARCHAR: a reader of the new contract (string) cannot read records written as int.
    await run.source.query(`ALTER TABLE ${lab} MODIFY code VARCHAR(10) NOT NULL`);
    await run.source.query(`INSERT INTO ${lab} VALUES (2, 'A-8', 'during')`);
    await eventually(async () => expect(await transformer.metrics()).toMatch(/^cityshare_transformer_paused_tables\{[^}]*\} 1$/m), 30_000);
    await run.source.query(`INSERT INTO ${lab} VALUES (3, 'B-9', 'during')`);
    await insertCitizen(500); // other tables go on
    await eventually(async () => expect((await rows(run.pgSchema, 'citizens')).map((r) => r.id)).toContain('500'));
    // The district office's grant does not include the changed column: it is not paused.
    await eventually(async () => expect((await rows(haidianSchema, 'lab_results')).map((r) => [r.id, r.note])).toEqual([[1, 'before'], [2, 'during'], [3, 'during']]));
    expect((await rows(run.pgSchema, 'lab_results')).map((r) => r.id)).toEqual([1]);

    // The schema owner drops the changed column from the grant: compatible again.
    policy.health.lab = { id: 'pass', note: 'pass' };
    writePolicy();
    await eventually(async () => expect((await rows(run.pgSchema, 'lab_results')).map((r) => [r.id, r.note])).toEqual([[1, 'before'], [2, 'during'], [3, 'during']]), 60_000);
    expect(await transformer.metrics()).toMatch(/^cityshare_transformer_paused_tables\{[^}]*\} 0$/m);
  });

  it('sends a change breaking a data-quality rule to the dead-letter topic, still sealed, and goes on', async () => {
    const lab = `\`${run.healthDb}\`.lab_results`;
    await run.source.query(`INSERT INTO ${lab} (id, code, note) VALUES (20, 'X', 'Bad Note 1'), (21, 'Y', 'fine')`);
    await eventually(async () => expect((await rows(run.pgSchema, 'lab_results')).map((r) => r.id)).toContain(21));
    expect((await rows(run.pgSchema, 'lab_results')).map((r) => r.id)).not.toContain(20);
    const dead = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.dlq\\.transformer$`))).map((m) => JSON.parse(m.value!.toString()));
    const broken = dead.find((d) => d.code === 'QUALITY_FAILED');
    expect(broken).toMatchObject({ reason: `cityhub.${run.healthDb}.lab_results: note breaks regex`, topic: `${run.prefix}.raw.cityhub.${run.healthDb}.lab_results` });
    // The change as a sealed frame of its own, which authenticates as the reader's frame did.
    const payload = decodeRawMessage(Buffer.from(broken.payload, 'base64'));
    expect(payload.sealError(run.keys)).toBeNull();
    expect(payload.events[0]!.source.version).toMatch(/\d/);

    // Edited to pass the rule under another key and re-injected on the raw topic: its seal binds the whole clear event.
    const edited = Buffer.from(Buffer.from(broken.payload, 'base64').toString().replace('"note":"Bad Note 1"', '"note":"fine"').replace('"id":20', '"id":22'));
    expect(edited.toString()).toContain('"id":22');
    const producer = adminKafka('test-forger').producer();
    await producer.connect();
    await producer.send({ topic: broken.topic, messages: [{ key: '{"id":22}', value: edited }] });
    await producer.disconnect();
    const refused = await eventually(async () => {
      const letters = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.dlq\\.transformer$`))).map((m) => JSON.parse(m.value!.toString()));
      const found = letters.find((d) => Buffer.from(d.payload, 'base64').equals(edited));
      expect(found).toBeDefined();
      return found;
    }, 30_000);
    expect(refused).toMatchObject({ code: 'DECRYPT_FAILED', index: null });
    expect((await rows(run.pgSchema, 'lab_results')).map((r) => r.id)).not.toContain(22);
  });

  it('sends a raw record that cannot be read to the dead-letter topic and goes on', async () => {
    const producer = adminKafka('test-forger').producer();
    await producer.connect();
    await producer.send({ topic: `${run.prefix}.raw.cityhub.${run.civilDb}.citizens`, messages: [{ value: '{"op": "c", "source": ' }] });
    await producer.disconnect();
    await insertCitizen(600);
    await eventually(async () => expect((await rows(run.pgSchema, 'citizens')).map((r) => r.id)).toContain('600'));
    const dead = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.dlq\\.transformer$`))).map((m) => JSON.parse(m.value!.toString()));
    expect(dead).toContainEqual(expect.objectContaining({ code: 'unparseable', topic: `${run.prefix}.raw.cityhub.${run.civilDb}.citizens` }));
  });

  it('dead-letters a raw frame whose seal does not open once, whole, and goes on', async () => {
    const topic = `${run.prefix}.raw.cityhub.${run.civilDb}.citizens`;
    const frames = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${topic.replaceAll('.', '\\.')}$`))).filter((m) => m.value?.toString().includes('"sealed":"enc:v1:'));
    const original = frames.at(-1)!;
    // Events the reader wrote, under a seal bound to other events: a frame tampered with.
    const events = frames.flatMap((m) => decodeRawMessage(m.value!).events);
    expect(events.length).toBeGreaterThan(1);
    const nulls = Buffer.from(JSON.stringify(events.map(() => null)));
    const forged = Buffer.from(`{"events":${JSON.stringify(events)},"sealed":"${sealJson(run.keys.activeKey(keyNames.pipeline), nulls, Buffer.from('[]'))}"}`);
    const producer = adminKafka('test-forger').producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ partition: original.partition, value: forged }] });
    await producer.disconnect();
    await insertCitizen(700);
    await eventually(async () => expect((await rows(run.pgSchema, 'citizens')).map((r) => r.id)).toContain('700'));
    const broken = await eventually(async () => {
      const dead = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.dlq\\.transformer$`))).map((m) => JSON.parse(m.value!.toString()));
      const found = dead.filter((d) => d.code === 'DECRYPT_FAILED' && d.topic === topic);
      expect(found.length).toBeGreaterThanOrEqual(1);
      return found;
    });
    // One per department granted the table (not one per event), each holding the whole frame as it came.
    expect(new Set(broken.map((d) => d.department)).size).toBe(broken.length);
    for (const d of broken) {
      expect(d).toMatchObject({ topic, partition: original.partition, index: null });
      expect(Buffer.from(d.payload, 'base64').equals(forged)).toBe(true);
    }
  });

  it('still reads raw topics written by earlier readers (events in an array, each sealing its own columns) while the migration window is open', async () => {
    const topic = `${run.prefix}.raw.cityhub.${run.civilDb}.citizens`;
    // An operator draining raw data of readers before frame sealing restarts the transformer with the window open.
    await transformer.stop();
    transformer = await run.start('transformer', { CITYSHARE_PIPELINE: pipelineFile, TRANSFORMER_ACCEPT_LEGACY_SEALS: 'true' });
    const frames = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${topic.replaceAll('.', '\\.')}$`))).filter((m) => m.value?.toString().includes('"sealed":"enc:v1:'));
    // A frame the reader wrote (not the forged one above) and an insert in it.
    const frame = frames.map((m) => decodeRawMessage(m.value!)).filter((f) => f.framed && !f.sealError(run.keys) && f.events.some((e) => e.op === 'c')).at(-1)!;
    const last = frame.events.findLastIndex((e) => e.op === 'c');
    const event = frame.events[last]!;
    // The same change as a new row, written as readers before frame sealing wrote it (an edit of its
    // clear part that nothing authenticates: why the window is closed by default).
    const { db, table, version } = event.source;
    const sealed = sealValue(run.keys.activeKey(keyNames.pipeline), frame.secretsOf(last, run.keys), sealedEventAad(db, table, version));
    const earlier = JSON.stringify([{ ...event, after: { ...event.after, id: '800' }, sealed }]);
    const producer = adminKafka('test-forger').producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: '{"id":"800"}', value: earlier }] });
    await producer.disconnect();
    const row = await eventually(async () => (await rows(run.pgSchema, 'citizens')).find((r) => r.id === '800') ?? expect.fail('not delivered yet'));
    // Its sealed columns opened: the name arrives masked, the phone masked as the grant says.
    expect(row).toMatchObject({ name: '王**', phone: '135****5678' });
  });

  it('leaves no personal value of this run in plaintext in any Kafka topic', async () => {
    const personal = ['王小明', '110108199205170018', '13512345678', '北京市海淀区学院路1号', '1992-05-17'];
    const messages = await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.`));
    expect(messages.length).toBeGreaterThan(100);
    for (const m of messages) {
      const text = Buffer.concat([m.key ?? Buffer.alloc(0), m.value ?? Buffer.alloc(0)]).toString('utf8');
      for (const value of personal) expect(text.includes(value), `${value} in ${m.topic}`).toBe(false);
    }
  });
});
