import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { readAllMessages, readRawEvents } from './support/kafka-peek.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';
import { openDeadLetterKey, type ReaderDeadLetter } from '../services/cdc-reader/src/dead-letter.js';

/** Over the stack broker's message.max.bytes (8 MiB, deploy/local/kafka/server.properties). */
const BIG = 9_000_000;

/**
 * A row whose change event is larger than a Kafka message may be: it goes to the reader's
 * dead-letter topic as a small coded record (position, size, sealed key; no values), and
 * the rows around it, the reader and its checkpoint go on — from the snapshot and the stream.
 */
describe('oversize change events', () => {
  const run = new PipelineRun();
  const table = `\`${run.civilDb}\`.documents`;
  const pipelineFile = join(dirname(run.keyringFile), 'oversize-pipeline.yaml');
  const fill = (c: string) => c.repeat(BIG);
  let reader: ServiceProcess;

  beforeAll(async () => {
    await run.setUp();
    await run.source.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, title VARCHAR(64) NOT NULL, body LONGTEXT) DEFAULT CHARSET = utf8mb4`);
    // Rows from before the reader: the snapshot reads them, the second one oversize.
    await run.source.query(`INSERT INTO ${table} VALUES (1, 'small 1', 'a'), (2, 'big 2', ?), (3, 'small 3', 'c')`, [fill('b')]);
    run.writePipelineFile('oversize-pipeline.yaml', {
      serverId: 5401,
      tables: [{ name: `${run.civilDb}.documents`, columns: { id: 'public', title: 'public', body: 'personal' } }],
    });
    reader = await run.start('cdc-reader', { CITYSHARE_PIPELINE: pipelineFile, READER_HEARTBEAT_SECONDS: '1' });
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('dead-letters an oversize row from the snapshot and the stream, and keeps streaming past it', async () => {
    const rawTopic = new RegExp(`^${run.prefix}\\.raw\\.cityhub\\.${run.civilDb}\\.documents$`);
    const dlqTopic = new RegExp(`^${run.prefix}\\.dlq\\.reader\\.cityhub$`);
    const ids = async () => (await readRawEvents(stack.kafkaBrokers, rawTopic)).map((e) => `${e.op}${e.after?.id ?? e.before?.id}`).sort();
    // The snapshot first, so the rows below are streamed, not read by it.
    await eventually(async () => {
      expect(await ids()).toEqual(['r1', 'r3']);
      expect(await reader.metrics()).toMatch(/^cityshare_reader_snapshot_running\{[^}]*documents[^}]*\} 0$/m);
    }, 60_000, 500);

    // Streamed: an oversize insert and an update that makes a row oversize, between small rows.
    await run.source.query(`INSERT INTO ${table} VALUES (4, 'small 4', 'd')`);
    await run.source.query(`INSERT INTO ${table} VALUES (5, 'big 5', ?)`, [fill('e')]);
    await run.source.query(`INSERT INTO ${table} VALUES (6, 'small 6', 'f')`);
    await run.source.query(`UPDATE ${table} SET body = ? WHERE id = 4`, [fill('g')]);
    await run.source.query(`INSERT INTO ${table} VALUES (7, 'small 7', 'h')`);
    const [status] = await run.source.query('SHOW MASTER STATUS');
    const end = (status as Array<{ File: string; Position: number }>)[0]!;

    await eventually(async () => expect(await ids()).toEqual(['c4', 'c6', 'c7', 'r1', 'r3']), 60_000, 500);
    expect(reader.running).toBe(true);

    const dlq = await readAllMessages(stack.kafkaBrokers, dlqTopic);
    const letters = dlq.map((m) => JSON.parse(m.value!.toString()) as Record<string, unknown>);
    expect(letters.map((l) => l.op)).toEqual(['r', 'c', 'u']);
    for (const letter of letters) {
      expect(letter).toMatchObject({ code: 'EVENT_TOO_LARGE', source: 'cityhub', db: run.civilDb, table: 'documents', limit: 1_000_000 });
      expect(letter.bytes as number).toBeGreaterThan(BIG);
      expect(letter.version).toMatch(/^\d{10}\.\d{12}\.\d{6}$/);
      expect(letter.key).toMatch(/^enc:v1:/);
    }
    expect(letters.map((l) => l.snapshot)).toEqual([true, false, false]);
    expect(letters[1]).toMatchObject({ file: end.File });
    // The key opens under the pipeline key: an operator can find the row.
    expect(letters.map((l) => openDeadLetterKey(run.keys, l as unknown as ReaderDeadLetter))).toEqual([{ id: 2 }, { id: 5 }, { id: 4 }]);
    // Small records: a position, a size and a sealed key, never the row's values.
    for (const m of dlq) {
      expect(m.value!.length).toBeLessThan(2000);
      expect(m.value!.toString()).not.toMatch(/big \d|bbbb|eeee|gggg/);
      expect(m.key!.toString()).not.toMatch(/"id"/);
    }
    const metrics = await reader.metrics();
    expect(metrics).toMatch(new RegExp(`^cityshare_reader_dlq_total\\{[^}]*reason="EVENT_TOO_LARGE"[^}]*\\} 3$`, 'm'));

    // The checkpoint moves past the oversize rows: a restarted reader does not meet them again.
    await eventually(async () => {
      const checkpoints = (await readAllMessages(stack.kafkaBrokers, new RegExp(`^${run.prefix}\\.checkpoints$`))).map((m) => JSON.parse(m.value!.toString()));
      const last = checkpoints.at(-1);
      expect(last.file > end.File || (last.file === end.File && last.pos >= end.Position)).toBe(true);
      expect(last.snapshot[`${run.civilDb}.documents`]).toMatchObject({ done: true });
    }, 30_000, 500);
    await reader.stop();
    reader = await run.start('cdc-reader', { CITYSHARE_PIPELINE: pipelineFile, READER_HEARTBEAT_SECONDS: '1' });
    await run.source.query(`INSERT INTO ${table} VALUES (8, 'small 8', 'i')`);
    await eventually(async () => expect(await ids()).toEqual(['c4', 'c6', 'c7', 'c8', 'r1', 'r3']), 60_000, 500);
    expect(reader.running).toBe(true);
    expect(await readAllMessages(stack.kafkaBrokers, dlqTopic)).toHaveLength(3);
  });
});
