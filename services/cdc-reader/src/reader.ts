import { randomInt } from 'node:crypto';
import { createConnection, type Connection, type ConnectionOptions } from 'mysql2/promise';
import type { Kafka, Producer } from 'kafkajs';
import {
  ContactWatch,
  CdcError,
  keyNames,
  producerConfig,
  recordMacHeaders,
  sealJson,
  sourceConnectionOptions,
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
} from '@cityshare/shared';
import { BinlogListener, type RowsChange, type TransactionSummary } from './binlog-listener.js';
import { CheckpointStore } from './checkpoint-store.js';
import { changedRegisteredTables, ddlVerb, redactDdl } from './ddl-statement.js';
import { oversizeLetter } from './dead-letter.js';
import { schemaRef, type BuildContext } from './event-builder.js';
import { encoderFor } from './event-encoder.js';
import { OrderedSender } from './ordered-sender.js';
import { RawFrameWriter, oversizeEventBytes } from './raw-frame-writer.js';
import type { ReaderMetrics } from './reader-metrics.js';
import { heartbeatMessage, schemaChangeMessage, transactionMessage } from './reader-records.js';
import { ensureReaderTopics } from './reader-topics.js';
import { SnapshotCoordinator } from './snapshot/snapshot-coordinator.js';
import type { SnapshotState } from './snapshot/snapshotter.js';
import { binlogEnd, binlogFiles, binlogStart, checkSource, otherBinlogReaders } from './source-check.js';
import { SourceMonitor, assertNotPurged } from './source-monitor.js';
import { SignalListener } from './signal-listener.js';
import { TableCatalog } from './table-catalog.js';
import { exactValueOptions } from './source-values.js';
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


/**
 * Runs one source: checks it, resumes from the last checkpoint, streams the binlog into
 * raw topics in order, and checkpoints each transaction once Kafka has acknowledged it.
 * Snapshots run alongside (snapshot/snapshot-coordinator.ts), shown every change the
 * stream publishes.
 */
export class Reader {
  private producer: Producer | undefined;
  /** The replica server id of this run (replicaServerId). */
  private serverId = 0;
  private catalog!: TableCatalog;
  private listener: BinlogListener | undefined;
  private sender: OrderedSender<SnapshotState> | undefined;
  private checkpoints: CheckpointStore | undefined;
  /** Queries beside the binlog stream: snapshot chunks, catalog reloads after DDL, the source monitor. */
  private queryConn: Connection | undefined;
  private snapshots: SnapshotCoordinator | undefined;
  private monitor: SourceMonitor | undefined;
  private signals: SignalListener | undefined;
  private readonly publishedSchemas = new Set<string>();
  /** Partitions per raw topic: frames are placed by partition. */
  private partitions = new Map<string, number>();
  private watcher: { stop(): void } | undefined;
  private acked: BinlogPosition | undefined;
  private ackedSnapshot: SnapshotState | undefined;
  private saved: BinlogPosition | undefined;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private streaming = false;
  private contact: ContactWatch | undefined;
  private ctx!: BuildContext;
  /** Column classes per registered `db.table`, as the pipeline file in force says. */
  private classes = new Map<string, Record<string, ColumnClass>>();
  /** Departments and their grants, as the pipeline file in force says. */
  private departments: PipelineConfig['departments'];
  /** Host, account and TLS material of the source, read once: every connection of the reader uses them. */
  private readonly connection: ConnectionOptions;
  /** The keyring in force (rotation applies without restart). */
  private keys: KeyProvider;

  constructor(private readonly deps: ReaderDeps) {
    this.connection = sourceConnectionOptions(deps.source);
    this.keys = deps.keys;
    this.departments = deps.config.departments;
  }

  /** true while streaming with the brokers acknowledging; else why not. */
  ready(): true | string {
    if (!this.streaming) return 'starting';
    return this.contact?.check() ?? true;
  }

