import { randomInt } from 'node:crypto';
import { createConnection, type Connection, type ConnectionOptions } from 'mysql2/promise';
import type { Kafka, Producer } from 'kafkajs';
import {
  ContactWatch,
  CdcError,
  ensureTopics,
  keyNames,
  producerConfig,
  recordMacHeaders,
  sealJson,
  sourceConnectionOptions,
  topicSpec,
  topics,
  watchPipeline,
  withoutSecrets,
  type BinlogPosition,
  type LoadedPipeline,
  type ColumnClass,
  type KeyProvider,
  type Op,
  type Logger,
  type PipelineConfig,
  type SourceConfig,
  type TableSchema,
} from '@cityshare/shared';
import { BinlogListener, type RowsChange } from './binlog-listener.js';
import { CheckpointStore } from './checkpoint-store.js';
import { oversizeLetter, readerDlqTopic } from './dead-letter.js';
import { canonicalKey, schemaRef, type BuildContext } from './event-builder.js';
import { encoderFor } from './event-encoder.js';
import { RawPublisher, oversizeEventBytes } from './raw-publisher.js';
import type { ReaderMetrics } from './reader-metrics.js';
import { Snapshotter, type RawRow, type SnapshotState } from './snapshot/snapshotter.js';
import { pointOf, type WatermarkWindow } from './snapshot/watermark-window.js';
import { binlogEnd, binlogFiles, binlogStart, checkSource, otherBinlogReaders } from './source-check.js';
import { SourceMonitor, assertNotPurged } from './source-monitor.js';
import { SignalListener, type ReaderSignal } from './signal-listener.js';
import { ddlTables, redactDdl } from './ddl-statement.js';
import { TableCatalog } from './table-catalog.js';
import type { ReaderEnv } from './config.js';

export interface ReaderDeps {
  config: PipelineConfig;
  source: SourceConfig;
  env: ReaderEnv;
  keys: KeyProvider;
  kafka: Kafka;
  logger: Logger;
  metrics: ReaderMetrics;
  /** The loaded pipeline file: when given, column classes apply without restart (reclassify). */
  watch?: LoadedPipeline;
  /** Called once when the reader cannot go on; the process should exit and be restarted. */
  onFatal: (err: CdcError) => void;
  /** The brokers stopped acknowledging (false) or acknowledge again (true). */
  onKafkaContact?: (up: boolean) => void;
  /** Starts the reader again on the changed pipeline file (a table registered or unregistered). */
  onRestart?: (why: string) => void;
}

/** Value options shared by the binlog decoder and snapshot reads, so both yield the same values. */
export const exactValueOptions = {
  dateStrings: true,
  timezone: 'Z',
  supportBigNumbers: true,
  bigNumberStrings: true,
  // JSON as the exact text stored (big integers intact), never parsed.
  jsonStrings: true,
  charset: 'utf8mb4',
} as const;

interface OpenWindow {
  window: WatermarkWindow<RawRow>;
  schema: TableSchema;
  state?: SnapshotState;
  emitted?: () => void;
}

/**
 * Runs one source: checks it, resumes from the last checkpoint, streams the binlog into
 * raw topics, snapshots tables that need it alongside the stream, and checkpoints each
 * transaction once Kafka has acknowledged it.
 */
