import type { Kafka } from 'kafkajs';
import {
  CdcError,
  EnvelopeEncryptor,
  KeyringKekProvider,
  compileQuality,
  deadLetterMessage,
  ensurePipelineTopics,
  isCdcError,
  keyNames,
  pipelineTopics,
  policyKeyNames,
  tokenKeyName,
  topics,
  watchPipeline,
  type Admin,
  type CipherSuiteName,
  type ChangeEvent,
  type ColumnClass,
  type DataKey,
  type KeyProvider,
  type LoadedPipeline,
  type Logger,
  type PipelineChange,
  type PipelineConfig,
  type QualityCheck,
  type RawFrame,
  type RegistryEndpoint,
  type SchemaRegistry,
} from '@cityshare/shared';
import type { TransformerEnv } from './config.js';
import { DepartmentStream, type OutMessage } from './department-stream.js';
import { departmentViews, type DepartmentView } from './department-views.js';
import { SchemaRegistrar } from './schema-registrar.js';
import { PreparedFrames, prepareFrame, type PreparedFrame } from './prepared-frames.js';
import { projectEvent, projectShareKeyDelete, type ViewKeys } from './share-view.js';
import { IncompatibleView } from './table-pauses.js';
import { TableSchemas } from './table-schemas.js';
import type { TransformerMetrics } from './transformer-metrics.js';

export interface TransformerDeps {
  config: PipelineConfig;
  /** The loaded pipeline file: when given, grant, revoke, reclassify and key rotation apply without restart. */
  watch?: LoadedPipeline;
  env: TransformerEnv;
  keys: KeyProvider;
  kafka: Kafka;
  registry: SchemaRegistry;
  /** The same registry, auth and CA included, for checking that it still holds our contracts. */
  registryEndpoint: RegistryEndpoint;
  logger: Logger;
  metrics: TransformerMetrics;
  onFatal: (err: CdcError) => void;
  /** The brokers stopped answering a department stream (false) or answer again (true). */
  onKafkaContact?: (up: boolean) => void;
  /** Starts the transformer again on the changed pipeline file (a source table registered). */
  onRestart?: (why: string) => void;
}

/** Where a raw event was read: its frame's offset and its index in the frame (null: the whole frame). */
interface RawAt {
  topic: string;
  partition: number;
  offset: string;
  index: number | null;
}

/**
 * Consume raw change events, apply each department's grant, produce share records. Every
 * department has its own stream (consumer group and transactional producer, see
 * department-stream.ts), so each gets each change exactly once and one department's
 * pause or failure never holds back another. Grants, keys and quality rules come from
 * the pipeline file and change without restart: streams start, stop or resubscribe as
 * departments gain or lose grants.
 */
export class Transformer {
  private admin: Admin | undefined;
  /** Grants and keys in force; replaced as a whole when the pipeline file or keyring changes. */
  private policy: Policy;
  private readonly registrar: SchemaRegistrar;
  private readonly streams = new Map<string, DepartmentStream>();
  private running = false;
  private schemas: TableSchemas | undefined;
  private watcher: { stop(): void } | undefined;
  private readonly encryptors = new Map<string, EnvelopeEncryptor>();
  private registryCheck: NodeJS.Timeout | undefined;
  /** Raw messages read once for all department streams. */
  private readonly frames: PreparedFrames;
  /** Per view of the policy in force: its share topic and keys (outputOf). */
  private outputs = new WeakMap<DepartmentView, ViewOutput>();

  constructor(private readonly deps: TransformerDeps) {
    this.policy = policyOf(deps.config, deps.keys);
    this.frames = new PreparedFrames(
      deps.env.TRANSFORMER_SHARED_FRAMES_MIB * 1024 * 1024,
      (topic) => [...this.streams.values()].filter((s) => s.rawTopics.includes(topic)).length,
      (outcome) => deps.metrics.frameReads.inc({ outcome }),
    );
    deps.metrics.policyLoaded.set(Date.now() / 1000);
    this.registrar = new SchemaRegistrar({
      registry: deps.registry,
      endpoint: deps.registryEndpoint,
      logger: deps.logger,
      onRegistered: () => deps.metrics.registrations.inc(),
      onReregistered: (topic) => deps.metrics.reregistrations.inc({ topic }),
    });
  }

  /** true once every department stream works (joined, in contact, not wholly paused); else why not. */
  ready(): true | string {
    if (!this.running) return 'starting';
    const waiting = [...this.streams.values()].map((s) => s.ready()).filter((r): r is string => r !== true);
    return waiting.length === 0 ? true : waiting.join('; ');
  }

