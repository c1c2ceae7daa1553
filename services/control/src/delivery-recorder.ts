import { existsSync } from 'node:fs';
import type { Kafka } from 'kafkajs';
import { ConsumerLoop, FileKeyring, createKafka, eachMessage, ensurePipelineTopics, keyNames, loadPipeline, recordForgery, topics, watchPipeline, type DeliveryRecord, type KeyProvider, type Logger, type PipelineConfig } from '@cityshare/shared';
import type { AuditLedger } from './ledger.js';

/**
 * Writes every batch the sinks report on `<prefix>.audit.deliveries` to the audit ledger as a
 * `delivery.batch` entry (department, table, rows, source position range, digest of the
 * delivered bytes). A batch reported twice (a sink restarted between its report and its
 * offsets) is recorded once: the subject names the department, topic, partition and offsets.
 * Only records a sink signed with the pipeline key are written: a forged one (a delivery that
 * never happened, to cover one that did) is logged, counted and never reaches the ledger.
 */
export class DeliveryRecorder {
  private loop: ConsumerLoop | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly kafkaConfig: PipelineConfig['kafka'],
    private readonly ledger: AuditLedger,
    private readonly logger: Logger,
    /** The pipeline's keyring in force. */
    private readonly keys: () => KeyProvider,
    /** A delivery record that is not authenticated was not written (cityshare_forged_records_total). */
    private readonly onForged: () => void,
  ) {}

  async start(): Promise<void> {
    const topic = topics.deliveries(this.kafkaConfig.topicPrefix);
    await ensurePipelineTopics(this.kafka, this.kafkaConfig, [['deliveries', topic]]);
    this.loop = await ConsumerLoop.start(this.kafka, {
      groupId: `${this.kafkaConfig.topicPrefix}.control.deliveries`,
      topics: [topic],
      settings: this.kafkaConfig,
      eachBatch: eachMessage(async (message, { topic, partition }) => {
        if (!message.value) return;
        const forged = recordForgery(this.keys(), topic, message, keyNames.deliveries);
        if (forged) {
          this.onForged();
          this.logger.error({ code: forged.code, topic, partition, offset: message.offset }, `delivery record not written to the ledger: ${forged.message}`);
          return;
        }
        let r: DeliveryRecord;
        try {
          r = JSON.parse(message.value.toString('utf8')) as DeliveryRecord;
        } catch {
          this.logger.error({ offset: message.offset }, 'unreadable delivery record skipped');
          return;
        }
        const subject = `delivery/${r.department}/${r.topic}/${r.partition}/${r.firstOffset}-${r.lastOffset}`;
        await this.ledger.appendOnce({
          actor: `sink:${r.department}`, role: 'system', action: 'delivery.batch', subject,
          details: { department: r.department, table: r.table, rows: r.rows, applied: r.applied, fromVersion: r.fromVersion, toVersion: r.toVersion, sha256: r.sha256, deliveredAt: r.deliveredAt },
        });
      }),
    });
    this.logger.info({ topic }, 'recording deliveries in the audit ledger');
  }

  async stop(): Promise<void> {
    await this.loop?.stop();
  }
}

/**
 * The delivery recorder of the published policy: started once there is one (it names the
 * Kafka the sinks report on), verifying records with that pipeline's keyring, followed as
 * keys rotate. A start that fails is tried again at the next call.
 */
export class PublishedDeliveries {
  private recorder: DeliveryRecorder | undefined;
  private keyringWatch: { stop(): void } | undefined;

  constructor(
    private readonly pipelinePath: string,
    private readonly ledger: AuditLedger,
    private readonly logger: Logger,
    private readonly onForged: () => void,
  ) {}

  async ensureStarted(): Promise<void> {
    if (this.recorder || !existsSync(this.pipelinePath)) return;
    const loaded = loadPipeline(this.pipelinePath);
    let pipelineKeys = FileKeyring.load(loaded.keyringPath);
    this.keyringWatch = watchPipeline(loaded, { logger: this.logger, onChange: ({ keys }) => void (pipelineKeys = keys) });
    this.recorder = new DeliveryRecorder(createKafka(loaded.config.kafka, 'cityshare-control', this.logger), loaded.config.kafka, this.ledger, this.logger, () => pipelineKeys, this.onForged);
    await this.recorder.start().catch((err: unknown) => {
      this.recorder = undefined;
      this.keyringWatch?.stop();
      throw err;
    });
  }

  async stop(): Promise<void> {
    this.keyringWatch?.stop();
    await this.recorder?.stop();
  }
}
