import type { Consumer, Kafka, Producer } from 'kafkajs';
import { onConsumerDeath, producerConfig, topicMessages, type CdcError, type Logger, type PipelineConfig } from '@cityshare/shared';
import type { DepartmentView } from './department-views.js';
import type { SchemaRegistrar } from './schema-registrar.js';
import { IncompatibleView, TablePauses } from './table-pauses.js';
import type { TransformerMetrics } from './transformer-metrics.js';

export interface OutMessage {
  topic: string;
  key: string;
  value: Buffer;
  headers?: Record<string, string>;
}

export interface DepartmentStreamOptions {
  department: string;
  /** Raw topics of the tables the department is granted. */
  rawTopics: string[];
  kafka: Kafka;
  prefix: string;
  instanceId: string;
  /** Share records and dead letters of one raw message for this department. */
  transform: (topic: string, partition: number, offset: string, value: Buffer | null) => Promise<OutMessage[]>;
  registrar: SchemaRegistrar;
  viewsOf: (tableRef: string) => DepartmentView[];
  metrics: TransformerMetrics;
  logger: Logger;
  /** The stream's consumer stopped for good (onConsumerDeath): the service restarts, or exits when a restart cannot help. */
  onFatal: (err: CdcError) => void;
  /** Kafka settings, to name a refused principal or certificate. */
  kafkaSettings: PipelineConfig['kafka'];
}

/**
 * One department's way through the transformer: its own consumer group on the raw
 * topics it is granted, its own transactional producer. Each batch's share records and
 * its offsets commit in one Kafka transaction (exactly once per department). A
 * department that is paused (incompatible contract), slow or failing holds back only
 * its own group; the others read on.
 */
export class DepartmentStream {
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private joined = false;
  readonly pauses: TablePauses;

  constructor(private readonly o: DepartmentStreamOptions) {
    this.pauses = new TablePauses(() => this.consumer!, o.registrar, o.viewsOf, o.metrics, o.logger.child({ department: o.department }));
  }

  get department(): string {
    return this.o.department;
  }

  get rawTopics(): string[] {
    return this.o.rawTopics;
  }

  get ready(): boolean {
    return this.joined;
  }

  get groupId(): string {
    return `${this.o.prefix}.transformer.${this.o.department}`;
  }

  async start(): Promise<void> {
    const { kafka, prefix, department, instanceId, metrics } = this.o;
    this.producer = kafka.producer(producerConfig({ transactionalId: `${prefix}.transformer.${department}.${instanceId}` }));
    await this.producer.connect();
    this.consumer = kafka.consumer({ groupId: this.groupId, readUncommitted: false, allowAutoTopicCreation: false, metadataMaxAge: 5_000 });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: this.o.rawTopics, fromBeginning: true });
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => {
      this.joined = true;
    });
    onConsumerDeath(this.consumer, this.o.kafkaSettings, (err) => {
      this.joined = false;
      this.o.onFatal(err);
    });
    await this.consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale }) => {
        if (!isRunning() || isStale() || batch.messages.length === 0) return;
        if (this.pauses.isPaused(batch.topic)) {
          // Fetched before the pause: not transformed, so read again from its start on resume.
          this.consumer!.seek({ topic: batch.topic, partition: batch.partition, offset: batch.firstOffset()! });
          return;
        }
        const out: OutMessage[] = [];
        try {
          for (const message of batch.messages) out.push(...(await this.o.transform(batch.topic, batch.partition, message.offset, message.value)));
        } catch (err) {
          if (!(err instanceof IncompatibleView)) throw err;
          // Nothing of this batch was produced or committed: it is read again on resume.
          this.pauses.pause(batch.topic, batch.partition, batch.firstOffset()!, err);
          return;
        }
        const tx = await this.producer!.transaction();
        try {
          if (out.length > 0) await tx.sendBatch({ topicMessages: topicMessages(out) });
          await tx.sendOffsets({
            consumerGroupId: this.groupId,
            topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() }] }],
          });
          await tx.commit();
          metrics.commits.inc({ outcome: 'committed' });
          metrics.lag.set({ department: this.o.department, topic: batch.topic, partition: String(batch.partition) }, Number(batch.offsetLag()));
        } catch (err) {
          metrics.commits.inc({ outcome: 'aborted' });
          await tx.abort().catch(() => undefined);
          throw err;
        }
        await heartbeat();
      },
    });
    this.o.logger.info({ department, groupId: this.groupId, topics: this.o.rawTopics }, 'department stream consuming');
  }

  async stop(): Promise<void> {
    this.joined = false;
    this.pauses.stop();
    await this.consumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
  }
}
