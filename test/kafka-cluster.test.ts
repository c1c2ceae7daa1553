import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring, consumeShareTopics, departmentGroupPrefix, topics, type ShareChange } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { adminKafka, kafkaSettingsOf } from '../scripts/support/kafka-security.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';

const run$ = promisify(execFile);

/**
 * A three-broker Kafka 4 cluster of its own (SASL_SSL, replication factor 3, min ISR 2),
 * beside the stack's single broker, started and stopped by this file. One broker is killed
 * with -9 while changes flow and restarted later: the department ends with exactly
 * policy(source), and its own consumer reads every change.
 */
describe('three-broker cluster, one broker killed mid-stream', () => {
  const clusterEnv = {
    ...process.env,
    STACK_DIR: join(stack.stackDir, 'test', 'kafka-cluster'),
    TLS_DIR: join(stack.stackDir, 'tls'),
    // The same SCRAM passwords as the stack's own broker, so every principal logs in on both.
    KAFKA_USERS_DIR: join(stack.stackDir, 'kafka', 'users'),
    KAFKA_PORT: '19092',
    KAFKA_CONTROLLER_PORT: '19093',
    KAFKA_NODES: '3',
    KAFKA_HEAP: '384m',
  };
  const brokers = ['127.0.0.1:19092', '127.0.0.1:19094', '127.0.0.1:19096'];
  const cluster = (...args: string[]) => run$('bash', ['deploy/local/stack.sh', ...args], { cwd: stack.root, env: clusterEnv, timeout: 180_000 });
  const run = new PipelineRun({}, { brokers, replicationFactor: 3 });
  const citizens = `\`${run.civilDb}\`.citizens`;

  beforeAll(async () => {
    await cluster('kafka-up');
    await cluster('kafka-users', 'reader-cityhub', 'transformer', 'sink-health', 'department-health');
    await run.setUp();
    await run.start('cdc-reader');
    await run.startDelivery();
  }, 300_000);

  afterAll(async () => {
    await run.tearDown().catch(() => undefined);
    await cluster('kafka-down');
  }, 120_000);

  it('loses no change; the department table equals the source', async () => {
    const admin = adminKafka('test-cluster', brokers).admin();
    await admin.connect();
    // The broker leading the first citizens partition: the one whose loss the pipeline must ride out.
    const rawTopic = topics.raw(run.prefix, 'cityhub', run.civilDb, 'citizens');
    const [meta] = (await admin.fetchTopicMetadata({ topics: [rawTopic] })).topics;
    expect(meta!.partitions.every((p) => p.replicas.length === 3)).toBe(true);
    const victim = meta!.partitions.find((p) => p.partitionId === 0)!.leader;
    await admin.disconnect();

    const batches = 40;
    const perBatch = 50;
    let changes = 0;
    let restarted: Promise<unknown> | undefined;
    for (let b = 0; b < batches; b++) {
      const values = Array.from({ length: perBatch }, (_, i) => {
        const id = b * perBatch + i + 1;
        return `(${id}, '市民${id}', '1101011990${String(id).padStart(8, '0')}', '138${String(id).padStart(8, '0')}', '东城', NOW())`;
      });
      await run.source.query(`INSERT INTO ${citizens} (id, name, id_card, phone, district, registered_at) VALUES ${values.join(', ')}`);
      changes += perBatch;
      if (b > 0) {
        // Rows of the previous batch move district: updates whose order per key matters.
        const [result] = await run.source.query(`UPDATE ${citizens} SET district = ? WHERE id > ? AND id <= ?`, [`区${b}`, (b - 1) * perBatch, b * perBatch]);
        changes += (result as { affectedRows: number }).affectedRows;
      }
      if (b === 10) await cluster('kafka-node', 'kill', String(victim));
      if (b === 25) restarted = cluster('kafka-node', 'start', String(victim));
      await new Promise((r) => setTimeout(r, 150));
    }
    await restarted;

    const expected = (await run.source.query(`SELECT id, district FROM ${citizens} ORDER BY id`))[0] as Array<{ id: number; district: string }>;
    expect(expected).toHaveLength(batches * perBatch);
    await eventually(async () => {
      const held = (await run.pg.query(`SELECT id, district FROM "${run.pgSchema}".citizens ORDER BY id`)).rows.map((r) => ({ id: Number(r.id), district: r.district }));
      expect(held).toEqual(expected);
    }, 120_000, 1_000);
    for (const svc of run.services) expect(svc.running).toBe(true);

    // What the department reads itself (committed transactions only): every change. Not
    // asserted: exactly once. In one run of four the broker killed was the coordinator of the
    // transformer's consumer group, the transformer read its raw partitions again from the
    // start and committed their records again (README, "Status and limits"); the department's
    // table is right all the same (version guard).
    const seen: ShareChange[] = [];
    const consumer = await consumeShareTopics({
      kafka: kafkaSettingsOf('department-health', brokers),
      registryUrl: stack.registryUrl,
      topics: [topics.share(run.prefix, 'health', 'cityhub', run.civilDb, 'citizens')],
      groupId: `${departmentGroupPrefix(run.prefix, 'health')}cluster-check`,
      keys: FileKeyring.load(run.keyringFile),
      source: 'cityhub',
      onChange: async (c) => {
        seen.push(c);
      },
    });
    try {
      await eventually(() => expect(new Set(seen.map((c) => `${String(c.key.id)}@${c.version}`)).size).toBe(changes), 60_000, 500);
    } finally {
      await consumer.stop();
    }
  }, 300_000);

  it('the whole cluster down for 25 s while rows are written: every service stays up, says KAFKA_UNREACHABLE, and resumes by itself', async () => {
    const readyz = async (svc: ServiceProcess) => {
      const res = await fetch(`http://127.0.0.1:${svc.port}/readyz`);
      return { status: res.status, body: await res.text() };
    };
    const kafkaUp = async (svc: ServiceProcess) => /^cityshare_dependency_up\{[^}]*dependency="kafka"[^}]*\} (\d)/m.exec(await svc.metrics())?.[1];
    const codedLines = (svc: ServiceProcess) => readFileSync(svc.logFile, 'utf8').split('\n').filter((l) => l.includes('"code":"KAFKA_UNREACHABLE"') && l.includes(`"pid":${svc.pid}`)).length;
    const before = new Map(run.services.map((svc) => [svc, codedLines(svc)]));
    const downAt = Date.now();
    await Promise.all([1, 2, 3].map((n) => cluster('kafka-node', 'kill', String(n))));
    const values = Array.from({ length: 200 }, (_, i) => `(${5001 + i}, '市民', '110101199000000000', '13800000000', '西城', NOW())`);
    await run.source.query(`INSERT INTO ${citizens} (id, name, id_card, phone, district, registered_at) VALUES ${values.join(', ')}`);
    await run.source.query(`UPDATE ${citizens} SET district = '朝阳' WHERE id <= 100`);
    // Each service notices within its 15 s silence limit, and says why.
    for (const svc of run.services) {
      await eventually(async () => expect(await readyz(svc)).toMatchObject({ status: 503, body: expect.stringContaining('KAFKA_UNREACHABLE') }), 60_000, 500);
      await eventually(async () => expect(`${svc.name} ${await kafkaUp(svc)}`).toBe(`${svc.name} 0`), 5_000, 250);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 25_000 - (Date.now() - downAt))));
    for (const svc of run.services) expect(svc.running).toBe(true);
    await Promise.all([1, 2, 3].map((n) => cluster('kafka-node', 'start', String(n))));
    const expected = (await run.source.query(`SELECT id, district FROM ${citizens} ORDER BY id`))[0] as Array<{ id: number; district: string }>;
    await eventually(async () => {
      const held = (await run.pg.query(`SELECT id, district FROM "${run.pgSchema}".citizens ORDER BY id`)).rows.map((r) => ({ id: Number(r.id), district: r.district }));
      expect(held).toEqual(expected);
    }, 180_000, 1_000);
    for (const svc of run.services) {
      await eventually(async () => expect(await readyz(svc)).toEqual({ status: 200, body: 'ready\n' }), 60_000, 500);
      await eventually(async () => expect(`${svc.name} ${await kafkaUp(svc)}`).toBe(`${svc.name} 1`), 5_000, 250);
      expect(svc.running).toBe(true);
      // Said once per change of state, not once per retry.
      const said = codedLines(svc) - before.get(svc)!;
      process.stdout.write(`broker outage: ${svc.name} logged KAFKA_UNREACHABLE ${said} time(s)\n`);
      expect(said).toBeGreaterThan(0);
      expect(said).toBeLessThanOrEqual(3);
    }
  }, 420_000);
});
