import type { Kafka } from 'kafkajs';
import { ConsumerLoop, batchWaitSeconds, isCdcError, topicMessages, type CdcError, type Logger, type PipelineConfig } from '@cityshare/shared';
import { PartitionProducers } from './partition-producers.js';
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
  /** Share records and dead letters of one raw message for this department. */
  transform: (topic: string, partition: number, offset: string, value: Buffer | null) => Promise<OutMessage[]>;
  registrar: SchemaRegistrar;
  viewsOf: (tableRef: string) => DepartmentView[];
  metrics: TransformerMetrics;
  logger: Logger;
  /** The stream's consumer stopped for good (onConsumerDeath): the service restarts, or exits when a restart cannot help. */
  onFatal: (err: CdcError) => void;
  /** The brokers stopped answering (false) or answer again (true). */
  onKafkaContact?: (up: boolean) => void;
  /** Kafka settings, to name a refused principal or certificate. */
  kafkaSettings: PipelineConfig['kafka'];
}

/**
 * One department's way through the transformer: its own consumer group on the raw
 * topics it is granted, a transactional producer per raw partition it holds. Each batch's
 * share records and its offsets commit in one Kafka transaction (exactly once per
 * department). Instances started with the same settings share the department's partitions;
 * a partition's new owner fences its earlier writer (PartitionProducers). A department
 * that is paused (incompatible contract), slow or failing holds back only its own group;
 * the others read on.
 */
export class DepartmentStream {
  private loop: ConsumerLoop | undefined;
  private readonly producers: PartitionProducers;
  private faulted = false;
  readonly pauses: TablePauses;

  constructor(private readonly options: DepartmentStreamOptions) {
    this.producers = new PartitionProducers({ kafka: options.kafka, transactionalIdPrefix: `${options.prefix}.transformer.${options.department}`, logger: options.logger.child({ department: options.department }) });
    this.pauses = new TablePauses(() => this.loop!.consumer, options.registrar, options.viewsOf, options.metrics, options.logger.child({ department: options.department }));
  }

  get department(): string {
    return this.options.department;
  }

  get rawTopics(): string[] {
    return this.options.rawTopics;
  }

  /** true, or why the stream does no work now. */
  ready(): true | string {
    let state = this.loop?.ready() ?? 'starting';
    if (state === true && this.options.rawTopics.every((t) => this.pauses.isPaused(t))) state = 'every granted table is paused on an incompatible contract (SCHEMA_INCOMPATIBLE)';
    return state === true ? true : `department ${this.options.department}: ${state}`;
  }

  /** false once its consumer stopped for good. */
  get alive(): boolean {
    return this.loop?.alive ?? true;
  }

  get groupId(): string {
    return `${this.options.prefix}.transformer.${this.options.department}`;
  }

  async start(): Promise<void> {
    const { kafka, department, metrics } = this.options;
    this.loop = await ConsumerLoop.start(kafka, {
      groupId: this.groupId,
      topics: this.options.rawTopics,
      settings: this.options.kafkaSettings,
      member: {
        logger: this.options.logger,
        what: `department ${department}`,
        onDead: (err) => this.options.onFatal(err),
        onAssigned: (assignment) => void this.producers.retain(assignment),
        onContact: this.options.onKafkaContact,
      },
      eachBatch: async (batch) => {
        // After a fault nothing more is produced or committed: the run is being stopped.
        // Fetched before a pause: not transformed, so read again from its start on resume.
        if (this.faulted || this.pauses.isPaused(batch.topic)) return 'again';
        metrics.batchWait.observe({ department }, batchWaitSeconds(batch.messages[0]!.timestamp));
        const out: OutMessage[] = [];
        try {
          for (const message of batch.messages) out.push(...(await this.options.transform(batch.topic, batch.partition, message.offset, message.value)));
        } catch (err) {
          if (!(err instanceof IncompatibleView)) throw err;
          // Nothing of this batch was produced or committed: it is read again on resume.
          this.pauses.pause(batch.topic, batch.partition, batch.firstOffset()!, err);
          return 'again';
        }
        const waited = metrics.transactionSeconds.startTimer({ department });
        const producer = await this.producers.of(batch.topic, batch.partition);
        const tx = await producer.transaction();
        try {
          if (out.length > 0) await tx.sendBatch({ topicMessages: topicMessages(out) });
          await tx.sendOffsets({
            consumerGroupId: this.groupId,
            topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() }] }],
          });
          await tx.commit();
          waited();
          metrics.commits.inc({ outcome: 'committed' });
          metrics.lag.set({ department: this.options.department, topic: batch.topic, partition: String(batch.partition) }, Number(batch.offsetLag()));
          return 'committed';
        } catch (err) {
          metrics.commits.inc({ outcome: 'aborted' });
          await tx.abort().catch(() => undefined);
          const fenced = PartitionProducers.fenced(err, batch.topic, batch.partition);
          if (!isCdcError(fenced, 'PRODUCER_FENCED')) throw err;
          // This instance lost the partition while it worked on it: stop, rejoin the group with backoff.
          await this.producers.close(`${batch.topic}.${batch.partition}`);
          this.faulted = true;
          this.options.onFatal(fenced);
          return 'again';
        }
      },
    });
    this.options.logger.info({ department, groupId: this.groupId, topics: this.options.rawTopics }, 'department stream consuming');
  }

  async stop(): Promise<void> {
    this.pauses.stop();
    await this.loop?.stop();
    await this.producers.closeAll();
  }
}
