import type { Consumer, Kafka, Producer } from 'kafkajs';
import {
  CdcError,
  decodeRawMessage,
  ensureTopics,
  isCdcError,
  keyNames,
  pipelineTopics,
  producerConfig,
  topicMessages,
  topicSpec,
  topics,
  type Admin,
  type ChangeEvent,
  type RawChangeEvent,
  type KeyProvider,
  type Logger,
  type PipelineConfig,
  type SchemaRegistry,
} from '@cityshare/shared';
import { departmentViews, type DepartmentView } from './department-views.js';
import { SchemaRegistrar } from './schema-registrar.js';
import { TableSchemas } from './table-schemas.js';
import { projectEvent, type ViewKeys } from './share-view.js';
import type { TransformerMetrics } from './transformer-metrics.js';
import type { TransformerEnv } from './config.js';

export interface TransformerDeps {
  config: PipelineConfig;
  env: TransformerEnv;
  keys: KeyProvider;
  kafka: Kafka;
  registry: SchemaRegistry;
  logger: Logger;
  metrics: TransformerMetrics;
  onFatal: (err: CdcError) => void;
}

/** Where a raw event was read: its frame's offset and its index in the frame (null: the whole frame). */
interface RawAt {
  topic: string;
  partition: number;
  offset: string;
  index: number | null;
}

interface OutMessage {
  topic: string;
  key: string;
  value: Buffer;
}

/**
 * Consume raw change events, apply every department's grant, produce share records:
 * each input batch and its consumer offsets commit in one Kafka transaction, so a
 * department topic gets each change exactly once.
 */
export class Transformer {
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private admin: Admin | undefined;
  private readonly views: Map<string, DepartmentView[]>;
  private readonly registrar: SchemaRegistrar;
  private running = false;
  private schemas: TableSchemas | undefined;

  constructor(private readonly deps: TransformerDeps) {
    this.views = departmentViews(deps.config);
    this.registrar = new SchemaRegistrar(deps.registry, () => deps.metrics.registrations.inc());
  }

  get ready(): boolean {
    return this.running;
  }

  private get groupId(): string {
    return `${this.deps.config.kafka.topicPrefix}.transformer`;
  }