export class Reader {
  private producer: Producer | undefined;
  /** The replica server id of this run (replicaServerId). */
  private serverId = 0;
  private listener: BinlogListener | undefined;
  private publisher: RawPublisher<SnapshotState> | undefined;
  private checkpoints: CheckpointStore | undefined;
  private snapshotConn: Connection | undefined;
  private snapshotter: Snapshotter | undefined;
  private monitor: SourceMonitor | undefined;
  private signals: SignalListener | undefined;
  private snapshotRunning: Promise<void> | undefined;
  private readonly publishedSchemas = new Set<string>();
  private readonly partitions = new Map<string, number>();
  private watcher: { stop(): void } | undefined;
  private open: OpenWindow | undefined;
  private acked: BinlogPosition | undefined;
  private ackedSnapshot: SnapshotState | undefined;
  private saved: BinlogPosition | undefined;
  private timers: NodeJS.Timeout[] = [];
  private streaming = false;
  private contact: ContactWatch | undefined;
  private ctx!: BuildContext;
  /** Host, account and TLS material of the source, read once: every connection of the reader uses them. */
  private readonly connection: ConnectionOptions;
  /** The keyring in force (rotation applies without restart). */
  private keys: KeyProvider;

  constructor(private readonly deps: ReaderDeps) {
    this.connection = sourceConnectionOptions(deps.source);
    this.keys = deps.keys;
  }

  /** true while streaming with the brokers acknowledging; else why not. */
  ready(): true | string {
    if (!this.streaming) return 'starting';
    return this.contact?.check() ?? true;
  }

