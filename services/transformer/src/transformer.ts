import type { Consumer, Kafka, Producer } from 'kafkajs';
import {
  CdcError,
  EnvelopeEncryptor,
  compileQuality,
  qualityError,
  tokenDomainKeyName,
  type CipherSuiteName,
  type QualityCheck,
  KeyringKekProvider,
  decodeRawMessage,
  ensureTopics,
  watchPipeline,
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
  type LoadedPipeline,
  type PipelineConfig,
  type PipelineChange,
  type SchemaRegistry,
} from '@cityshare/shared';
import { departmentViews, type DepartmentView } from './department-views.js';
import { SchemaRegistrar } from './schema-registrar.js';
import { TableSchemas } from './table-schemas.js';
import { openImages, projectEvent, type RowImages, type ViewKeys } from './share-view.js';
import { IncompatibleView, TablePauses } from './table-pauses.js';
import type { TransformerMetrics } from './transformer-metrics.js';
import type { TransformerEnv } from './config.js';

export interface TransformerDeps {
  config: PipelineConfig;
  /** The loaded pipeline file: when given, grant, revoke, reclassify and key rotation apply without restart. */
  watch?: LoadedPipeline;
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
  /** Grants and keys in force; replaced as a whole when the pipeline file or keyring changes. */
  private policy: Policy;
  private readonly registrar: SchemaRegistrar;
  private running = false;
  private schemas: TableSchemas | undefined;
  private watcher: { stop(): void } | undefined;
  private readonly pauses: TablePauses;
  private readonly encryptors = new Map<string, EnvelopeEncryptor>();

