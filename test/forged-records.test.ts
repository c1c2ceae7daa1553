import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRawMessage, type TableSchema } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { readAllMessages } from './support/kafka-peek.js';
import { adminKafka } from '../scripts/support/kafka-security.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';

/**
 * Integrity of the internal topics without Kafka ACLs: whoever can write to the broker
 * produces a raw frame without a seal, a checkpoint ahead of the reader's position and a
 * table schema under a real reference. The pipeline acts on none of them: the frame goes
 * to the dead-letter topic as RECORD_FORGED, the schema and the checkpoint are ignored and
 * counted, and real changes (also those made while the reader was down) all arrive.
 */
describe('forged records on internal topics', () => {
  const run = new PipelineRun();
  const rawTopic = `${run.prefix}.raw.cityhub.${run.civilDb}.citizens`;
  const exactly = (topic: string) => new RegExp(`^${topic.replaceAll('.', '\\.')}$`);
  let reader: ServiceProcess;
  let transformer: ServiceProcess;

  const rows = async () => (await run.pg.query(`SELECT * FROM "${run.pgSchema}".citizens ORDER BY id`)).rows as Array<Record<string, unknown>>;
  const ids = async () => (await rows()).map((r) => Number(r.id));
  const insert = (id: number) =>
    run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES (?, '市民', '110101199001010000', '13800000000', '东城', NOW(6))`, [id]);
  const forgedCount = async (svc: ServiceProcess, kind: string) =>
    Number(new RegExp(`^cityshare_forged_records_total\\{[^}]*topic_kind="${kind}"[^}]*\\} (\\d+)`, 'm').exec(await svc.metrics())?.[1] ?? 0);
  const produce = async (topic: string, messages: Array<{ key?: string; value: string | Buffer; partition?: number }>) => {
    // As the stack's administrator: even a principal allowed to write these topics cannot make the pipeline act on its records.
    const producer = adminKafka('test-forger').producer();
    await producer.connect();
    await producer.send({ topic, messages });
    await producer.disconnect();
  };

  beforeAll(async () => {
    await run.setUp();
    transformer = await run.start('transformer');
    await run.start('sink');
    reader = await run.start('cdc-reader');
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('delivers no forged row, uses no forged schema or checkpoint, and skips no real change', async () => {
    await insert(1);
    await eventually(async () => expect(await ids()).toContain(1));

    // What the reader wrote for that row: its frame (opened with the test's keyring) and its table schema.
    const frames = (await readAllMessages(stack.kafkaBrokers, exactly(rawTopic))).map((m) => ({ m, frame: decodeRawMessage(m.value!) }));
    const { m: original, frame } = frames.find(({ frame: f }) => f.events.some((e) => Number(e.after?.id) === 1))!;
    const index = frame.events.findIndex((e) => Number(e.after?.id) === 1);
    const event = frame.events[index]!;
    const secrets = frame.secretsOf(index, run.keys);
    const schemaTopic = `${run.prefix}.table-schemas`;
    const realSchema = (await readAllMessages(stack.kafkaBrokers, exactly(schemaTopic))).find((m) => m.key?.toString() === event.schemaRef)!;

    // (a) A plausible row, every column in clear, in a frame without a seal.
    const forgedEvent = { ...event, after: { ...event.after, ...secrets?.after, id: '9001', name: '伪造', district: '东城' }, protected: [] };
    const forgedFrame = Buffer.from(`{"events":[${JSON.stringify(forgedEvent)}],"sealed":null}`);
    await produce(rawTopic, [{ key: '{"id":"9001"}', partition: original.partition, value: forgedFrame }]);

    // (c) The real schema reference, its district column dropped (the department would lose it).
    const schema = JSON.parse(realSchema.value!.toString()) as TableSchema;
    await produce(schemaTopic, [{ key: event.schemaRef, value: JSON.stringify({ ...schema, columns: schema.columns.filter((c) => c.name !== 'district') }) }]);
    await eventually(async () => expect(await forgedCount(transformer, 'table-schemas')).toBeGreaterThanOrEqual(1), 30_000);

    // A real change goes through, with the real schema (district still delivered).
    await insert(2);
    await eventually(async () => expect((await rows()).find((r) => Number(r.id) === 2)).toMatchObject({ district: '东城' }));

    // The forged frame is on the dead-letter topic, whole, as RECORD_FORGED, and nowhere else.
    const dead = await eventually(async () => {
      const letters = (await readAllMessages(stack.kafkaBrokers, exactly(`${run.prefix}.dlq.transformer`))).map((m) => JSON.parse(m.value!.toString()));
      const found = letters.filter((d) => d.code === 'RECORD_FORGED');
      expect(found.length).toBeGreaterThanOrEqual(1);
      return found;
    });
    for (const d of dead) {
      expect(d).toMatchObject({ topic: rawTopic, partition: original.partition, index: null });
      expect(Buffer.from(d.payload, 'base64').equals(forgedFrame)).toBe(true);
    }
    expect(await forgedCount(transformer, 'raw')).toBeGreaterThanOrEqual(1);
    expect(await ids()).not.toContain(9001);

    // (b) The reader dies without a last checkpoint; changes are made while it is down, and a
    // checkpoint past them is forged: used, it would skip them.
    await reader.kill();
    for (const id of [3, 4, 5]) await insert(id);
    const [statusRows] = await run.source.query('SHOW MASTER STATUS');
    const status = (statusRows as Array<{ File: string; Position: number }>)[0]!;
    const [gtidRows] = await run.source.query('SELECT @@gtid_binlog_pos AS gtid');
    const { gtid } = (gtidRows as Array<{ gtid: string }>)[0]!;
    const checkpointTopic = `${run.prefix}.checkpoints`;
    const real = (await readAllMessages(stack.kafkaBrokers, exactly(checkpointTopic))).filter((m) => m.key?.toString() === 'cityhub').at(-1)!;
    const forgedCheckpoint = { ...JSON.parse(real.value!.toString()), file: status.File, pos: status.Position, gtid, savedAt: new Date().toISOString() };
    await produce(checkpointTopic, [{ key: 'cityhub', value: JSON.stringify(forgedCheckpoint) }]);

    reader = await run.start('cdc-reader');
    await eventually(async () => expect(await ids()).toEqual(expect.arrayContaining([1, 2, 3, 4, 5])));
    expect(await ids()).not.toContain(9001);
    expect(await forgedCount(reader, 'checkpoints')).toBeGreaterThanOrEqual(1);
    const log = readFileSync(reader.logFile, 'utf8');
    expect(log).toContain('RECORD_FORGED');
    // Logged with where it is, never its value.
    expect(log).not.toContain(forgedCheckpoint.savedAt);
  });
});