  async start(): Promise<void> {
    const { config, source, logger, env } = this.deps;
    if (!source.connection.ssl) {
      logger.warn({ source: source.name, host: source.connection.host }, 'the source connection is in clear (no sources[].connection.ssl): the binlog stream and the password hash exchange can be read on the network');
    }
    const conn = await this.connect();
    let catalog: TableCatalog;
    let startAt: BinlogPosition;
    let snapshotState: SnapshotState;
    try {
      const server = await checkSource(conn);
      this.serverId = replicaServerId(env.READER_SERVER_ID ?? source.serverId, server.serverId);
      logger.info({ source: source.name, version: server.version, replicaServerId: this.serverId }, 'source checked');
      // Another binlog stream on this account: a second active reader of the source (no lease), or one still stopping.
      const others = await otherBinlogReaders(conn);
      this.deps.metrics.otherBinlogReaders.set({ source: source.name }, others);
      if (others > 0) logger.warn({ code: 'READER_DUPLICATE', others }, `${others} other binlog connection(s) of this account read the source: a second reader of ${source.name} beside this one publishes every change twice (targets keep the newest, departments reading Kafka see repeats); run it as a standby (READER_LEASE_REDIS_URL)`);
      catalog = await TableCatalog.load(conn, source);
      await this.createTopics(catalog);

      this.producer = this.deps.kafka.producer(producerConfig());
      await this.producer.connect();
      this.checkpoints = new CheckpointStore(this.deps.kafka, this.producer, config.kafka.topicPrefix, source.name, logger, {
        keys: () => this.keys,
        onForged: () => this.deps.metrics.forged.inc({ topic_kind: 'checkpoints' }),
        adoptUnsigned: env.READER_ADOPT_UNSIGNED_CHECKPOINT,
      });
      let checkpoint = await this.checkpoints.load();
      if (checkpoint) {
        try {
          assertNotPurged(checkpoint, await binlogFiles(conn));
        } catch (err) {
          if (env.READER_ON_PURGED !== 'resnapshot') throw err;
          logger.warn({ needed: checkpoint.file }, 'checkpoint binlog purged: starting at the binlog end and re-snapshotting every table');
          checkpoint = null;
        }
      }
      startAt = checkpoint ?? (env.READER_START_FROM === 'earliest' ? await binlogStart(conn) : await binlogEnd(conn));
      snapshotState = checkpoint?.snapshot ?? {};
      // A table no longer registered is forgotten: registered again later, it is snapshotted again.
      const registeredNow = new Set(catalog.names());
      for (const t of Object.keys(snapshotState)) if (!registeredNow.has(t)) delete snapshotState[t];
      if (env.READER_SNAPSHOT === 'never') {
        for (const t of catalog.names()) snapshotState[t] ??= { lastKey: null, done: true, rows: 0 };
      }
      // Written at every start: the first checkpoint, or an adopted unsigned one signed.
      await this.checkpoints.save(startAt, snapshotState);
      this.acked = this.saved = startAt;
      this.ackedSnapshot = snapshotState;
    } finally {
      await conn.end();
    }

    let classes = new Map(source.tables.map((t) => [t.name, t.columns as Record<string, ColumnClass>]));
    if (this.deps.watch) {
      // Reclassification seals (or stops sealing) columns from the next event on; a table
      // registered or unregistered starts the reader again from its checkpoint (a new table is
      // snapshotted while streaming goes on); a changed connection needs a restart.
      const registered = JSON.stringify(source.tables.map((t) => t.name));
      this.watcher = watchPipeline(this.deps.watch, {
        logger,
        onChange: ({ pipeline, keys }) => {
          const next = pipeline.config.sources.find((s) => s.name === source.name);
          if (!next) throw new CdcError('CONFIG_INVALID', `source ${source.name} is no longer in the pipeline file; the reader keeps its last classes until it is stopped`);
          if (JSON.stringify(next.tables.map((t) => t.name)) !== registered) {
            const why = 'registered tables changed in the pipeline file: the reader starts again from its checkpoint to snapshot and stream them';
            if (this.deps.onRestart) this.deps.onRestart(why);
            else logger.warn('registered tables changed in the pipeline file: restart the reader to snapshot and stream them');
          }
          classes = new Map(next.tables.map((t) => [t.name, t.columns as Record<string, ColumnClass>]));
          // A rotated pipeline key seals and signs from now on; the transformer still opens the old one.
          this.keys = keys;
          this.ctx.pipelineKey = keys.activeKey(keyNames.pipeline);
        },
      });
    }
    this.ctx = {
      sourceName: source.name,
      serverId: this.serverId,
      classes: (db, table) => classes.get(`${db}.${table}`) ?? {},
      pipelineKey: this.deps.keys.activeKey(keyNames.pipeline),
    };
    this.publisher = this.createPublisher();
    this.contact = new ContactWatch({ silentMs: () => this.publisher?.stalledMs ?? 0, what: `reader of ${this.deps.source.name}`, brokers: this.deps.config.kafka.brokers, logger: this.deps.logger, onChange: this.deps.onKafkaContact });
    this.listener = new BinlogListener(
      { connection: this.connection, valueOptions: exactValueOptions, serverId: this.serverId, catalog, heartbeatSeconds: env.READER_HEARTBEAT_SECONDS },
      {
        onRows: (change) => this.onRows(change),
        onCommit: (position, tsMs, summary) => {
          if (env.READER_TRANSACTION_MARKERS && summary.events > 0) {
            this.publisher!.enqueueRecord({
              topic: topics.transactions(config.kafka.topicPrefix, source.name),
              key: source.name,
              value: Buffer.from(JSON.stringify({ status: 'END', id: summary.gtid ?? `${position.file}:${position.pos}`, gtid: summary.gtid, file: position.file, pos: position.pos, ts_ms: tsMs, event_count: summary.events, data_collections: summary.tables })),
            });
          }
          this.publisher!.markBoundary(position, tsMs);
          this.maybeEmitWindow(pointOf(position));
        },
        onSchemaChange: (db, statement, position, tsMs) => this.onSchemaChange(catalog, db, statement, position, tsMs),
        onHeartbeat: (position) => this.onHeartbeat(position),
        onError: (err) => this.fail(err),
      },
      logger,
    );
    await this.listener.start(startAt);
    this.streaming = true;
    this.timers.push(setInterval(() => void this.checkpoint(), env.READER_CHECKPOINT_INTERVAL_MS));
    // An idle source sends no events; the stream's own resume point tells when it passed H.
    this.timers.push(setInterval(() => {
      const at = this.listener?.safePosition();
      if (at) this.maybeEmitWindow(pointOf(at));
    }, 100));
    await this.startSnapshot(catalog, snapshotState);
  }

