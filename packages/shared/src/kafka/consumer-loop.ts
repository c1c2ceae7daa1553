import type { Batch, Consumer, ConsumerConfig, Kafka, KafkaMessage } from 'kafkajs';
import { CdcError, isCdcError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { PipelineConfig } from '../config/pipeline-schema.js';
import { GroupMember, groupConsumerConfig } from './group-member.js';
import { kafkaSecurityError } from './security.js';

/** How far the work on a batch went; the loop commits and moves on accordingly. */
export type BatchDone =
  /** Every record handled: committed past the batch (its transaction markers too). */
  | 'all'
  /** Committed by the work itself, in its own Kafka transaction: the loop only moves past the batch. */
  | 'committed'
  /** Handled up to and including this offset: committed past it; the rest is read again. */
  | { through: string }
  /** Nothing handled (a paused table or partition, a run being stopped): read again from its first record. */
  | 'again';

export interface ConsumerLoopOptions {
  groupId: string;
  /** Kafka settings: a refused principal or certificate, or brokers out of reach, are named against them. */
  settings: Pick<PipelineConfig['kafka'], 'ssl' | 'sasl' | 'brokers'>;
  topics: string[];
  /** Where a group without committed offsets starts (default: the beginning). */
  fromBeginning?: boolean;
  /** Consumer settings instead of a work-sharing group's (groupConsumerConfig). */
  consumer?: ConsumerConfig;
  /** false: a private reader that keeps no offsets (it reads a whole compacted topic at each start). */
  commit?: boolean;
  /** Group membership to follow (join, partitions held, contact with the brokers, death): GroupMember. */
  member?: {
    logger: Logger;
    /** Who speaks, for the log: "department health", "sink of health". */
    what: string;
    onDead: (err: CdcError) => void;
    onAssigned?: (assignment: ReadonlyMap<string, number[]>) => void;
    onContact?: ((up: boolean) => void) | undefined;
  };
  /**
   * Batches of different partitions worked on at once (default 1): while one waits for its
   * destination, the next is decoded. Batches of one partition are never worked on at once.
   */
  partitionsConcurrently?: number;
  /** The work on one fetched batch of one partition; never called for an empty batch or a stale generation. */
  eachBatch: (batch: Batch, loop: { heartbeat(): Promise<void> }) => Promise<BatchDone>;
}

/**
 * The one consumer loop of the pipeline's kafkajs consumers: connect, subscribe, follow the
 * group (GroupMember: readiness while joining, partitions held, brokers' silence, a consumer
 * that died), skip the batches of a generation that is no longer current (a rebalance took
 * the partition: its new owner reads them), and commit only what the work says it finished,
 * after it finished it.
 */
export class ConsumerLoop {
  private constructor(
    readonly consumer: Consumer,
    readonly member: GroupMember | undefined,
  ) {}

  static async start(kafka: Kafka, o: ConsumerLoopOptions): Promise<ConsumerLoop> {
    const consumer = kafka.consumer(o.consumer ?? groupConsumerConfig(o.groupId));
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: o.topics, fromBeginning: o.fromBeginning ?? true });
    } catch (err) {
      await consumer.disconnect().catch(() => undefined);
      const coded = kafkaSecurityError(err, o.settings, o.topics.join(', '));
      throw isCdcError(coded) ? coded : new CdcError('KAFKA_UNREACHABLE', `cannot reach Kafka at ${o.settings.brokers.join(',')}: ${(err as Error).message}`, { cause: err });
    }
    const member = o.member ? new GroupMember(consumer, { ...o.member, settings: o.settings }) : undefined;
    const commit = o.commit ?? true;
    await consumer.run({
      partitionsConsumedConcurrently: o.partitionsConcurrently ?? 1,
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
        if (!isRunning() || isStale() || batch.messages.length === 0) return;
        const done = await o.eachBatch(batch, { heartbeat });
        if (done === 'again') {
          consumer.seek({ topic: batch.topic, partition: batch.partition, offset: batch.firstOffset()! });
          return;
        }
        const upTo = typeof done === 'object' ? done.through : batch.lastOffset();
        if (commit && done !== 'committed') {
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(upTo) + 1n).toString() }]);
        }
        resolveOffset(upTo);
        await heartbeat();
      },
    });
    return new ConsumerLoop(consumer, member);
  }

  /** true, or why the loop does no work now (not joined, brokers silent, consumer dead). */
  ready(): true | string {
    return this.member?.ready() ?? true;
  }

  /** The partitions of each topic this member holds since its last join. */
  get assignment(): ReadonlyMap<string, number[]> {
    return this.member?.assignment ?? new Map();
  }

  /** false once the consumer stopped for good. */
  get alive(): boolean {
    return this.member?.alive ?? true;
  }

  /** Disconnecting leaves the group: its partitions go to the other members at once. */
  async stop(): Promise<void> {
    this.member?.stop();
    await this.consumer.disconnect().catch(() => undefined);
  }
}

/** Work done record by record: each message of the batch handled in order, then the whole batch committed. */
export function eachMessage(handle: (message: KafkaMessage, at: { topic: string; partition: number }) => Promise<void>): ConsumerLoopOptions['eachBatch'] {
  return async (batch) => {
    for (const message of batch.messages) await handle(message, { topic: batch.topic, partition: batch.partition });
    return 'all';
  };
}