  /** false once a department stream's consumer stopped for good. */
  get alive(): boolean {
    return [...this.streams.values()].every((s) => s.alive);
  }

  async start(): Promise<void> {
    const { config, kafka, logger } = this.deps;
    const prefix = config.kafka.topicPrefix;
    // Subscriptions are by name (kafkajs resolves patterns only once); the pipeline
    // file says which raw topics exist and which share topics they feed.
    const planned = pipelineTopics(config);
    await ensurePipelineTopics(kafka, config.kafka, [
      ['dlq', topics.dlq(prefix, 'transformer')],
      ['tableSchemas', topics.tableSchemas(prefix)],
      ...planned.raw.map((t) => ['raw', t] as const),
      ...[...planned.share.values()].flat().map((t) => ['share', t] as const),
    ]);
    this.schemas = new TableSchemas(kafka, prefix, logger, () => this.policy.keys, () => this.deps.metrics.forged.inc({ topic_kind: 'table-schemas' }), config.kafka);
    await this.schemas.start();
    if (this.deps.env.TRANSFORMER_ACCEPT_LEGACY_SEALS) {
      logger.warn('TRANSFORMER_ACCEPT_LEGACY_SEALS is set: raw events of readers before frame sealing are read, and their op, key and clear columns are not authenticated; unset it once they are drained');
    }
    await this.reconcileStreams(config, planned.raw);
    this.running = true;
    this.registryCheck = setInterval(() => void this.registrar.verify(), this.deps.env.TRANSFORMER_REGISTRY_CHECK_MS);
    if (this.deps.watch) {
      this.watcher = watchPipeline(this.deps.watch, {
        logger,
        onChange: (change) => this.applyPolicy(change, planned.raw),
        onRejected: () => this.deps.metrics.policyReloads.inc({ outcome: 'rejected' }),
      });
    }
  }

  /**
   * Starts a stream for every department with grants, stops those of departments left
   * without any, and restarts one whose set of granted tables changed (a new
   * subscription); a department keeps its offsets across restarts of its stream.
   */
  private async reconcileStreams(config: PipelineConfig, known: string[]): Promise<void> {
    const prefix = config.kafka.topicPrefix;
    const wanted = new Map<string, string[]>();
    for (const dept of config.departments) {
      const raw = [...new Set(dept.grants.map((g) => {
        const [source, db, table] = g.table.split('.') as [string, string, string];
        return topics.raw(prefix, source, db, table);
      }))].filter((t) => known.includes(t)).sort();
      if (raw.length > 0) wanted.set(dept.name, raw);
    }
    for (const [department, stream] of this.streams) {
      const raw = wanted.get(department);
      if (raw && raw.join() === stream.rawTopics.join()) continue;
      await stream.stop();
      this.streams.delete(department);
      this.deps.logger.info({ department }, raw ? 'department stream restarting for its new grants' : 'department stream stopped: no grants left');
    }
    for (const [department, raw] of wanted) {
      if (this.streams.has(department)) continue;
      const stream = new DepartmentStream({
        department,
        rawTopics: raw,
        kafka: this.deps.kafka,
        prefix,
        transform: (topic, partition, offset, value) => this.transform(department, topic, partition, offset, value),
        registrar: this.registrar,
        viewsOf: (table) => (this.policy.views.get(table) ?? []).filter((v) => v.department === department),
        metrics: this.deps.metrics,
        logger: this.deps.logger,
        onFatal: (err) => this.deps.onFatal(err),
        onKafkaContact: this.deps.onKafkaContact,
        kafkaSettings: config.kafka,
      });
      this.streams.set(department, stream);
      await stream.start();
    }
  }

  /**
   * A new pipeline file or keyring: share topics of new grants are created, then the new
   * grants and keys replace the old ones between two events. A revoked grant produces
   * nothing from the next event on. A new source table starts the transformer again (its
   * raw topic is created and subscribed at start), from the committed offsets.
   */
  private async applyPolicy(change: PipelineChange, known: string[]): Promise<void> {
    const { config } = change.pipeline;
    const planned = pipelineTopics(config);
    const unknown = planned.raw.filter((t) => !known.includes(t));
    if (unknown.length > 0) {
      if (this.deps.onRestart) {
        this.deps.onRestart(`new source tables in the pipeline file (${unknown.join(', ')}): the transformer starts again to read them`);
        return;
      }
      this.deps.logger.warn({ topics: unknown }, 'new source tables in the pipeline file are read after a restart of the transformer');
    }
    await ensurePipelineTopics(this.deps.kafka, config.kafka, [...planned.share.values()].flat().map((t) => ['share', t] as const));
    const next = policyOf(config, change.keys);
    const before = grantsOf(this.policy.views);
    this.policy = next;
    // Frames read under the old policy are read again under the new one.
    this.frames.clear();
    // Encryptors take the active key-encryption keys of the new keyring (rotation).
    this.encryptors.clear();
    const after = grantsOf(this.policy.views);
    this.deps.metrics.policyReloads.inc({ outcome: 'applied' });
    this.deps.metrics.policyLoaded.set(Date.now() / 1000);
    this.deps.logger.info(
      { granted: [...after].filter((g) => !before.has(g)), revoked: [...before].filter((g) => !after.has(g)) },
      'grants in force updated',
    );
    await this.reconcileStreams(config, known);
    for (const stream of this.streams.values()) void stream.pauses.retry();
  }

