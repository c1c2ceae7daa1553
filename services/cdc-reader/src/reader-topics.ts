import type { Kafka } from 'kafkajs';
import { CdcError, ensureTopics, topicSpec, topics, type PipelineConfig, type SourceConfig } from '@cityshare/shared';
import { readerDlqTopic } from './dead-letter.js';

/**
 * Creates the topics a source's reader writes (those missing) and returns the partition
 * count of each raw topic: frames are placed by partition, so the reader uses each raw
 * topic's actual count.
 */
export async function ensureReaderTopics(kafka: Kafka, config: PipelineConfig, source: SourceConfig, tables: string[]): Promise<Map<string, number>> {
  const admin = kafka.admin();
  await admin.connect().catch((cause: Error) => {
    throw new CdcError('KAFKA_UNREACHABLE', `cannot reach Kafka at ${config.kafka.brokers.join(',')}: ${cause.message}`, { cause });
  });
  try {
    const prefix = config.kafka.topicPrefix;
    const raw = tables.map((name) => {
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
    const { topics: meta } = await admin.fetchTopicMetadata({ topics: raw });
    return new Map(meta.map((t) => [t.name, t.partitions.length]));
  } finally {
    await admin.disconnect();
  }
}
