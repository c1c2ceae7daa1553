import { createHash } from 'node:crypto';
import type { Batch, Kafka, Producer } from 'kafkajs';
import {
  batchWaitSeconds,
  CdcError,
  META_FIELDS,
  WriterSchemas,
  deadLetterMessage,
  ensurePipelineTopics,
  fingerprintHeader,
  isCdcError,
  ConsumerLoop,
  parseShareTopic,
  pipelineTopics,
  producerConfig,
  keyNames,
  recordMacHeaders,
  topics,
  watchPipeline,
  wireSchemaId,
  type BatchDone,
  type DepartmentConfig,
  type KeyProvider,
  type LoadedPipeline,
  type Logger,
  type PipelineConfig,
  type AvroRecordSchema,
  type DeliveryRecord,
  type RegistryEndpoint,
} from '@cityshare/shared';
import type { SinkMetrics } from './sink-metrics.js';
import { targetColumns, type RowChange, type Target, type TargetTable } from './targets/target.js';

export interface ShareConsumerDeps {
  config: PipelineConfig;
  department: DepartmentConfig;
  kafka: Kafka;
  /** The schema registry, auth and CA included, for writer schemas. */
  registryEndpoint: RegistryEndpoint;
  sink: Target;
  logger: Logger;
  metrics: SinkMetrics;
  /** Signs delivery records for the audit ledger (record-mac.ts), so nobody else can write entries into it. */
  keys: KeyProvider;
  /** The loaded pipeline file: when given, new or revoked grants of the department apply without restart. */
  watch?: LoadedPipeline;
  /** The consumer stopped for good (onConsumerDeath): the service restarts it, or exits when a restart cannot help. */
  onFatal?: (err: CdcError) => void;
  /** The brokers stopped answering (false) or answer again (true). */
  onKafkaContact?: (up: boolean) => void;
  /** Share partitions delivered at once (SINK_PARTITIONS_CONCURRENTLY; default 1). */
  partitionsConcurrently?: number;
}

/** A decoded change and the message it came from (for the dead-letter queue). */
interface Delivery {
  change: RowChange;
  offset: string;
  key: Buffer | null;
  value: Buffer;
}

/**
 * Delivers one department's share topics to its target, in its own consumer group.
 * Offsets are committed only after the target confirmed the batch; a target that cannot
 * be reached fails the batch, which is redelivered (the version guard makes that
 * harmless). A batch the target refuses is written again change by change: the changes
 * it still refuses (a constraint, a type) go to the department's dead-letter topic
 * `<prefix>.dlq.sink.<department>` with the reason, and the rest are delivered.
 * A record whose writer schema the registry does not know (SCHEMA_UNKNOWN) pauses its
 * partition: what came before it is delivered and committed, the partition is resumed after
 * a backoff (1 s doubling to 30 s) and reads from that record again, until the schema is back.
 */
export class ShareConsumer {
  private loop: ConsumerLoop | undefined;
  private producer: Producer | undefined;
  /** Target tables by writer schema (its fingerprint, or its id for records without one). */
  private readonly tables = new Map<string, TargetTable>();
  /** Tables are created or extended one at a time: batches of several partitions may meet a new schema at once. */
  private settingUp: Promise<unknown> = Promise.resolve();
  private readonly writerSchemas: WriterSchemas;
  /** Partitions paused on an unknown schema: how often in a row, and the timer that resumes them. */
  private readonly paused = new Map<string, { attempts: number; timer: NodeJS.Timeout }>();
  /** Between leaving the group for new topics and joining it again. */
  private resubscribing = false;
  /** The target became unreachable: delivery stopped until the runtime starts the run again. */
  private faulted: CdcError | undefined;

  private watcher: { stop(): void } | undefined;
  private subscribed: string[] = [];

  constructor(private deps: ShareConsumerDeps) {
    this.writerSchemas = new WriterSchemas(deps.registryEndpoint);
    deps.metrics.partitionsPaused.set({ department: deps.department.name }, 0);
  }

  /** true, or why the department gets nothing now. */
  ready(): true | string {
    if (this.faulted) return `target unreachable (${this.faulted.code})`;
    if (this.resubscribing) return 'joining its consumer group with the new grants';
    const state = this.loop?.ready() ?? 'starting';
    if (state !== true) return state;
    const held = [...this.loop!.assignment.values()].reduce((n, partitions) => n + partitions.length, 0);
    if (held > 0 && this.pausedPartitions() >= held) return 'every partition it holds waits for a writer schema the registry does not know (SCHEMA_UNKNOWN)';
    return true;
  }