  /**
   * One department's share records (and dead letters) of one raw message (a frame of change
   * events), read once for every department (prepared-frames.ts). A frame whose seal is
   * missing or does not open, or a message of the earlier per-event layout outside its
   * migration window, is dead-lettered whole, before any of its events is read further (its
   * schema references included): nothing in it is authenticated.
   */
  private async transform(department: string, topic: string, partition: number, offset: string, raw: Buffer | null): Promise<OutMessage[]> {
    if (!raw) return [];
    const policy = this.policy;
    const prepared = await this.frames
      .get(topic, partition, offset, raw, () => prepareFrame(raw, policy, (event) => this.schemas!.resolve(event), this.deps.env.TRANSFORMER_ACCEPT_LEGACY_SEALS))
      .catch((err: unknown) => {
        // A table schema that is not on its topic: the transformer stops before its offsets move.
        if (isCdcError(err)) this.deps.onFatal(err);
        throw err;
      });
    if (prepared.refused) {
      this.count(department, prepared.refused.code);
      return [this.deadLetter(department, { topic, partition, offset, index: null }, prepared.refused.code, prepared.refused.message, raw)];
    }
    const out: OutMessage[] = [];
    const counts: FrameCounts = { in: new Map(), out: new Map() };
    try {
      for (let index = 0; index < prepared.events.length; index++) out.push(...(await this.transformEvent(department, { topic, partition, offset, index }, prepared, index, counts)));
    } finally {
      // Counted once per frame and table: prom-client's label lookup per record costs more than the count.
      for (const [table, n] of counts.in) this.deps.metrics.recordsIn.inc({ table, department }, n);
      for (const [table, n] of counts.out) this.deps.metrics.recordsOut.inc({ department, table }, n);
    }
    return out;
  }

  private async transformEvent(department: string, at: RawAt, prepared: PreparedFrame, index: number, counts: FrameCounts): Promise<OutMessage[]> {
    const { parsed, fault, event, tableRef, images, secrets } = prepared.events[index]!;
    const frame = prepared.frame!;
    if (fault?.step === 'read') return this.deadLetterEvent(department, at, frame, fault.code, fault.message);
    // A repair's event is for its department only (the frame's seal vouches for the field); the others move past it.
    if (parsed!.source.repair !== undefined && parsed!.source.repair.department !== department) return [];
    // Authenticated and resolved before anything else is read from it.
    if (fault && (fault.step === 'open' || fault.step === 'schema')) return this.deadLetterEvent(department, at, frame, fault.code, fault.message, fault.version);
    counts.in.set(tableRef!, (counts.in.get(tableRef!) ?? 0) + 1);
    const view = this.policy.views.get(tableRef!)?.find((v) => v.department === department);
    if (!view) return []; // not (or no longer) granted
    // The event's own problems (a protected column in clear, a broken quality rule) are dead-lettered, still sealed.
    if (fault) return this.deadLetterEvent(department, at, frame, fault.code, fault.message, fault.version);
    const change = event!;
    const { shareTopic, keys } = this.outputOf(view, change);
    try {
      const record = secrets?.shareKey === undefined ? projectEvent(change, images!, view, keys) : projectShareKeyDelete(change, secrets.shareKey, view);
      if (!record) return []; // outside the department's row filter
      const id = this.registrar.knownId(view, change.schema) ?? (await this.registrar.schemaId(shareTopic, view, change.schema));
      const out = [{ topic: shareTopic, key: record.key, value: this.registrar.encode(id, record.value, shareTopic), headers: this.registrar.headersOf(id) }];
      counts.out.set(tableRef!, (counts.out.get(tableRef!) ?? 0) + 1);
      return out;
    } catch (err) {
      if (isCdcError(err, 'SCHEMA_INCOMPATIBLE')) throw new IncompatibleView(department, tableRef!, shareTopic, change.schema, err);
      if (isCdcError(err, 'RECORD_INVALID')) return this.deadLetterEvent(department, at, frame, err.code, err.message, change.source.version);
      // Configuration, registry and schema problems stop the transformer before its
      // offsets move: nothing is skipped, and the error says what to fix.
      const fatal = isCdcError(err) ? err : new CdcError('INTERNAL', (err as Error).message, { cause: err });
      this.deps.onFatal(fatal);
      throw fatal;
    }
  }