  private async connect(): Promise<Connection> {
    const { source, logger } = this.deps;
    const conn = await createConnection({ ...this.connection, ...exactValueOptions }).catch((cause: Error) => {
      throw new CdcError('SOURCE_UNREACHABLE', `cannot connect to source ${source.name} at ${source.connection.host}:${source.connection.port}${source.connection.ssl ? ' (TLS)' : ''}: ${withoutSecrets(cause.message, { secrets: [source.connection.password] })}`, { cause });
    });
    // A connection lost between queries is reported here instead of ending the process; the next query on it fails with its code.
    conn.on('error', (err: Error) => logger.warn({ code: 'SOURCE_UNREACHABLE', source: source.name, reason: withoutSecrets(err.message, { secrets: [source.connection.password] }) }, 'source connection lost'));
    return conn;
  }

  private async createTopics(catalog: TableCatalog): Promise<void> {
    const { config, source, kafka } = this.deps;
    const admin = kafka.admin();
    await admin.connect().catch((cause: Error) => {
      throw new CdcError('KAFKA_UNREACHABLE', `cannot reach Kafka at ${config.kafka.brokers.join(',')}: ${cause.message}`, { cause });
    });
    try {
      const prefix = config.kafka.topicPrefix;
      const raw = catalog.names().map((name) => {
        const [db, table] = name.split('.') as [string, string];
        return topics.raw(prefix, source.name, db, table);
      });
      await ensureTopics(admin, [
        // Checkpoints stay a minute before compaction may drop older ones, for inspection.
        topicSpec(config.kafka, topics.checkpoints(prefix), 'compacted', [{ name: 'min.compaction.lag.ms', value: '60000' }]),
        topicSpec(config.kafka, topics.tableSchemas(prefix), 'compacted'),
        topicSpec(config.kafka, topics.signals(prefix), 'single'),
        topicSpec(config.kafka, topics.heartbeats(prefix), 'compacted'),
        topicSpec(config.kafka, topics.transactions(prefix, source.name), 'single'),
        topicSpec(config.kafka, topics.schemaChanges(prefix, source.name), 'single'),
        topicSpec(config.kafka, readerDlqTopic(prefix, source.name), 'single'),
        ...raw.map((topic) => topicSpec(config.kafka, topic)),
      ]);
      // Frames are placed by partition, so the reader uses each raw topic's actual count.
      const { topics: meta } = await admin.fetchTopicMetadata({ topics: raw });
      for (const t of meta) this.partitions.set(t.name, t.partitions.length);
    } finally {
      await admin.disconnect();
    }
  }

  private createPublisher(): RawPublisher<SnapshotState> {
    const { env, metrics, logger, source } = this.deps;
    const labels = { source: source.name };
    return new RawPublisher<SnapshotState>(
      this.producer!,
      {
        maxBytes: env.READER_QUEUE_MAX_BYTES,
        maxFrameEvents: env.READER_FRAME_MAX_EVENTS,
        partitionsOf: (topic) => this.partitions.get(topic) ?? 1,
        // Under the pipeline key in force when the frame closes (a rotated key seals from then on).
        seal: (json, aad) => sealJson(this.ctx.pipelineKey, json, aad),
        onAcked: (position, tsMs, snapshot) => {
          this.acked = position;
          metrics.binlogFile.set(labels, Number(/\.(\d+)$/.exec(position.file)?.[1] ?? 0));
          metrics.binlogPosition.set(labels, position.pos);
          if (snapshot) this.ackedSnapshot = snapshot;
          metrics.queueBytes.set(labels, this.publisher?.queuedBytes ?? 0);
          metrics.lagSeconds.set(labels, Math.max(0, (Date.now() - tsMs) / 1000));
          metrics.lastCommitSeconds.set(labels, tsMs / 1000);
        },
        onPressure: (full) => {
          metrics.paused.set(labels, full ? 1 : 0);
          if (full) this.listener?.pause();
          else this.listener?.resume();
        },
        onError: (err) => this.fail(new CdcError('KAFKA_UNREACHABLE', `publishing to Kafka failed: ${err.message}`, { cause: err })),
      },
      logger,
    );
  }