  /** false once its consumer stopped for good. */
  get alive(): boolean {
    return this.loop?.alive ?? true;
  }

  get groupId(): string {
    return `${this.deps.config.kafka.topicPrefix}.sink.${this.deps.department.name}`;
  }

  async start(): Promise<void> {
    this.producer = this.deps.kafka.producer(producerConfig());
    await this.producer.connect();
    await this.consume();
    if (this.deps.watch) {
      this.watcher = watchPipeline(this.deps.watch, {
        logger: this.deps.logger,
        onChange: async ({ pipeline, keys }) => {
          const department = pipeline.config.departments.find((d) => d.name === this.deps.department.name);
          if (!department) throw new CdcError('CONFIG_INVALID', `department ${this.deps.department.name} is no longer in the pipeline file; the sink keeps its last grants until it is stopped`);
          this.deps = { ...this.deps, config: pipeline.config, department, keys };
          this.tables.clear();
          await this.deps.sink.grantsChanged?.(department);
          const wanted = pipelineTopics(pipeline.config).share.get(department.name) ?? [];
          if (wanted.join() === this.subscribed.join()) return;
          // kafkajs cannot change a running subscription: the group is rejoined with the new topics.
          this.deps.logger.info({ topics: wanted }, 'share topics of the department changed; resubscribing');
          this.resubscribing = true;
          await this.loop?.stop();
          // Until the group is joined again (Kafka may be down just now), keep trying.
          for (let attempt = 1; ; attempt++) {
            try {
              await this.consume();
              this.resubscribing = false;
              break;
            } catch (err) {
              this.deps.logger.warn({ err: (err as Error).message, attempt }, 'resubscribing failed; retrying');
              await new Promise((r) => setTimeout(r, Math.min(30_000, 500 * 2 ** attempt)));
            }
          }
        },
      });
    }
  }

  /** Joins the department's group on its share topics (from the pipeline file in force) and delivers. */
  private async consume(): Promise<void> {
    const { config, department, kafka, logger } = this.deps;
    // By name: kafkajs resolves a pattern only once, so topics created later would be missed.
    const shareTopics = pipelineTopics(config).share.get(department.name) ?? [];
    this.subscribed = shareTopics;
    await ensurePipelineTopics(kafka, config.kafka, [...shareTopics.map((topic) => ['share', topic] as const), ['dlq', this.dlqTopic], ['deliveries', this.deliveriesTopic]]);
    this.loop = await ConsumerLoop.start(kafka, {
      groupId: this.groupId,
      topics: shareTopics,
      settings: config.kafka,
      member: { logger, what: `sink of ${department.name}`, onDead: (err) => this.deps.onFatal?.(err), onContact: this.deps.onKafkaContact },
      partitionsConcurrently: this.deps.partitionsConcurrently ?? 1,
      eachBatch: (batch) => this.deliverBatch(batch),
    });
    logger.info({ groupId: this.groupId }, 'delivering share topics');
  }

  /**
   * Delivers one fetched batch and commits its offsets once the target committed it. A target
   * that cannot be reached (TARGET_UNREACHABLE) stops delivery here: the batch stays
   * uncommitted and the service runtime restarts the run with backoff (onFatal), which reads
   * again from the committed offsets. Without onFatal the error goes to kafkajs, which retries.
   */
  private async deliverBatch(batch: Batch): Promise<BatchDone> {
    // After a fault nothing more is delivered or committed: the run is being stopped.
    if (this.faulted) return 'again';
    try {
      return await this.deliverBatchOnce(batch);
    } catch (err) {
      if (!isCdcError(err, 'TARGET_UNREACHABLE') || !this.deps.onFatal) throw err;
      // Batches worked on at once may all fail: the runtime is told once.
      if (!this.faulted) {
        this.faulted = err;
        this.deps.onFatal(err);
      }
      return 'again';
    }
  }

