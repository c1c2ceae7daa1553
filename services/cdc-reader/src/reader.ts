import { createConnection } from 'mysql2/promise';
import type { Kafka, Producer } from 'kafkajs';
import {
  CdcError,
  ensureTopics,
  keyNames,
  producerConfig,
  topics,
  type BinlogPosition,
  type ColumnClass,
  type KeyProvider,
  type Logger,
  type PipelineConfig,
  type SourceConfig,
} from '@cityshare/shared';
import { BinlogListener } from './binlog-listener.js';
import { CheckpointStore } from './checkpoint-store.js';
import { buildEvents, type BuildContext } from './event-builder.js';
import { RawPublisher } from './raw-publisher.js';
import type { ReaderMetrics } from './reader-metrics.js';
import { binlogEnd, binlogStart, checkSource } from './source-check.js';
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
  /** Called once when the reader cannot go on; the process should exit and be restarted. */
  onFatal: (err: CdcError) => void;
}

/**
 * Runs one source: checks it, resumes from the last checkpoint, streams the binlog into
 * raw topics and checkpoints each transaction once Kafka has acknowledged it.
 */
export class Reader {
  private producer: Producer | undefined;
  private listener: BinlogListener | undefined;
  private publisher: RawPublisher | undefined;
  private checkpoints: CheckpointStore | undefined;
  private acked: BinlogPosition | undefined;
  private saved: BinlogPosition | undefined;
  private timer: NodeJS.Timeout | undefined;
  private streaming = false;

  constructor(private readonly deps: ReaderDeps) {}

  get ready(): boolean {
    return this.streaming;
  }

  async start(): Promise<void> {
    const { config, source, logger, kafka, env } = this.deps;
    const conn = await createConnection({ ...source.connection, charset: 'utf8mb4' }).catch((cause: Error) => {
      throw new CdcError('SOURCE_UNREACHABLE', `cannot connect to source ${source.name} at ${source.connection.host}:${source.connection.port}: ${cause.message}`, { cause });
    });
    let catalog: TableCatalog;
    let startAt: BinlogPosition;
    try {
      const server = await checkSource(conn);
      logger.info({ source: source.name, version: server.version }, 'source checked');
      catalog = await TableCatalog.load(conn, source);

      const admin = kafka.admin();
      await admin.connect().catch((cause: Error) => {
        throw new CdcError('KAFKA_UNREACHABLE', `cannot reach Kafka at ${config.kafka.brokers.join(',')}: ${cause.message}`, { cause });
      });
      try {
        await ensureTopics(admin, [
          CheckpointStore.topicConfig(config.kafka.topicPrefix),
          ...catalog.names().map((name) => {
            const [db, table] = name.split('.') as [string, string];
            return {
              topic: topics.raw(config.kafka.topicPrefix, source.name, db, table),
              numPartitions: config.kafka.partitions,
              replicationFactor: config.kafka.replicationFactor,
            };
          }),
        ]);
      } finally {
        await admin.disconnect();
      }

      this.producer = kafka.producer(producerConfig());
      await this.producer.connect();
      this.checkpoints = new CheckpointStore(kafka, this.producer, config.kafka.topicPrefix, source.name, logger);
      const checkpoint = await this.checkpoints.load();
      startAt = checkpoint ?? (env.READER_START_FROM === 'earliest' ? await binlogStart(conn) : await binlogEnd(conn));
      if (!checkpoint) await this.checkpoints.save(startAt);
      this.acked = this.saved = startAt;
    } finally {
      await conn.end();
    }

    const classes = new Map(source.tables.map((t) => [t.name, t.columns as Record<string, ColumnClass>]));
    const ctx: BuildContext = {
      sourceName: source.name,
      serverId: source.serverId,
      classes: (db, table) => classes.get(`${db}.${table}`) ?? {},
      pipelineKey: this.deps.keys.activeKey(keyNames.pipeline),
    };
    const { metrics } = this.deps;
    const labels = { source: source.name };

    this.publisher = new RawPublisher(
      this.producer,
      {
        maxBytes: env.READER_QUEUE_MAX_BYTES,
        maxBatchMessages: env.READER_BATCH_MAX_MESSAGES,
        onAcked: (position, tsMs) => {
          this.acked = position;
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

    const prefix = config.kafka.topicPrefix;
    this.listener = new BinlogListener(
      { connection: source.connection, serverId: source.serverId, catalog },
      {
        onRows: (change) => {
          const built = buildEvents(change, ctx);
          const topic = topics.raw(prefix, source.name, change.schema.db, change.schema.table);
          this.publisher!.enqueue(built.map(({ event, key }) => ({ topic, key, value: Buffer.from(JSON.stringify(event)) })));
          for (const { event } of built) metrics.events.inc({ ...labels, table: `${change.schema.db}.${change.schema.table}`, op: event.op });
          metrics.queueBytes.set(labels, this.publisher!.queuedBytes);
        },
        onCommit: (position, tsMs) => this.publisher!.markBoundary(position, tsMs),
        onSchemaChange: (db, statement, position) => {
          // The statement may hold literals (DEFAULT values), so only its verb is logged.
          logger.info({ db, ddl: /^\s*\w+\s+\w+/.exec(statement)?.[0], file: position.file, pos: position.pos }, 'schema change');
        },
        onError: (err) => this.fail(err),
      },
      logger,
    );
    await this.listener.start(startAt);
    this.streaming = true;
    this.timer = setInterval(() => void this.checkpoint(), env.READER_CHECKPOINT_INTERVAL_MS);
  }

  private async checkpoint(): Promise<void> {
    const position = this.acked;
    if (!position || !this.checkpoints || position === this.saved) return;
    try {
      await this.checkpoints.save(position);
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
    clearInterval(this.timer);
    this.listener?.stop();
    try {
      await this.publisher?.drain();
      await this.checkpoint();
    } finally {
      await this.producer?.disconnect();
    }
  }
}
