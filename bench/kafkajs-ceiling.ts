/**
 * The producer ceiling the reader works under: kafkajs alone, idempotent, acks=all,
 * batches of 5,000, three message sizes, against the local broker.
 *   npm run bench:kafkajs
 */
import { Partitioners } from 'kafkajs';
import { adminKafka } from '../scripts/support/kafka-security.js';
import { isMain } from './support.js';

/** Messages/s by message size in bytes. */
export async function measureKafkajsCeiling(o: { messages?: number; sizes?: number[] } = {}, log: (line: string) => void = console.log): Promise<Record<number, number>> {
  const kafka = adminKafka('bench-kafkajs');
  const admin = kafka.admin();
  await admin.connect();
  const topic = `bench-kafkajs-${Date.now()}`;
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const out: Record<number, number> = {};
  try {
    for (const size of o.sizes ?? [1200, 600, 300]) {
      const value = Buffer.alloc(size, 120);
      const total = o.messages ?? 100_000;
      const started = Date.now();
      for (let i = 0; i < total; i += 5000) {
        await producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages: Array.from({ length: 5000 }, (_, j) => ({ key: `{"id":"${i + j}"}`, value })) }] });
      }
      out[size] = Math.round(total / ((Date.now() - started) / 1000));
      log(`${size}-byte messages: ${out[size]} messages/s`);
    }
  } finally {
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  }
  return out;
}

if (isMain(import.meta.url)) await measureKafkajsCeiling();