  async start(): Promise<void> {
    const { source, logger, env } = this.deps;
    if (!source.connection.ssl) {
      logger.warn({ source: source.name, host: source.connection.host }, 'the source connection is in clear (no sources[].connection.ssl): the binlog stream and the password hash exchange can be read on the network');
    }
    const { startAt, snapshotState } = await this.resume();
    this.classes = classesOf(source);
    this.ctx = {
      sourceName: source.name,
      serverId: this.serverId,
      classes: (db, table) => this.classes.get(`${db}.${table}`) ?? {},
      pipelineKey: this.deps.keys.activeKey(keyNames.pipeline),
    };
    this.watchPipelineFile();
    this.sender = this.createSender();
    this.contact = new ContactWatch({ silentMs: () => this.sender?.stalledMs ?? 0, what: `reader of ${source.name}`, brokers: this.deps.config.kafka.brokers, logger, onChange: this.deps.onKafkaContact });
    this.listener = new BinlogListener(
      { connection: this.connection, valueOptions: exactValueOptions, serverId: this.serverId, catalog: this.catalog, heartbeatSeconds: env.READER_HEARTBEAT_SECONDS },
      {
        onRows: (change) => this.onRows(change),
        onCommit: (position, tsMs, summary) => this.onCommit(position, tsMs, summary),
        onSchemaChange: (db, statement, position, tsMs) => this.onSchemaChange(db, statement, position, tsMs),
        onHeartbeat: (position) => this.onHeartbeat(position),
        onError: (err) => this.fail(err),
      },
      logger,
    );
    await this.listener.start(startAt);
    this.streaming = true;
    this.checkpointTimer = setInterval(() => void this.checkpoint(), env.READER_CHECKPOINT_INTERVAL_MS);
    await this.startSnapshots(snapshotState);
  }

