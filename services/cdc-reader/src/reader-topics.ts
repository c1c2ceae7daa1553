import type { Kafka } from 'kafkajs';
import { ensurePipelineTopics, topics, type PipelineConfig, type SourceConfig } from '@cityshare/shared';
import { readerDlqTopic } from './dead-letter.js';

/**
 * Creates the topics a source's reader writes (those missing) and returns the partition
 * count of each raw topic: frames are placed by partition, so the reader uses each raw
 * topic's actual count.
 */
export async function ensureReaderTopics(kafka: Kafka, config: PipelineConfig, source: SourceConfig, tables: string[]): Promise<Map<string, number>> {
  const prefix = config.kafka.topicPrefix;
  const raw = tables.map((name) => {
    const [db, table] = name.split('.') as [string, string];
    return topics.raw(prefix, source.name, db, table);
  });
  const partitions = await ensurePipelineTopics(kafka, config.kafka, [
    ['checkpoints', topics.checkpoints(prefix)],
    ['tableSchemas', topics.tableSchemas(prefix)],
    ['signals', topics.signals(prefix)],
    ['heartbeats', topics.heartbeats(prefix)],
    ['transactions', topics.transactions(prefix, source.name)],
    ['schemaChanges', topics.schemaChanges(prefix, source.name)],
    ['dlq', readerDlqTopic(prefix, source.name)],
    ...raw.map((topic) => ['raw', topic] as const),
  ]);
  return new Map(raw.map((topic) => [topic, partitions.get(topic)!]));
}