  constructor(private readonly deps: TransformerDeps) {
    this.policy = policyOf(deps.config, deps.keys);
    deps.metrics.policyLoaded.set(Date.now() / 1000);
    this.registrar = new SchemaRegistrar(deps.registry, () => deps.metrics.registrations.inc());
    this.pauses = new TablePauses(() => this.consumer!, this.registrar, (table) => this.policy.views.get(table) ?? [], deps.metrics, deps.logger);
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
        if (!isRunning() || isStale() || batch.messages.length === 0 || this.pauses.isPaused(batch.topic)) return;
        const out: OutMessage[] = [];
        try {
          for (const message of batch.messages) {
            out.push(...(await this.transform(batch.topic, batch.partition, message.offset, message.value)));
          }
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
    if (this.deps.watch) {
      this.watcher = watchPipeline(this.deps.watch, {
        logger,
        onChange: (change) => this.applyPolicy(change, planned.raw),
        onRejected: () => this.deps.metrics.policyReloads.inc({ outcome: 'rejected' }),
      });
    }
  }

  /**
   * A new pipeline file or keyring: share topics of new grants are created, then the new
   * grants and keys replace the old ones between two events. A revoked grant produces
   * nothing from the next event on. New source tables need a restart (the consumer
   * subscribes to raw topics by name at start).
   */
  private async applyPolicy(change: PipelineChange, subscribed: string[]): Promise<void> {
    const { config } = change.pipeline;
    const planned = pipelineTopics(config);
    const unsubscribed = planned.raw.filter((t) => !subscribed.includes(t));
    if (unsubscribed.length > 0) this.deps.logger.warn({ topics: unsubscribed }, 'new source tables in the pipeline file are read after a restart of the transformer');
    await ensureTopics(this.admin!, [...planned.share.values()].flat().map((t) => topicSpec(config.kafka, t)));
    const before = grantsOf(this.policy.views);
    this.policy = policyOf(config, change.keys);
    // Encryptors take the active key-encryption keys of the new keyring (rotation).
    this.encryptors.clear();
    const after = grantsOf(this.policy.views);
    this.deps.metrics.policyReloads.inc({ outcome: 'applied' });
    void this.pauses.retry();
    this.deps.metrics.policyLoaded.set(Date.now() / 1000);
    this.deps.logger.info(
      { granted: [...after].filter((g) => !before.has(g)), revoked: [...before].filter((g) => !after.has(g)) },
      'grants in force updated',
    );
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
    const { config, metrics } = this.deps;
    const { views, keys } = this.policy;
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
    const tableViews = views.get(tableRef) ?? [];
    const quality = this.policy.quality.get(tableRef);
    if (tableViews.length === 0) return [];
    // The event's own problems (seal that does not open, broken quality rule) reject it
    // for every department: dead-lettered once, still sealed.
    let images: RowImages;
    try {
      images = openImages(event, keys);
      const violations = quality && event.op !== 'd' && images.after ? quality(images.after) : [];
      if (violations.length > 0) throw qualityError(tableRef, violations);
    } catch (err) {
      if (!isCdcError(err)) throw err;
      metrics.dlq.inc({ reason: err.code });
      return [this.deadLetter(at, err.code, err.message, payload())];
    }
    const out: OutMessage[] = [];
    for (const view of tableViews) {
      const viewKeys: ViewKeys = {
        encryptor: (suite) => this.encryptorFor(view.department, suite),
        token: (domain) => keys.activeKey(domain === undefined ? keyNames.department(view.department) : tokenDomainKeyName(domain)),
      };
      const shareTopic = topics.share(prefix, view.department, event.source.db, event.source.table);
      try {
        const record = projectEvent(event, images, view, viewKeys);
        if (!record) continue; // outside the department's row filter
        const id = await this.registrar.schemaId(shareTopic, view, event.schema);
        out.push({ topic: shareTopic, key: record.key, value: await this.registrar.encode(id, record.value, shareTopic) });
        metrics.recordsOut.inc({ department: view.department, table: tableRef });
      } catch (err) {
        if (isCdcError(err, 'SCHEMA_INCOMPATIBLE')) throw new IncompatibleView(view.department, tableRef, shareTopic, event.schema, err);
        if (isCdcError(err, 'RECORD_INVALID')) {
          metrics.dlq.inc({ reason: err.code });
          out.push(this.deadLetter(at, err.code, `${view.department}: ${err.message}`, payload()));
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

  /** The department's envelope encryptor for a suite: one data key for many values, wrapped by its key-encryption key. */
  private encryptorFor(department: string, suite: CipherSuiteName): EnvelopeEncryptor {
    const id = `${department}/${suite}`;
    let encryptor = this.encryptors.get(id);
    if (!encryptor) {
      encryptor = new EnvelopeEncryptor(new KeyringKekProvider(this.policy.keys), keyNames.department(department), { suite });
      this.encryptors.set(id, encryptor);
    }
    return encryptor;
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
    this.watcher?.stop();
    this.pauses.stop();
    await this.consumer?.disconnect().catch(() => undefined);
    await this.schemas?.stop();
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
  }
}

/** `department -> source.db.table` pairs of a set of views, for logging what a reload changed. */
function grantsOf(views: Map<string, DepartmentView[]>): Set<string> {
  return new Set([...views].flatMap(([table, list]) => list.map((v) => `${v.department} -> ${table}`)));
}

/** Grants, quality rules and keys in force, as one value so a reload swaps them together. */
interface Policy {
  views: Map<string, DepartmentView[]>;
  /** Data-quality check per `source.db.table`. */
  quality: Map<string, QualityCheck>;
  keys: KeyProvider;
}

/**
 * Compiles a pipeline file's policy and checks the keyring holds every key it needs
 * (department keys, token domains), so a missing key stops the load, not a record.
 */
function policyOf(config: PipelineConfig, keys: KeyProvider): Policy {
  const views = departmentViews(config);
  for (const list of views.values()) {
    for (const view of list) {
      keys.activeKey(keyNames.department(view.department));
      for (const rule of view.rules) if (rule.action === 'tokenize' && rule.domain !== undefined) keys.activeKey(tokenDomainKeyName(rule.domain));
    }
  }
  const quality = new Map(config.sources.flatMap((s) => s.tables.filter((t) => t.quality).map((t) => [`${s.name}.${t.name}`, compileQuality(t.quality)] as const)));
  return { views, quality, keys };
}
