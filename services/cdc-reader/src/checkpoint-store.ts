import { randomUUID } from 'node:crypto';
import type { Kafka, Producer } from 'kafkajs';
import { CdcError, ConsumerLoop, RECORD_MAC_HEADER, eachMessage, keyNames, keysOfList, openValue, recordForgery, recordMacHeaders, sealValue, topics, type BinlogPosition, type KeyProvider, type Logger, type PipelineConfig } from '@cityshare/shared';
import type { SnapshotState } from './snapshot/snapshotter.js';

export interface Checkpoint extends BinlogPosition {
  /** Snapshot progress as of this position; absent before the first snapshot started. */
  snapshot?: SnapshotState;
  /** When the checkpoint was written. */
  savedAt: string;
}

export interface CheckpointStoreOptions {
  /** Kafka settings, to name a refused principal or unreachable brokers. */
  settings: PipelineConfig['kafka'];
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
    const stored = snapshot && sealLastKeys(this.options.keys(), this.source, snapshot);
    const value = JSON.stringify({ file: position.file, pos: position.pos, gtid: position.gtid, snapshot: stored, savedAt: new Date().toISOString() });
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
      let latest: Checkpoint | null = null;
      let unsigned: string | null = null;
      let forged = 0;
      let started: Promise<ConsumerLoop> | undefined;
      try {
        await new Promise<void>((resolve, reject) => {
          started = ConsumerLoop.start(this.kafka, {
            groupId,
            topics: [this.topic],
            settings: this.options.settings,
            commit: false,
            eachBatch: eachMessage(async (message, { partition }) => {
              if (message.key?.toString() === this.source && message.value) {
                const refused = recordForgery(this.options.keys(), this.topic, message);
                if (!refused) {
                  try {
                    latest = openLastKeys(this.options.keys(), this.source, JSON.parse(message.value.toString()) as Checkpoint);
                  } catch (err) {
                    // An authentic checkpoint whose snapshot key does not open (its pipeline key removed): say so, do not hang.
                    reject(err);
                    return;
                  }
                } else {
                  // Kept as bytes: read only if adopted, so a forged record cannot break the load.
                  if (!message.headers?.[RECORD_MAC_HEADER]) unsigned = message.value.toString();
                  forged++;
                  this.options.onForged?.();
                  this.logger.error({ code: refused.code, topic: this.topic, partition, offset: message.offset }, `checkpoint skipped: ${refused.message}`);
                }
              }
              if (BigInt(message.offset) + 1n >= end) resolve();
            }),
          });
          started.catch(reject);
        });
      } finally {
        await (await started?.catch(() => undefined))?.stop();
        await admin.deleteGroups([groupId]).catch(() => undefined);
      }
      if (!latest && unsigned && this.options.adoptUnsigned) {
        const adopted = openLastKeys(this.options.keys(), this.source, JSON.parse(unsigned) as Checkpoint);
        this.logger.warn({ checkpoint: summary(adopted) }, 'no signed checkpoint: adopting the newest unsigned one, written before checkpoints were signed');
        return adopted;
      }
      if (!latest && forged > 0) {
        throw new CdcError('RECORD_FORGED', `${this.topic} holds ${forged} checkpoint record(s) of source ${this.source} but none the pipeline key authenticates: the reader will not guess where to resume. After an upgrade from unsigned checkpoints, start the reader once with READER_ADOPT_UNSIGNED_CHECKPOINT=true`, { details: { topic: this.topic, source: this.source } });
      }
      this.logger.info({ checkpoint: latest && summary(latest) }, 'checkpoint loaded');
      return latest;
    } finally {
      await admin.disconnect();
    }
  }
}

/**
 * A snapshot's last key is a primary key, and a primary key can be personal (an ID-card
 * number): it is stored sealed under the pipeline key, bound to the source and table.
 */
function lastKeyAad(source: string, table: string): string {
  return `checkpoint:${source}:${table}:lastKey`;
}

export function sealLastKeys(keys: KeyProvider, source: string, snapshot: SnapshotState): Record<string, Omit<SnapshotState[string], 'lastKey'> & { lastKey: string | null }> {
  const key = keys.activeKey(keyNames.pipeline);
  return Object.fromEntries(Object.entries(snapshot).map(([table, s]) => [table, { ...s, lastKey: s.lastKey === null ? null : sealValue(key, s.lastKey, lastKeyAad(source, table)) }]));
}

/** The checkpoint with its last keys opened; a key stored in clear (before they were sealed) is taken as it is. */
export function openLastKeys(keys: KeyProvider, source: string, checkpoint: Checkpoint): Checkpoint {
  if (!checkpoint.snapshot) return checkpoint;
  const pipeline = keysOfList(keys, keyNames.pipeline);
  const snapshot = Object.fromEntries(Object.entries(checkpoint.snapshot).map(([table, s]) => {
    const lastKey = typeof s.lastKey === 'string' ? (openValue(pipeline, s.lastKey, lastKeyAad(source, table)) as unknown[]) : s.lastKey;
    return [table, { ...s, lastKey }];
  }));
  return { ...checkpoint, snapshot };
}

/** What a log line may say of a checkpoint: where, and snapshot progress in counts (never a key). */
function summary(c: Checkpoint): Record<string, unknown> {
  const tables = Object.values(c.snapshot ?? {});
  return { file: c.file, pos: c.pos, gtid: c.gtid ?? null, savedAt: c.savedAt, snapshotTables: tables.length, snapshotTablesDone: tables.filter((t) => t.done).length };
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