  private async deliverBatchOnce(batch: Batch): Promise<BatchDone> {
    const { department, metrics } = this.deps;
    const labels = { department: department.name, target: department.target.kind };
    // Fetched before its partition was paused: read again after the resume.
    if (this.isPaused(batch.topic, batch.partition)) return 'again';
    metrics.batchWait.observe(labels, batchWaitSeconds(batch.messages[0]!.timestamp));
    const byTable = new Map<TargetTable, Delivery[]>();
    let waiting: { offset: string; error: CdcError } | undefined;
    let lastOffset: string | undefined;
    for (const message of batch.messages) {
      if (!message.value) {
        lastOffset = message.offset;
        continue;
      }
      let decoded: { table: TargetTable; record: Record<string, unknown> };
      try {
        // Known writer schema and table (nearly every record): decoded without a promise to wait for.
        decoded = this.decodeKnown(message.value, message.headers) ?? (await this.decode(batch.topic, message.value, message.headers));
      } catch (err) {
        if (!isCdcError(err, 'SCHEMA_UNKNOWN')) throw err;
        waiting = { offset: message.offset, error: err };
        break;
      }
      const { table, record } = decoded;
      let list = byTable.get(table);
      if (!list) byTable.set(table, (list = []));
      const change: RowChange = {
        op: record[META_FIELDS.op] as string,
        version: record[META_FIELDS.version] as string,
        sourceTsMs: record[META_FIELDS.sourceTsMs] as bigint,
        deleted: record[META_FIELDS.deleted] as boolean,
        values: record,
      };
      list.push({ change, offset: message.offset, key: message.key, value: message.value });
      lastOffset = message.offset;
    }
    const records: DeliveryRecord[] = [];
    for (const [table, deliveries] of byTable) {
      const { applied, stale } = await this.deliver(batch.topic, batch.partition, table, deliveries);
      metrics.applied.inc(labels, applied);
      metrics.stale.inc(labels, stale);
      const now = Date.now();
      const latency = metrics.latency.labels(labels);
      for (const d of deliveries) latency.observe(Math.max(0, now - Number(d.change.sourceTsMs)) / 1000);
      records.push(deliveryRecord(department.name, table.name, batch.topic, batch.partition, deliveries, applied));
    }
    // The batch's record for the audit ledger, before its offsets: a crash in between reports it again, never loses it.
    if (records.length > 0) await this.producer!.send({
      topic: this.deliveriesTopic,
      acks: -1,
      messages: records.map((r) => {
        const key = `${r.department}/${r.topic}/${r.partition}/${r.firstOffset}`;
        const value = JSON.stringify(r);
        return { key, value, headers: recordMacHeaders(this.deps.keys, this.deliveriesTopic, key, value, keyNames.deliveries) };
      }),
    });
    metrics.lag.set({ department: department.name, topic: batch.topic, partition: String(batch.partition) }, Number(batch.offsetLag()));
    if (!waiting) {
      this.paused.delete(`${batch.topic}/${batch.partition}`);
      // The whole batch delivered: past its last offset, transaction markers included (else the group would lag by one marker).
      return 'all';
    }
    // Up to the record before the one waiting for its writer schema, never past it.
    this.pauseOnUnknownSchema(batch.topic, batch.partition, waiting.offset, waiting.error);
    return lastOffset === undefined ? 'again' : { through: lastOffset };
  }

  get deliveriesTopic(): string {
    return topics.deliveries(this.deps.config.kafka.topicPrefix);
  }

  get dlqTopic(): string {
    return topics.dlq(this.deps.config.kafka.topicPrefix, `sink.${this.deps.department.name}`);
  }

  /** Applies a table's batch; if the target refuses it, change by change, refused ones to the DLQ. */
  private async deliver(topic: string, partition: number, table: TargetTable, deliveries: Delivery[]): Promise<{ applied: number; stale: number }> {
    const { sink, metrics, department, logger } = this.deps;
    try {
      return await sink.apply(table, deliveries.map((d) => d.change));
    } catch (err) {
      if (!isCdcError(err, 'TARGET_REJECTED')) throw err;
    }
    let applied = 0;
    let stale = 0;
    for (const d of deliveries) {
      try {
        const r = await sink.apply(table, [d.change]);
        applied += r.applied;
        stale += r.stale;
      } catch (err) {
        if (!isCdcError(err, 'TARGET_REJECTED')) throw err;
        // The reason names the column and constraint; values stay out of logs.
        logger.warn({ code: err.code, table: table.name, topic, partition, offset: d.offset, version: d.change.version, sqlState: err.details?.sqlState }, 'target refused a change; it goes to the dead-letter topic');
        const { topic: dlq, key, value } = deadLetterMessage(this.dlqTopic, { code: err.code, reason: err.message, department: department.name, table: table.name, topic, partition, offset: d.offset, version: d.change.version, payload: d.value.toString('base64') });
        await this.producer!.send({ topic: dlq, acks: -1, messages: [{ key, value }] });
        metrics.dlq.inc({ department: department.name, target: department.target.kind });
      }
    }
    return { applied, stale };
  }