  /**
   * DDL: rows after it decode with the table map they carry (binlog_row_metadata=FULL),
   * so nothing here is needed for correctness. The catalog is refreshed for snapshots,
   * and a statement that changes a registered table goes to the schema-change topic, in
   * stream order, for downstream, without its literals. Other statements (another
   * database's tables, CREATE USER … IDENTIFIED BY, GRANT) are not published.
   */
  private onSchemaChange(catalog: TableCatalog, db: string, statement: string, position: BinlogPosition, tsMs: number): void {
    const { config, source, logger } = this.deps;
    const registered = new Set(catalog.names());
    const changed = ddlTables(statement, db) ?? [];
    const touched = [...registered].filter((name) => changed.some((c) => c === name || (c.endsWith('.*') && name.startsWith(c.slice(0, -1)))));
    this.deps.metrics.schemaChanges.inc({ source: source.name, registered: touched.length > 0 ? 'true' : 'false' });
    // Other tables' DDL (a shared server's every migration) is only counted, never logged.
    if (touched.length === 0) return;
    // The statement may hold literals (DEFAULT values), so only its verb is logged.
    logger.info({ db, ddl: /^\s*\w+\s+\w+/.exec(statement)?.[0], tables: touched, file: position.file, pos: position.pos }, 'schema change');
    this.publisher!.enqueueRecord({
      topic: topics.schemaChanges(config.kafka.topicPrefix, source.name),
      key: source.name,
      value: Buffer.from(JSON.stringify({ source: source.name, db, ddl: redactDdl(statement), tables: touched, file: position.file, pos: position.pos, gtid: position.gtid ?? null, ts_ms: tsMs })),
    });
    for (const name of touched) {
      const [tdb, table] = name.split('.') as [string, string];
      if (!this.snapshotConn) continue;
      void catalog.reload(this.snapshotConn, source.name, tdb, table).then(
        (problem) => problem && logger.warn({ code: problem.code, table: name }, problem.message),
        (err: Error) => logger.warn({ err: err.message, table: name }, 'catalog reload failed'),
      );
    }
  }

  /**
   * The source is idle and the stream at its end: the position becomes a checkpoint
   * (past transactions of unregistered tables too), lag reads 0 once it is acknowledged,
   * and downstream sees the reader alive on `<prefix>.heartbeats`.
   */
  private onHeartbeat(position: BinlogPosition): void {
    const { config, source, metrics } = this.deps;
    const now = Date.now();
    metrics.heartbeats.inc({ source: source.name });
    metrics.lastEventSeconds.set({ source: source.name }, now / 1000);
    this.publisher!.enqueueRecord({
      topic: topics.heartbeats(config.kafka.topicPrefix),
      key: source.name,
      value: Buffer.from(JSON.stringify({ source: source.name, file: position.file, pos: position.pos, gtid: position.gtid ?? null, ts_ms: now })),
    });
    this.publisher!.markBoundary(position, now);
    this.maybeEmitWindow(pointOf(position));
  }

  private onRows(change: RowsChange): void {
    const point = pointOf({ file: change.file, pos: change.eventPos });
    const open = this.open;
    if (open) {
      const table = `${change.schema.db}.${change.schema.table}`;
      open.window.observe(table, point, change.rows.flatMap((r) => [r.before, r.after].filter((x) => x !== null).map((img) => canonicalKey(change.schema, img))));
      // This event lies past H: the chunk goes first, so it precedes the event in every partition.
      this.maybeEmitWindow(point);
    }
    this.publish(change);
  }