  async start(): Promise<void> {
    const { config, kafka, env, logger } = this.deps;
    const prefix = config.kafka.topicPrefix;
    this.admin = kafka.admin();
    await this.admin.connect().catch((cause: Error) => {
      throw new CdcError('KAFKA_UNREACHABLE', `cannot reach Kafka at ${config.kafka.brokers.join(',')}: ${cause.message}`, { cause });
    });
    // Subscriptions are by name (kafkajs resolves patterns only once); the pipeline
    // file says which raw topics exist and which share topics they feed.
    const planned = pipelineTopics(config);
    await ensureTopics(this.admin, [
      topicSpec(config.kafka, topics.dlq(prefix, 'transformer'), 'single'),
      topicSpec(config.kafka, topics.tableSchemas(prefix), 'compacted'),
      ...planned.raw.map((t) => topicSpec(config.kafka, t)),
      ...[...planned.share.values()].flat().map((t) => topicSpec(config.kafka, t)),
    ]);
    this.schemas = new TableSchemas(kafka, prefix, logger);
    await this.schemas.start();
    this.producer = kafka.producer(producerConfig({ transactionalId: `${prefix}.transformer.${env.TRANSFORMER_INSTANCE_ID}` }));
    await this.producer.connect();
    this.consumer = kafka.consumer({ groupId: this.groupId, readUncommitted: false, allowAutoTopicCreation: false, metadataMaxAge: 5_000 });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: planned.raw, fromBeginning: true });
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => {
      this.running = true;
    });
    await this.consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale }) => {
        if (!isRunning() || isStale() || batch.messages.length === 0) return;
        const out: OutMessage[] = [];
        for (const message of batch.messages) {
          out.push(...(await this.transform(batch.topic, batch.partition, message.offset, message.value)));
        }
        const tx = await this.producer!.transaction();
        try {
          if (out.length > 0) await tx.sendBatch({ topicMessages: topicMessages(out) });
          await tx.sendOffsets({
            consumerGroupId: this.groupId,
            topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() }] }],
          });
          await tx.commit();
          this.deps.metrics.commits.inc({ outcome: 'committed' });
        } catch (err) {
          this.deps.metrics.commits.inc({ outcome: 'aborted' });
          await tx.abort().catch(() => undefined);
          throw err;
        }
        await heartbeat();
      },
    });
    logger.info({ groupId: this.groupId }, 'consuming raw topics');
  }

  /** The share records (and dead letters) one raw message (a frame of change events) turns into. */
  private async transform(topic: string, partition: number, offset: string, raw: Buffer | null): Promise<OutMessage[]> {
    if (!raw) return [];
    let events: RawChangeEvent[];
    try {
      events = decodeRawMessage(raw);
    } catch (err) {
      this.deps.metrics.dlq.inc({ reason: 'unparseable' });
      return [this.deadLetter({ topic, partition, offset, index: null }, 'unparseable', (err as Error).message, raw)];
    }
    const out: OutMessage[] = [];
    for (const [index, parsed] of events.entries()) out.push(...(await this.transformEvent({ topic, partition, offset, index }, parsed)));
    return out;
  }

  private async transformEvent(at: RawAt, parsed: RawChangeEvent): Promise<OutMessage[]> {
    const { config, metrics, keys } = this.deps;
    const prefix = config.kafka.topicPrefix;
    const payload = () => Buffer.from(JSON.stringify(parsed));
    let event: ChangeEvent;
    try {
      if (!parsed?.source || !(parsed.schemaRef || parsed.schema) || !parsed.op) throw new Error('missing source, schema reference or op');
      event = { ...parsed, schema: await this.schemas!.resolve(parsed) };
    } catch (err) {
      if (isCdcError(err)) {
        this.deps.onFatal(err);
        throw err;
      }
      metrics.dlq.inc({ reason: 'unparseable' });
      return [this.deadLetter(at, 'unparseable', (err as Error).message, payload())];
    }
    const tableRef = `${event.source.name}.${event.source.db}.${event.source.table}`;
    metrics.recordsIn.inc({ table: tableRef });
    const out: OutMessage[] = [];
    for (const view of this.views.get(tableRef) ?? []) {
      const viewKeys: ViewKeys = {
        pipeline: keys,
        department: keys.activeKey(keyNames.department(view.department)),
        token: keys.activeKey(keyNames.department(view.department)),
      };
      const shareTopic = topics.share(prefix, view.department, event.source.db, event.source.table);
      try {
        const record = projectEvent(event, view, viewKeys);
        const id = await this.registrar.schemaId(shareTopic, view, event.schema);
        out.push({ topic: shareTopic, key: record.key, value: await this.registrar.encode(id, record.value, shareTopic) });
        metrics.recordsOut.inc({ department: view.department, table: tableRef });
      } catch (err) {
        if (isCdcError(err) && (err.code === 'RECORD_INVALID' || err.code === 'DECRYPT_FAILED')) {
          metrics.dlq.inc({ reason: err.code });
          out.push(this.deadLetter(at, err.code, err.message, payload()));
          continue;
        }
        // Configuration, registry and schema problems stop the transformer before its
        // offsets move: nothing is skipped, and the error says what to fix.
        const fatal = isCdcError(err) ? err : new CdcError('INTERNAL', (err as Error).message, { cause: err });
        this.deps.onFatal(fatal);
        throw fatal;
      }
    }
    return out;
  }

  /** Dead letters keep the raw event (or frame), whose personal columns are still sealed. */
  private deadLetter(at: RawAt, code: string, reason: string, raw: Buffer): OutMessage {
    const { topic, partition, offset, index } = at;
    return {
      topic: topics.dlq(this.deps.config.kafka.topicPrefix, 'transformer'),
      key: `${topic}/${partition}/${offset}${index === null ? '' : `#${index}`}`,
      value: Buffer.from(JSON.stringify({ code, reason, topic, partition, offset, index, payload: raw.toString('base64') })),
    };
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.consumer?.disconnect().catch(() => undefined);
    await this.schemas?.stop();
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
  }
}