  /** A share record decoded, when its writer schema and target table are known already. */
  private decodeKnown(value: Buffer, headers: Record<string, unknown> | undefined): { table: TargetTable; record: Record<string, unknown> } | undefined {
    const writer = this.writerSchemas.known(wireSchemaId(value), fingerprintHeader(headers));
    const table = writer && this.tables.get(writer.key);
    return table && { table, record: this.writerSchemas.decode(writer, value) };
  }

  /** A share record decoded with its writer schema, and its target table. */
  private async decode(topic: string, value: Buffer, headers: Record<string, unknown> | undefined): Promise<{ table: TargetTable; record: Record<string, unknown> }> {
    const writer = await this.writerSchemas.resolve(topic, wireSchemaId(value), fingerprintHeader(headers));
    return { table: await this.tableFor(topic, writer.key, writer.schema), record: this.writerSchemas.decode(writer, value) };
  }

  /**
   * Stops fetching a partition whose next record names a schema the registry does not
   * know, and resumes it after a backoff; the record is read again then. Alerted through
   * cityshare_sink_partitions_paused (deploy/prometheus/alerts.yml).
   */
  private pauseOnUnknownSchema(topic: string, partition: number, offset: string, error: CdcError): void {
    const { logger, metrics, department } = this.deps;
    const key = `${topic}/${partition}`;
    const attempts = (this.paused.get(key)?.attempts ?? 0) + 1;
    const delayMs = Math.min(30_000, 1_000 * 2 ** (attempts - 1));
    this.loop!.consumer.pause([{ topic, partitions: [partition] }]);
    metrics.schemaUnknown.inc({ department: department.name, topic });
    logger.error({ code: error.code, action: error.action, topic, partition, offset, attempts, retryInMs: delayMs, ...error.details }, `partition paused: ${error.message}`);
    const timer = setTimeout(() => {
      this.loop?.consumer.resume([{ topic, partitions: [partition] }]);
      this.updatePausedGauge();
    }, delayMs);
    timer.unref();
    this.paused.set(key, { attempts, timer });
    this.updatePausedGauge();
  }

  private isPaused(topic: string, partition: number): boolean {
    return this.loop?.consumer.paused().some((t) => t.topic === topic && t.partitions.includes(partition)) ?? false;
  }

  private pausedPartitions(): number {
    return this.loop?.consumer.paused().reduce((n, t) => n + t.partitions.length, 0) ?? 0;
  }

  private updatePausedGauge(): void {
    this.deps.metrics.partitionsPaused.set({ department: this.deps.department.name }, this.pausedPartitions());
  }

  /** Target table of a share topic for a writer schema; created or extended on first sight. */
  private async tableFor(topic: string, writerKey: string, schema: AvroRecordSchema): Promise<TargetTable> {
    const known = this.tables.get(writerKey);
    if (known) return known;
    const setUp = this.settingUp.catch(() => undefined).then(() => this.setUpTable(topic, writerKey, schema));
    this.settingUp = setUp;
    return setUp;
  }

  private async setUpTable(topic: string, writerKey: string, schema: AvroRecordSchema): Promise<TargetTable> {
    let table = this.tables.get(writerKey);
    if (table) return table;
    const where = parseShareTopic(topic);
    if (!where) throw new CdcError('CONFIG_INVALID', `${topic} is not a share topic (<prefix>.share.<department>.<source>.<db>.<table>)`);
    const grant = this.deps.department.grants.find((g) => g.table === `${where.source}.${where.db}.${where.table}`);
    table = { name: grant?.targetTable ?? where.table, columns: targetColumns(schema), primaryKey: schema['x-primary-key'], grant: grant?.table };
    await this.deps.sink.ensureTable(table);
    this.tables.set(writerKey, table);
    return table;
  }

  async stop(): Promise<void> {
    for (const { timer } of this.paused.values()) clearTimeout(timer);
    this.watcher?.stop();
    await this.loop?.stop();
    await this.producer?.disconnect().catch(() => undefined);
  }
}

/** What the ledger keeps of a delivered batch: counts, positions and a digest of the bytes, never a value. */
function deliveryRecord(department: string, table: string, topic: string, partition: number, deliveries: Delivery[], applied: number): DeliveryRecord {
  const digest = createHash('sha256');
  for (const d of deliveries) digest.update(d.value);
  return {
    department, table, topic, partition,
    firstOffset: deliveries[0]!.offset,
    lastOffset: deliveries.at(-1)!.offset,
    rows: deliveries.length,
    applied,
    fromVersion: deliveries[0]!.change.version,
    toVersion: deliveries.at(-1)!.change.version,
    sha256: digest.digest('hex'),
    deliveredAt: new Date().toISOString(),
  };
}
