import { randomUUID } from 'node:crypto';
import type { IHeaders } from 'kafkajs';
import { decodeRawMessage, type RawChangeEvent } from '@cityshare/shared';
import { adminKafka } from '../../scripts/support/kafka-security.js';

export interface PeekedMessage {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: IHeaders;
}

/**
 * Reads every message currently in the topics matching `pattern`, from the beginning
 * up to each partition's high watermark, with a throwaway consumer group.
 */
export async function readAllMessages(brokers: string[], pattern: RegExp): Promise<PeekedMessage[]> {
  // As the stack's administrator: tests look at every topic, services see only their own.
  const kafka = adminKafka('test-peek', brokers);
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `test-peek-${randomUUID()}`;
  try {
    const names = (await admin.listTopics()).filter((t) => pattern.test(t));
    const remaining = new Map<string, bigint>();
    for (const topic of names) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (BigInt(p.high) > BigInt(p.low)) remaining.set(`${topic}/${p.partition}`, BigInt(p.high));
      }
    }
    const out: PeekedMessage[] = [];
    if (remaining.size === 0) return out;
    const consumer = kafka.consumer({ groupId, readUncommitted: false });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: names, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        // A partition is read once the next offset reaches its high watermark. In a
        // partition written with Kafka transactions the last offset is a commit marker that
        // is never delivered, so one short of the mark counts once nothing has come for 1 s.
        const next = new Map<string, bigint>();
        const lastBatchAt = new Map<string, number>();
        const finish = (err?: Error) => {
          clearInterval(settle);
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        };
        const settle = setInterval(() => {
          for (const [id, high] of remaining) {
            const n = next.get(id);
            if (n !== undefined && (n >= high || (n + 1n >= high && Date.now() - lastBatchAt.get(id)! > 1000))) remaining.delete(id);
          }
          if (remaining.size === 0) finish();
        }, 100);
        const timer = setTimeout(() => finish(new Error(`timed out reading ${pattern}; ${remaining.size} partitions left`)), 30_000);
        consumer
          .run({
            autoCommit: false,
            eachBatch: async ({ batch }) => {
              for (const m of batch.messages) {
                out.push({ topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key, value: m.value, headers: m.headers });
              }
              const id = `${batch.topic}/${batch.partition}`;
              next.set(id, BigInt(batch.lastOffset()) + 1n);
              lastBatchAt.set(id, Date.now());
            },
          })
          .catch((err: Error) => finish(err));
      });
    } finally {
      await consumer.disconnect();
    }
    return out;
  } finally {
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
  }
}

/** Every change event currently in the raw topics matching `pattern`, frames unpacked, in partition order. */
export async function readRawEvents(brokers: string[], pattern: RegExp): Promise<RawChangeEvent[]> {
  return (await readAllMessages(brokers, pattern)).flatMap((m) => (m.value ? decodeRawMessage(m.value).events : []));
}
