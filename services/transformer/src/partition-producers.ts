import type { Kafka, Producer } from 'kafkajs';
import { CdcError, kafkaErrorChain, producerConfig, type Logger } from '@cityshare/shared';

/** kafkajs error types a broker answers to a producer whose transactional id has a newer owner. */
const FENCED = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'INVALID_PRODUCER_ID_MAPPING']);

/**
 * One transactional producer per raw partition a department stream holds, named after the
 * partition (`<prefix>.transformer.<department>.<raw topic>.<partition>`), as Kafka Streams
 * does without KIP-447 (kafkajs cannot send a group generation with its offsets). Whoever
 * holds a partition now owns its id: any number of instances started with the same settings
 * share the work, and the instance a partition moves to fences every earlier writer of it
 * (a dead self, or a stalled instance that lost its session), so a batch is never committed
 * twice. Producers of partitions given up at a rebalance are closed.
 */
export class PartitionProducers {
  private readonly producers = new Map<string, Promise<Producer>>();

  constructor(private readonly options: { kafka: Kafka; transactionalIdPrefix: string; logger: Logger }) {}

  /** The producer of `topic`/`partition`, connected (and its transactions initialised) on first use. */
  of(topic: string, partition: number): Promise<Producer> {
    const id = `${topic}.${partition}`;
    let producer = this.producers.get(id);
    if (!producer) {
      const p = this.options.kafka.producer(producerConfig({ transactionalId: `${this.options.transactionalIdPrefix}.${id}` }));
      producer = p.connect().then(() => p);
      // A producer that could not connect is made again at the next batch.
      producer.catch(() => this.producers.delete(id));
      this.producers.set(id, producer);
    }
    return producer;
  }

  /** Closes the producers of partitions this instance no longer holds. */
  async retain(assignment: ReadonlyMap<string, number[]>): Promise<void> {
    const held = new Set([...assignment].flatMap(([topic, partitions]) => partitions.map((p) => `${topic}.${p}`)));
    const gone = [...this.producers.keys()].filter((id) => !held.has(id));
    await Promise.all(gone.map((id) => this.close(id)));
    if (gone.length > 0) this.options.logger.debug({ partitions: gone }, 'closed the producers of partitions given up');
  }

  /** Closes one partition's producer (it is made again at the next batch of that partition). */
  async close(id: string): Promise<void> {
    const producer = this.producers.get(id);
    this.producers.delete(id);
    await producer?.then((p) => p.disconnect()).catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.producers.keys()].map((id) => this.close(id)));
  }

  get size(): number {
    return this.producers.size;
  }

  /**
   * A transaction refused because a newer owner of the partition's id fenced this producer,
   * as PRODUCER_FENCED; anything else as it is.
   */
  static fenced(err: unknown, topic: string, partition: number): unknown {
    const type = [...kafkaErrorChain(err)].find((e) => e.type && FENCED.has(e.type))?.type;
    if (!type) return err;
    return new CdcError('PRODUCER_FENCED', `another instance now writes ${topic} partition ${partition} (${type}); this one gave its transaction up`, { cause: err, details: { topic, partition } });
  }
}