  private publish(change: RowsChange): void {
    const { metrics, source, config } = this.deps;
    const { db, table } = change.schema;
    const topic = topics.raw(config.kafka.topicPrefix, source.name, db, table);
    const publisher = this.publisher!;
    // A schema goes out before the first event that references it (same ordered queue).
    const { ref, json } = schemaRef(change.schema);
    if (!this.publishedSchemas.has(ref)) {
      this.publishedSchemas.add(ref);
      // Signed: the transformer uses only table schemas the pipeline wrote (a forged one could misalign columns).
      const schemaTopic = topics.tableSchemas(config.kafka.topicPrefix);
      const value = Buffer.from(json);
      publisher.enqueueRecord({ topic: schemaTopic, key: ref, value, headers: recordMacHeaders(this.keys, schemaTopic, ref, value) });
    }
    const ctx = this.ctx;
    const counts: Record<Op, number> = { c: 0, u: 0, d: 0, r: 0 };
    const limit = this.deps.env.READER_EVENT_MAX_BYTES;
    encoderFor(change.schema, ctx.classes(db, table), ctx.pipelineKey).encode(change, ctx.sourceName, ctx.serverId, ref, Date.now(), (key, event, secrets, op, row) => {
      const bytes = oversizeEventBytes(event, secrets, limit);
      if (bytes !== null) this.deadLetterOversize({ change, op, row, bytes, limit });
      else {
        publisher.enqueueEvent(topic, key, event, secrets);
        counts[op]++;
      }
    });
    publisher.enqueued();
    for (const op of ['c', 'u', 'd', 'r'] as const) if (counts[op] > 0) metrics.events.inc({ source: source.name, table: `${db}.${table}`, op }, counts[op]);
    if (change.kind !== 'snapshot') metrics.lastEventSeconds.set({ source: source.name }, Date.now() / 1000);
    metrics.queueBytes.set({ source: source.name }, this.publisher!.queuedBytes);
  }

  /**
   * A change event too large for a Kafka message would fail every produce (and every
   * restart) until its binlog is purged: it goes, in stream order, to the reader's
   * dead-letter topic as a small record, and the events around it flow on.
   */
  private deadLetterOversize(event: Parameters<typeof oversizeLetter>[2]): void {
    const { config, source, metrics, logger } = this.deps;
    const { message, letter } = oversizeLetter(this.keys, { prefix: config.kafka.topicPrefix, source: source.name }, event);
    this.publisher!.enqueueRecord(message);
    metrics.dlq.inc({ source: source.name, table: `${letter.db}.${letter.table}`, reason: letter.code });
    logger.warn({ code: letter.code, table: `${letter.db}.${letter.table}`, op: letter.op, version: letter.version, snapshot: letter.snapshot, bytes: letter.bytes, limit: letter.limit, topic: message.topic }, 'change event too large for Kafka: dead-lettered, not delivered');
  }

  /** Emits the open snapshot chunk once the stream has reached its high watermark. */
  private maybeEmitWindow(streamPoint: string): void {
    const open = this.open;
    if (!open?.emitted || !open.window.reachedBy(streamPoint)) return;
    this.open = undefined;
    const rows = open.window.reconcile();
    const at = this.listener!.safePosition()!;
    const high = open.window.highPosition!;
    if (rows.length > 0) {
      this.publish({
        kind: 'snapshot',
        schema: open.schema,
        rows: rows.map((after) => ({ before: null, after })),
        file: high.file,
        eventPos: high.pos,
        gtid: null,
        tsMs: Date.now(),
        txOffset: 0,
      });
    }
    this.publisher!.markBoundary(at, Date.now(), open.state);
    open.emitted();
  }

