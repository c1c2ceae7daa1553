import { randomUUID } from 'node:crypto';
import type { Kafka, Producer } from 'kafkajs';
import { topics, type BinlogPosition, type Logger } from '@cityshare/shared';
import type { SnapshotState } from './snapshot/snapshotter.js';

export interface Checkpoint extends BinlogPosition {
  /** Snapshot progress as of this position; absent before the first snapshot started. */
  snapshot?: SnapshotState;
  /** When the checkpoint was written. */
  savedAt: string;
}

/**
 * Reader checkpoints in a compacted Kafka topic keyed by source name, next to the data
 * they describe (as Kafka Connect stores source offsets). Written only after the
 * events before the position were acknowledged.
 */
export class CheckpointStore {
  private readonly topic: string;

  constructor(
    private readonly kafka: Kafka,
    private readonly producer: Producer,
    prefix: string,
    private readonly source: string,
    private readonly logger: Logger,
  ) {
    this.topic = topics.checkpoints(prefix);
  }

  async save(position: BinlogPosition, snapshot?: SnapshotState): Promise<void> {
    const value: Checkpoint = { file: position.file, pos: position.pos, gtid: position.gtid, snapshot, savedAt: new Date().toISOString() };
    await this.producer.send({ topic: this.topic, acks: -1, messages: [{ key: this.source, value: JSON.stringify(value) }] });
  }

  /** The newest checkpoint of this source, or null when it never wrote one. */
  async load(): Promise<Checkpoint | null> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const [offsets] = await withLeaderRetry(() => admin.fetchTopicOffsets(this.topic));
      if (!offsets || offsets.high === offsets.low) return null;
      const end = BigInt(offsets.high);
      const groupId = `${this.topic}.loader.${randomUUID()}`;
      const consumer = this.kafka.consumer({ groupId, sessionTimeout: 10_000 });
      let latest: Checkpoint | null = null;
      await consumer.connect();
      try {
        await consumer.subscribe({ topic: this.topic, fromBeginning: true });
        await new Promise<void>((resolve, reject) => {
          consumer
            .run({
              autoCommit: false,
              eachMessage: async ({ message }) => {
                if (message.key?.toString() === this.source && message.value) latest = JSON.parse(message.value.toString()) as Checkpoint;
                if (BigInt(message.offset) + 1n >= end) resolve();
              },
            })
            .catch(reject);
        });
      } finally {
        await consumer.disconnect();
        await admin.deleteGroups([groupId]).catch(() => undefined);
      }
      this.logger.info({ checkpoint: latest }, 'checkpoint loaded');
      return latest;
    } finally {
      await admin.disconnect();
    }
  }
}

/**
 * Retries a call that may meet a partition whose leader is still being elected (a topic
 * just created, here or by another service at the same moment): kafkajs reports that as a
 * retriable protocol error and does not retry admin offset requests itself.
 */
async function withLeaderRetry<T>(call: () => Promise<T>, attempts = 30): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await call();
    } catch (err) {
      if (i >= attempts || (err as { retriable?: boolean }).retriable !== true) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