  /**
   * Checks the source, loads the catalog, creates the topics and the producer, and returns
   * where streaming starts: the checkpoint's position and snapshot progress, or on a first
   * start (or a purged checkpoint with READER_ON_PURGED=resnapshot) the binlog's end or start.
   */
  private async resume(): Promise<{ startAt: BinlogPosition; snapshotState: SnapshotState }> {
    const { config, source, logger, env } = this.deps;
    const conn = await this.connect();
    try {
      const server = await checkSource(conn);
      this.serverId = replicaServerId(env.READER_SERVER_ID ?? source.serverId, server.serverId);
      logger.info({ source: source.name, version: server.version, replicaServerId: this.serverId }, 'source checked');
      // Another binlog stream on this account: a second active reader of the source (no lease), or one still stopping.
      const others = await otherBinlogReaders(conn);
      this.deps.metrics.otherBinlogReaders.set({ source: source.name }, others);
      if (others > 0) logger.warn({ code: 'READER_DUPLICATE', others }, `${others} other binlog connection(s) of this account read the source: a second reader of ${source.name} beside this one publishes every change twice (targets keep the newest, departments reading Kafka see repeats); run it as a standby (READER_LEASE_REDIS_URL)`);
      this.catalog = await TableCatalog.load(conn, source);
      this.partitions = await ensureReaderTopics(this.deps.kafka, config, source, this.catalog.names());

      this.producer = this.deps.kafka.producer(producerConfig());
      await this.producer.connect();
      this.checkpoints = new CheckpointStore(this.deps.kafka, this.producer, config.kafka.topicPrefix, source.name, logger, {
        settings: config.kafka,
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
      const startAt = checkpoint ?? (env.READER_START_FROM === 'earliest' ? await binlogStart(conn) : await binlogEnd(conn));
      const snapshotState = checkpoint?.snapshot ?? {};
      // A table no longer registered is forgotten: registered again later, it is snapshotted again.
      const registeredNow = new Set(this.catalog.names());
      for (const t of Object.keys(snapshotState)) if (!registeredNow.has(t)) delete snapshotState[t];
      if (env.READER_SNAPSHOT === 'never') {
        for (const t of this.catalog.names()) snapshotState[t] ??= { lastKey: null, done: true, rows: 0 };
      }
      // Written at every start: the first checkpoint, or an adopted unsigned one signed.
      await this.checkpoints.save(startAt, snapshotState);
      this.acked = this.saved = startAt;
      this.ackedSnapshot = snapshotState;
      return { startAt, snapshotState };
    } finally {
      await conn.end();
    }
  }

  /**
   * Reclassification seals (or stops sealing) columns from the next event on; a table
   * registered or unregistered starts the reader again from its checkpoint (a new table is
   * snapshotted while streaming goes on); a changed connection needs a restart.
   */
  private watchPipelineFile(): void {
    const { source, logger, watch } = this.deps;
    if (!watch) return;
    const registered = JSON.stringify(source.tables.map((t) => t.name));
    this.watcher = watchPipeline(watch, {
      logger,
      onChange: ({ pipeline, keys }) => {
        const next = pipeline.config.sources.find((s) => s.name === source.name);
        if (!next) throw new CdcError('CONFIG_INVALID', `source ${source.name} is no longer in the pipeline file; the reader keeps its last classes until it is stopped`);
        if (JSON.stringify(next.tables.map((t) => t.name)) !== registered) {
          const why = 'registered tables changed in the pipeline file: the reader starts again from its checkpoint to snapshot and stream them';
          if (this.deps.onRestart) this.deps.onRestart(why);
          else logger.warn('registered tables changed in the pipeline file: restart the reader to snapshot and stream them');
        }
        this.classes = classesOf(next);
        this.departments = pipeline.config.departments;
        // A rotated pipeline key seals and signs from now on; the transformer still opens the old one.
        this.keys = keys;
        this.ctx.pipelineKey = keys.activeKey(keyNames.pipeline);
      },
    });
  }

  /** The query connection, the source monitor, snapshots of the tables that need one, and re-snapshot signals. */
  private async startSnapshots(state: SnapshotState): Promise<void> {
    const { env, logger, metrics, source, config, kafka } = this.deps;
    this.queryConn = await this.connect();
    await this.queryConn.query("SET time_zone = '+00:00'");
    this.monitor = new SourceMonitor(this.queryConn, source.name, () => this.acked, metrics, logger);
    this.monitor.start();
    this.snapshots = new SnapshotCoordinator({
      conn: this.queryConn,
      catalog: this.catalog,
      state,
      stream: {
        position: () => this.listener?.safePosition(),
        emitChunk: (rows, at, snapshot) => {
          if (rows) this.publish(rows);
          this.sender!.markBoundary(at, Date.now(), snapshot);
        },
        waitForRoom: () => this.sender!.waitForRoom(),
      },
      options: { chunkSize: env.READER_SNAPSHOT_CHUNK_ROWS, source: source.name },
      logger,
      metrics,
      onFatal: (err) => this.fail(err),
    });
    this.snapshots.start();
    this.signals = new SignalListener(kafka, config.kafka.topicPrefix, source.name, (signal) => signal.action === 'snapshot' ? this.snapshots!.request(signal.tables) : this.snapshots!.repair(signal, (department) => this.granted(department, signal.table)), logger, {
      keys: () => this.keys,
      onForged: () => metrics.forged.inc({ topic_kind: 'signals' }),
    }, config.kafka);
    await this.signals.start();
  }

  /** Whether the pipeline file in force grants `db.table` of this source to the department (a repair is for such a department only). */
  private granted(department: string, table: string): boolean {
    const grant = `${this.deps.source.name}.${table}`;
    return this.departments.find((d) => d.name === department)?.grants.some((g) => g.table === grant) ?? false;
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

  private createSender(): OrderedSender<SnapshotState> {
    const { env, metrics, logger, source } = this.deps;
    const labels = { source: source.name };
    const frames = new RawFrameWriter({
      maxFrameEvents: env.READER_FRAME_MAX_EVENTS,
      partitionsOf: (topic) => this.partitions.get(topic) ?? 1,
      // Under the pipeline key in force when the frame closes (a rotated key seals from then on).
      seal: (json, aad) => sealJson(this.ctx.pipelineKey, json, aad),
    });
    return new OrderedSender<SnapshotState>(
      this.producer!,
      frames,
      {
        maxBytes: env.READER_QUEUE_MAX_BYTES,
        onAcked: (position, tsMs, snapshot) => {
          this.acked = position;
          metrics.binlogFile.set(labels, Number(/\.(\d+)$/.exec(position.file)?.[1] ?? 0));
          metrics.binlogPosition.set(labels, position.pos);
          if (snapshot) this.ackedSnapshot = snapshot;
          metrics.queueBytes.set(labels, this.sender?.queuedBytes ?? 0);
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

  private onRows(change: RowsChange): void {
    this.snapshots?.beforeRows(change);
    this.publish(change);
  }

  /** A transaction ended: its marker (READER_TRANSACTION_MARKERS), and a checkpoint boundary once Kafka has all of it. */
  private onCommit(position: BinlogPosition, tsMs: number, summary: TransactionSummary): void {
    const { config, source, env } = this.deps;
    if (env.READER_TRANSACTION_MARKERS && summary.events > 0) this.sender!.enqueueRecord(transactionMessage(config.kafka.topicPrefix, source.name, position, tsMs, summary));
    this.sender!.markBoundary(position, tsMs);
    this.snapshots?.reached(position);
  }

  /**
   * DDL: rows after it decode with the table map they carry (binlog_row_metadata=FULL),
   * so nothing here is needed for correctness. The catalog is refreshed for snapshots,
   * and a statement that changes a registered table goes to the schema-change topic, in
   * stream order, for downstream, without its literals. Other statements (another
   * database's tables, CREATE USER … IDENTIFIED BY, GRANT) are not published.
   */
  private onSchemaChange(db: string, statement: string, position: BinlogPosition, tsMs: number): void {
    const { config, source, logger } = this.deps;
    const touched = changedRegisteredTables(statement, db, this.catalog.names());
    this.deps.metrics.schemaChanges.inc({ source: source.name, registered: touched.length > 0 ? 'true' : 'false' });
    // Other tables' DDL (a shared server's every migration) is only counted, never logged.
    if (touched.length === 0) return;
    // The statement may hold literals (DEFAULT values), so only its verb is logged.
    logger.info({ db, ddl: ddlVerb(statement), tables: touched, file: position.file, pos: position.pos }, 'schema change');
    this.sender!.enqueueRecord(schemaChangeMessage(config.kafka.topicPrefix, source.name, { db, ddl: redactDdl(statement), tables: touched }, position, tsMs));
    for (const name of touched) {
      const [tdb, table] = name.split('.') as [string, string];
      if (!this.queryConn) continue;
      void this.catalog.reload(this.queryConn, source.name, tdb, table).then(
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
    this.sender!.enqueueRecord(heartbeatMessage(config.kafka.topicPrefix, source.name, position, now));
    this.sender!.markBoundary(position, now);
    this.snapshots?.reached(position);
  }

  /** Row changes (of the binlog or a snapshot chunk) as change events on their raw topic, after the table schema they reference. */
  private publish(change: RowsChange): void {
    const { metrics, source, config } = this.deps;
    const { db, table } = change.schema;
    const topic = topics.raw(config.kafka.topicPrefix, source.name, db, table);
    const sender = this.sender!;
    // A schema goes out before the first event that references it (same ordered queue).
    const { ref, json } = schemaRef(change.schema);
    if (!this.publishedSchemas.has(ref)) {
      this.publishedSchemas.add(ref);
      // Signed: the transformer uses only table schemas the pipeline wrote (a forged one could misalign columns).
      const schemaTopic = topics.tableSchemas(config.kafka.topicPrefix);
      const value = Buffer.from(json);
      sender.enqueueRecord({ topic: schemaTopic, key: ref, value, headers: recordMacHeaders(this.keys, schemaTopic, ref, value) });
    }
    const ctx = this.ctx;
    const counts: Record<Op, number> = { c: 0, u: 0, d: 0, r: 0 };
    const limit = this.deps.env.READER_EVENT_MAX_BYTES;
    encoderFor(change.schema, ctx.classes(db, table), ctx.pipelineKey).encode(change, ctx.sourceName, ctx.serverId, ref, Date.now(), (key, event, secrets, op, row) => {
      const bytes = oversizeEventBytes(event, secrets, limit);
      if (bytes !== null) this.deadLetterOversize({ change, op, row, bytes, limit });
      else {
        sender.enqueueEvent(topic, key, event, secrets);
        counts[op]++;
      }
    });
    sender.enqueued();
    for (const op of ['c', 'u', 'd', 'r'] as const) if (counts[op] > 0) metrics.events.inc({ source: source.name, table: `${db}.${table}`, op }, counts[op]);
    if (change.kind === 'repair') {
      for (const op of ['d', 'r'] as const) if (counts[op] > 0) metrics.repairRows.inc({ source: source.name, table: `${db}.${table}`, op }, counts[op]);
    } else if (change.kind !== 'snapshot') metrics.lastEventSeconds.set({ source: source.name }, Date.now() / 1000);
    metrics.queueBytes.set({ source: source.name }, sender.queuedBytes);
  }

  /**
   * A change event too large for a Kafka message would fail every produce (and every
   * restart) until its binlog is purged: it goes, in stream order, to the reader's
   * dead-letter topic as a small record, and the events around it flow on.
   */
  private deadLetterOversize(event: Parameters<typeof oversizeLetter>[2]): void {
    const { config, source, metrics, logger } = this.deps;
    const { message, letter } = oversizeLetter(this.keys, { prefix: config.kafka.topicPrefix, source: source.name }, event);
    this.sender!.enqueueRecord(message);
    metrics.dlq.inc({ source: source.name, table: `${letter.db}.${letter.table}`, reason: letter.code });
    logger.warn({ code: letter.code, table: `${letter.db}.${letter.table}`, op: letter.op, version: letter.version, snapshot: letter.snapshot, bytes: letter.bytes, limit: letter.limit, topic: message.topic }, 'change event too large for Kafka: dead-lettered, not delivered');
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
    clearInterval(this.checkpointTimer);
    this.watcher?.stop();
    this.snapshots?.stop();
    this.monitor?.stop();
    await this.signals?.stop();
    this.listener?.stop();
    try {
      await this.sender?.drain();
      await this.checkpoint();
    } finally {
      await this.producer?.disconnect();
      await this.queryConn?.end().catch(() => undefined);
    }
  }
}

/** Column classes per registered table, as a source of the pipeline file declares them. */
function classesOf(source: SourceConfig): Map<string, Record<string, ColumnClass>> {
  return new Map(source.tables.map((t) => [t.name, t.columns as Record<string, ColumnClass>]));
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