  private async startSnapshot(catalog: TableCatalog, state: SnapshotState): Promise<void> {
    const { env, logger, metrics, source } = this.deps;
    this.snapshotConn = await this.connect();
    await this.snapshotConn.query("SET time_zone = '+00:00'");
    this.monitor = new SourceMonitor(this.snapshotConn, source.name, () => this.acked, metrics, logger);
    this.monitor.start();
    this.snapshotter = new Snapshotter(
      this.snapshotConn,
      catalog,
      structuredClone(state),
      {
        openWindow: (window, schema) => {
          this.open = { window, schema };
        },
        emitted: (window, snapshot) =>
          new Promise<void>((resolve) => {
            if (this.open?.window !== window) throw new Error('snapshot window mismatch');
            this.open.state = snapshot;
            this.open.emitted = resolve;
            const at = this.listener?.safePosition();
            if (at) this.maybeEmitWindow(pointOf(at));
          }),
        waitForRoom: () => this.publisher!.waitForRoom(),
      },
      { chunkSize: env.READER_SNAPSHOT_CHUNK_ROWS, source: source.name },
      logger,
      metrics,
    );
    this.runSnapshots();
    this.signals = new SignalListener(this.deps.kafka, this.deps.config.kafka.topicPrefix, source.name, (signal) => this.onSignal(signal), logger, {
      keys: () => this.keys,
      onForged: () => metrics.forged.inc({ topic_kind: 'signals' }),
    });
    await this.signals.start();
  }

  private runSnapshots(): void {
    if (this.snapshotRunning || !this.snapshotter || this.snapshotter.pending().length === 0) return;
    const { logger } = this.deps;
    this.snapshotRunning = this.snapshotter.run().then(
      () => {
        this.snapshotRunning = undefined;
        if (this.streaming) logger.info('snapshot complete');
        this.runSnapshots();
      },
      (err: Error) => this.fail(isFatal(err)),
    );
  }

  private onSignal(signal: ReaderSignal): void {
    for (const table of signal.tables) {
      try {
        this.snapshotter!.request(table);
        this.deps.logger.info({ table }, 're-snapshot requested');
      } catch (err) {
        this.deps.logger.warn({ table, err: (err as Error).message }, 're-snapshot refused');
      }
    }
    this.runSnapshots();
  }

  private async checkpoint(): Promise<void> {
    const position = this.acked;
    if (!position || !this.checkpoints || position === this.saved) return;
    try {
      await this.checkpoints.save(position, this.ackedSnapshot);
      this.saved = position;
      this.deps.metrics.checkpoints.inc({ source: this.deps.source.name });
    } catch (err) {
      this.deps.logger.warn({ err }, 'checkpoint write failed; will retry');
    }
  }

  private fail(err: CdcError): void {
    this.streaming = false;
    this.deps.onFatal(err);
  }

  async stop(): Promise<void> {
    this.streaming = false;
    this.contact?.stop();
    for (const t of this.timers) clearInterval(t);
    this.watcher?.stop();
    this.snapshotter?.stop();
    this.monitor?.stop();
    await this.signals?.stop();
    this.listener?.stop();
    try {
      await this.publisher?.drain();
      await this.checkpoint();
    } finally {
      await this.producer?.disconnect();
      await this.snapshotConn?.end().catch(() => undefined);
    }
  }
}

function isFatal(err: Error): CdcError {
  return err instanceof CdcError ? err : new CdcError('SOURCE_UNREACHABLE', `snapshot failed: ${err.message}`, { cause: err });
}

/**
 * The replica server id this run connects with: the one set, or a random one of its own in
 * 2^30..2^31-1 (clear of the small ids operators give servers by hand). Never the source's own.
 */
export function replicaServerId(configured: number | undefined, sourceServerId: number): number {
  if (configured === sourceServerId) throw new CdcError('CONFIG_INVALID', `the reader's replica server id ${configured} is the source's own server_id: give the reader another (sources[].serverId or READER_SERVER_ID), or leave it out`);
  if (configured !== undefined) return configured;
  for (;;) {
    const id = randomInt(0x40000000, 0x80000000);
    if (id !== sourceServerId) return id;
  }
}
