import type { Consumer, Kafka } from 'kafkajs';
import {
  CdcError,
  META_FIELDS,
  ensureTopics,
  fetchSchemaJson,
  pipelineTopics,
  topicSpec,
  wireSchemaId,
  type DepartmentConfig,
  type Logger,
  type PipelineConfig,
  type SchemaRegistry,
} from '@cityshare/shared';
import { targetColumns } from './pg-types.js';
import type { PostgresSink, RowChange, TargetTable } from './postgres.sink.js';
import type { SinkMetrics } from './sink-metrics.js';

export interface ShareConsumerDeps {
  config: PipelineConfig;
  department: DepartmentConfig;
  kafka: Kafka;
  registry: SchemaRegistry;
  sink: PostgresSink;
  logger: Logger;
  metrics: SinkMetrics;
}

/**
 * Delivers one department's share topics to its target. Offsets are committed only
 * after the target confirmed the batch; a failure leaves them where they were, so the
 * batch is redelivered and the version guard makes that harmless.
 */
export class ShareConsumer {
  private consumer: Consumer | undefined;
  private readonly tables = new Map<number, TargetTable>();
  private running = false;

  constructor(private readonly deps: ShareConsumerDeps) {}

  get ready(): boolean {
    return this.running;
  }

  get groupId(): string {
    return `${this.deps.config.kafka.topicPrefix}.sink.${this.deps.department.name}`;
  }

  async start(): Promise<void> {
    const { config, department, kafka, logger, metrics, sink } = this.deps;
    const labels = { department: department.name, target: department.target.kind };
    this.consumer = kafka.consumer({ groupId: this.groupId, readUncommitted: false, allowAutoTopicCreation: false, metadataMaxAge: 5_000 });
    await this.consumer.connect().catch((cause: Error) => {
      throw new CdcError('KAFKA_UNREACHABLE', `cannot reach Kafka at ${config.kafka.brokers.join(',')}: ${cause.message}`, { cause });
    });
    // By name: kafkajs resolves a pattern only once, so topics created later would be missed.
    const shareTopics = pipelineTopics(config).share.get(department.name) ?? [];
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, shareTopics.map((topic) => topicSpec(config.kafka, topic)));
    } finally {
      await admin.disconnect();
    }
    await this.consumer.subscribe({ topics: shareTopics, fromBeginning: true });
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => {
      this.running = true;
    });
    await this.consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale }) => {
        if (!isRunning() || isStale() || batch.messages.length === 0) return;
        const byTable = new Map<TargetTable, RowChange[]>();
        for (const message of batch.messages) {
          if (!message.value) continue;
          const table = await this.tableFor(batch.topic, wireSchemaId(message.value));
          const record = (await this.deps.registry.decode(message.value)) as Record<string, unknown>;
          let list = byTable.get(table);
          if (!list) byTable.set(table, (list = []));
          list.push({
            op: record[META_FIELDS.op] as string,
            version: record[META_FIELDS.version] as string,
            sourceTsMs: record[META_FIELDS.sourceTsMs] as bigint,
            deleted: record[META_FIELDS.deleted] as boolean,
            values: record,
          });
        }
        for (const [table, changes] of byTable) {
          const { applied, stale } = await sink.apply(table, changes);
          metrics.applied.inc(labels, applied);
          metrics.stale.inc(labels, stale);
          const now = Date.now();
          for (const c of changes) metrics.latency.observe(labels, Math.max(0, now - Number(c.sourceTsMs)) / 1000);
        }
        await this.consumer!.commitOffsets([
          { topic: batch.topic, partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() },
        ]);
        await heartbeat();
      },
    });
    logger.info({ groupId: this.groupId }, 'delivering share topics');
  }

  /** Target table of a share topic for a writer schema; created or extended on first sight. */
  private async tableFor(topic: string, schemaId: number): Promise<TargetTable> {
    let table = this.tables.get(schemaId);
    if (table) return table;
    const schema = await fetchSchemaJson(this.deps.config.schemaRegistry.url, schemaId);
    const [, , , db, sourceTable] = topic.split('.') as [string, string, string, string, string];
    const grant = this.deps.department.grants.find((g) => g.table.endsWith(`.${db}.${sourceTable}`));
    table = { name: grant?.targetTable ?? sourceTable, columns: targetColumns(schema), primaryKey: schema['x-primary-key'] };
    await this.deps.sink.ensureTable(table);
    this.tables.set(schemaId, table);
    return table;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.consumer?.disconnect().catch(() => undefined);
  }
}
