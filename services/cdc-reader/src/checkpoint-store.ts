import { randomUUID } from 'node:crypto';
import type { Kafka, Producer } from 'kafkajs';
import { CdcError, RECORD_MAC_HEADER, recordForgery, recordMacHeaders, topics, type BinlogPosition, type KeyProvider, type Logger } from '@cityshare/shared';
import type { SnapshotState } from './snapshot/snapshotter.js';

export interface Checkpoint extends BinlogPosition {
  /** Snapshot progress as of this position; absent before the first snapshot started. */
  snapshot?: SnapshotState;
  /** When the checkpoint was written. */
  savedAt: string;
}

export interface CheckpointStoreOptions {
  /** The keyring in force: checkpoints are signed with the active pipeline key and verified with any (record-mac.ts). */
  keys: () => KeyProvider;
  /** A checkpoint that is not authenticated was skipped (cityshare_forged_records_total). */
  onForged?: () => void;
  /**
   * Upgrade from a reader that wrote unsigned checkpoints: when no signed checkpoint of the
   * source exists, use the newest one without a MAC header (never one with a wrong MAC); the
   * reader writes it back signed at start, so this is needed once.
   */
  adoptUnsigned?: boolean;
}

/**
 * Reader checkpoints in a compacted Kafka topic keyed by source name, next to the data
 * they describe (as Kafka Connect stores source offsets). Written only after the
 * events before the position were acknowledged, each with a MAC under the pipeline key:
 * a checkpoint anyone else wrote (to skip changes, or to replay them) is never used.
 */
export class CheckpointStore {
  private readonly topic: string;

  constructor(
    private readonly kafka: Kafka,
    private readonly producer: Producer,
    prefix: string,
    private readonly source: string,
    private readonly logger: Logger,
    private readonly options: CheckpointStoreOptions,
  ) {
    this.topic = topics.checkpoints(prefix);
  }

  async save(position: BinlogPosition, snapshot?: SnapshotState): Promise<void> {
    const value = JSON.stringify({ file: position.file, pos: position.pos, gtid: position.gtid, snapshot, savedAt: new Date().toISOString() } satisfies Checkpoint);
    const headers = recordMacHeaders(this.options.keys(), this.topic, this.source, value);
    await this.producer.send({ topic: this.topic, acks: -1, messages: [{ key: this.source, value, headers }] });
  }

  /**
   * The newest authentic checkpoint of this source, or null when it never wrote one. Records
   * the pipeline key does not authenticate are skipped and counted. When the topic holds
   * records for this source but none authentic, the reader does not start from scratch
   * (that would skip or replay changes on someone else's word): RECORD_FORGED.
   */
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
      let unsigned: Checkpoint | null = null;
      let forged = 0;
      await consumer.connect();
      try {
        await consumer.subscribe({ topic: this.topic, fromBeginning: true });
        await new Promise<void>((resolve, reject) => {
          consumer
            .run({
              autoCommit: false,
              eachMessage: async ({ message, partition }) => {
                if (message.key?.toString() === this.source && message.value) {
                  const refused = recordForgery(this.options.keys(), this.topic, message);
                  if (!refused) {
                    latest = JSON.parse(message.value.toString()) as Checkpoint;
                  } else {
                    if (!message.headers?.[RECORD_MAC_HEADER]) unsigned = JSON.parse(message.value.toString()) as Checkpoint;
                    forged++;
                    this.options.onForged?.();
                    this.logger.error({ code: refused.code, topic: this.topic, partition, offset: message.offset }, `checkpoint skipped: ${refused.message}`);
                  }
                }
                if (BigInt(message.offset) + 1n >= end) resolve();
              },
            })
            .catch(reject);
        });
      } finally {
        await consumer.disconnect();
        await admin.deleteGroups([groupId]).catch(() => undefined);
      }
      if (!latest && unsigned && this.options.adoptUnsigned) {
        this.logger.warn({ checkpoint: unsigned }, 'no signed checkpoint: adopting the newest unsigned one, written before checkpoints were signed');
        return unsigned;
      }
      if (!latest && forged > 0) {
        throw new CdcError('RECORD_FORGED', `${this.topic} holds ${forged} checkpoint record(s) of source ${this.source} but none the pipeline key authenticates: the reader will not guess where to resume. After an upgrade from unsigned checkpoints, start the reader once with READER_ADOPT_UNSIGNED_CHECKPOINT=true`, { details: { topic: this.topic, source: this.source } });
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