  /**
   * Where a view's records go and the keys its rules use, made once per view (a policy change
   * makes new views): the same share topic string and token keys for every record.
   */
  private outputOf(view: DepartmentView, event: ChangeEvent): ViewOutput {
    let output = this.outputs.get(view);
    if (!output) {
      const { department } = view;
      const { keys } = this.policy;
      const tokenKeys = new Map<string | undefined, DataKey>();
      output = {
        shareTopic: topics.share(this.deps.config.kafka.topicPrefix, department, event.source.name, event.source.db, event.source.table),
        keys: {
          encryptor: (suite) => this.encryptorFor(department, suite),
          token: (domain) => {
            let key = tokenKeys.get(domain);
            if (!key) tokenKeys.set(domain, (key = keys.activeKey(tokenKeyName(department, domain))));
            return key;
          },
        },
      };
      this.outputs.set(view, output);
    }
    return output;
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

  /** The dead letter of one event of a frame: the event on its own, its protected columns still sealed. */
  private deadLetterEvent(department: string, at: RawAt, frame: RawFrame, code: string, reason: string, version?: string): OutMessage[] {
    this.count(department, code);
    return [this.deadLetter(department, at, code, reason, frame.standalone(at.index!, this.policy.keys), version)];
  }

  private count(department: string, code: string): void {
    this.deps.metrics.dlq.inc({ reason: code, department });
    if (code === 'RECORD_FORGED') this.deps.metrics.forged.inc({ topic_kind: 'raw' });
  }

  /** Dead letters keep the raw event (or frame), whose protected columns are still sealed. */
  private deadLetter(department: string, at: RawAt, code: string, reason: string, raw: Buffer, version?: string): OutMessage {
    const { topic, partition, offset, index } = at;
    // The source position is the change's correlation id across services' logs; the reason stays in the (protected) topic.
    this.deps.logger.warn({ department, code, topic, partition, offset, index, version }, 'change dead-lettered');
    return deadLetterMessage(topics.dlq(this.deps.config.kafka.topicPrefix, 'transformer'), { code, reason, department, topic, partition, offset, index, version, payload: raw.toString('base64') });
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.registryCheck);
    this.watcher?.stop();
    await Promise.all([...this.streams.values()].map((s) => s.stop()));
    await this.schemas?.stop();
  }
}

/** Records of one raw message for one department, per table, counted into the metrics once. */
interface FrameCounts {
  in: Map<string, number>;
  out: Map<string, number>;
}

interface ViewOutput {
  shareTopic: string;
  keys: ViewKeys;
}

/** `department -> source.db.table` pairs of a set of views, for logging what a reload changed. */
function grantsOf(views: Map<string, DepartmentView[]>): Set<string> {
  return new Set([...views].flatMap(([table, list]) => list.map((v) => `${v.department} -> ${table}`)));
}

/** Grants, quality rules, column classes and keys in force, as one value so a reload swaps them together. */
interface Policy {
  views: Map<string, DepartmentView[]>;
  /** Data-quality check per `source.db.table`. */
  quality: Map<string, QualityCheck>;
  /** Column classes per `source.db.table`: a column they protect never travels in clear. */
  classes: Map<string, Record<string, ColumnClass>>;
  keys: KeyProvider;
}

/**
 * Compiles a pipeline file's policy and checks the keyring holds every key it needs
 * (department keys, token domains, each department's own token key), so a missing key
 * stops the load, not a record.
 */
function policyOf(config: PipelineConfig, keys: KeyProvider): Policy {
  const views = departmentViews(config);
  for (const name of policyKeyNames(config)) keys.activeKey(name);
  const quality = new Map(config.sources.flatMap((s) => s.tables.filter((t) => t.quality).map((t) => [`${s.name}.${t.name}`, compileQuality(t.quality)] as const)));
  const classes = new Map(config.sources.flatMap((s) => s.tables.map((t) => [`${s.name}.${t.name}`, t.columns as Record<string, ColumnClass>] as const)));
  return { views, quality, classes, keys };
}
