import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { kafkaConnection, producerConfig } from '@cityshare/shared';
import { adminKafkaSettings } from '../scripts/support/kafka-security.js';

/**
 * kafkajs's transactions as patched (patches/kafkajs+2.2.4.patch), against the real broker:
 * the transaction and group coordinators are found once, not before every request of every
 * transaction (four FindCoordinator round trips per transaction before); a transaction begun
 * while the coordinator still completes the previous one (CONCURRENT_TRANSACTIONS) is asked
 * again within milliseconds, not after the producer's retry time (200 ms and more); and the
 * transactions still commit their records and offsets, or abort both.
 */
describe('kafkajs transactions: coordinators found once', () => {
  const id = randomBytes(4).toString('hex');
  const topic = `tx${id}.records`;
  const group = `tx${id}.group`;
  /** What kafkajs's producer logged as retried with its own backoff (the 200 ms and more). */
  const retried: string[] = [];
  const kafka = new Kafka({
    clientId: `tx-${id}`,
    ...kafkaConnection(adminKafkaSettings()),
    logLevel: logLevel.ERROR,
    logCreator: () => ({ log }) => {
      if (/Failed to send messages/.test(log.message)) retried.push(`${log.message} (retry in ${String(log.retryTime)} ms)`);
    },
  });
  let admin: Admin;
  let producer: Producer;
  const requests: string[] = [];

  beforeAll(async () => {
    admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    producer = kafka.producer(producerConfig({ transactionalId: `tx${id}.producer` }));
    producer.on(producer.events.REQUEST, (e) => requests.push(e.payload.apiName));
    await producer.connect();
  });

  afterAll(async () => {
    await producer?.disconnect();
    await admin?.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin?.disconnect();
  });

  const transaction = async (n: number, outcome: 'commit' | 'abort') => {
    const tx = await producer.transaction();
    await tx.send({ topic, messages: [{ key: String(n), value: `record ${n}` }] });
    await tx.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: 0, offset: String(n + 1) }] }] });
    await (outcome === 'commit' ? tx.commit() : tx.abort());
  };

  it('asks for the coordinators (FindCoordinator, "GroupCoordinator" to kafkajs) only in its first transaction, waits no retry time between back-to-back transactions, and each commits or aborts its records and offsets', async () => {
    await transaction(0, 'commit');
    const first = requests.filter((r) => r === 'GroupCoordinator').length;
    requests.length = 0;
    // Back to back, as a department stream with a full fetch does: each begins right after the previous EndTxn.
    for (let n = 1; n <= 20; n++) await transaction(n, 'commit');
    await transaction(21, 'abort');
    // Per transaction: AddPartitionsToTxn, Produce, AddOffsetsToTxn, TxnOffsetCommit, EndTxn; nothing else.
    // The first transaction found both (connecting found the transaction coordinator for InitProducerId, once or more).
    expect(first).toBeGreaterThan(0);
    expect(requests.filter((r) => r === 'GroupCoordinator')).toEqual([]);
    expect(requests.filter((r) => r === 'EndTxn')).toHaveLength(21);
    expect(retried).toEqual([]);

    const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    expect(offsets!.partitions).toEqual([expect.objectContaining({ partition: 0, offset: '21' })]);
    const consumer = kafka.consumer({ groupId: `${group}.reader`, readUncommitted: false });
    const seen: string[] = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({ eachMessage: async ({ message }) => void seen.push(String(message.value)) });
      await expect.poll(() => seen.length, { timeout: 30_000 }).toBe(21);
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      await consumer.disconnect();
    }
    expect(seen).toEqual(Array.from({ length: 21 }, (_, n) => `record ${n}`));
  });
});
