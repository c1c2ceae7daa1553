import { Kafka, Partitioners, logLevel, type Admin, type ITopicConfig, type LogEntry, type ProducerConfig } from 'kafkajs';
import { CdcError } from '../errors.js';
import { TOPIC_LAYOUT, type TopicRole } from '../topics.js';
import type { Logger } from '../logger.js';
import type { PipelineConfig } from '../config/pipeline-schema.js';
import { kafkaConnection, kafkaErrorChain } from './security.js';

const LEVEL: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/** kafkajs' wording of a broker it cannot reach (each retry logs one). */
const CONNECTION_TROUBLE = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE|Connection (error|timeout|closed)|closed connection|KafkaJSConnection|KafkaJSNumberOfRetriesExceeded|not reachable|There is no leader/i;

/**
 * kafkajs' wording of CONCURRENT_TRANSACTIONS: a transaction begun while the coordinator still
 * completes the previous one, asked again after 10 ms (patches/kafkajs+2.2.4.patch). Expected
 * between back-to-back transactions, so logged at debug, not as the error kafkajs calls it.
 */
const TRANSACTION_STILL_COMPLETING = /another concurrent operation on the same transaction/;

/** During an outage, one kafkajs connection line per this many ms reaches the log at its level; the rest at debug. */
const CONNECTION_LOG_EVERY_MS = 30_000;

/**
 * kafkajs client over the configured TLS and SASL, whose logs go through the service's pino
 * logger. While a broker is away kafkajs logs every retry: those lines are thinned to one per
 * 30 s (with how many were held back) — the coded KAFKA_UNREACHABLE comes from the service
 * (ContactWatch), once per outage.
 */
export function createKafka(config: PipelineConfig['kafka'], clientId: string, logger: Logger): Kafka {
  const log = logger.child({ component: 'kafkajs' });
  let lastTrouble = 0;
  let heldBack = 0;
  return new Kafka({
    clientId,
    ...kafkaConnection(config),
    logLevel: logLevel.WARN,
    retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5_000 },
    logCreator: () => (entry: LogEntry) => {
      const { message, ...extra } = entry.log;
      let level = LEVEL[entry.level] ?? 'info';
      if (TRANSACTION_STILL_COMPLETING.test(String(extra.error ?? ''))) level = 'debug';
      if (CONNECTION_TROUBLE.test(`${message} ${String(extra.error ?? '')}`)) {
        const now = Date.now();
        if (now - lastTrouble < CONNECTION_LOG_EVERY_MS) {
          heldBack++;
          level = 'debug';
        } else {
          lastTrouble = now;
          if (heldBack > 0) extra.heldBack = heldBack;
          heldBack = 0;
        }
      }
      log[level]({ namespace: entry.namespace, ...extra }, message);
    },
  });
}

/**
 * Creates the pipeline topics of `wanted` that are missing, each laid out as its role says
 * (TOPIC_LAYOUT in topics.ts), and returns the partition count of every wanted topic. The
 * one place topics are created: by the reader, the transformer, the sinks and the control
 * service, each for the topics it writes or reads first.
 */
export async function ensurePipelineTopics(kafka: Kafka, settings: PipelineConfig['kafka'], wanted: ReadonlyArray<readonly [TopicRole, string]>): Promise<Map<string, number>> {
  const admin = kafka.admin();
  await admin.connect().catch((cause: Error) => {
    throw new CdcError('KAFKA_UNREACHABLE', `cannot reach Kafka at ${settings.brokers.join(',')}: ${cause.message}`, { cause });
  });
  try {
    const specs = [...new Map(wanted.map(([role, topic]) => [topic, topicConfig(settings, role, topic)])).values()];
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((t) => !existing.has(t.topic));
    if (missing.length > 0) {
      try {
        await admin.createTopics({ topics: missing, waitForLeaders: true });
      } catch (err) {
        // Created, but not yet in the metadata this broker answers with (a busy KRaft
        // broker lags its controller): waited for below, like the leaders.
        // Another instance may have created them in between; re-check before failing.
        const now = new Set(await admin.listTopics());
        if (!notYetKnown(err) && missing.some((t) => !now.has(t.topic))) throw err;
      }
    }
    const meta = await topicMetadataOnceKnown(admin, specs.map((s) => s.topic));
    return new Map(meta.map((t) => [t.name, t.partitions.length]));
  } finally {
    await admin.disconnect();
  }
}

/** Answers about a topic just created that only mean "not in this broker's metadata yet". */
const NOT_YET_KNOWN = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE']);
const notYetKnown = (err: unknown) => [...kafkaErrorChain(err)].some((e) => e.type !== undefined && NOT_YET_KNOWN.has(e.type));

/** How long a topic just created may take to appear with its leaders before that is an error. */
const TOPIC_METADATA_WAIT_MS = 30_000;

/** The topics' metadata, asked again every 200 ms while the broker does not know them (or their leaders) yet. */
export async function topicMetadataOnceKnown(admin: Admin, names: string[]): Promise<Array<{ name: string; partitions: Array<{ leader: number }> }>> {
  const deadline = Date.now() + TOPIC_METADATA_WAIT_MS;
  for (;;) {
    try {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics: names });
      if (meta.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0)) || Date.now() > deadline) return meta;
    } catch (err) {
      if (!notYetKnown(err) || Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function topicConfig(settings: PipelineConfig['kafka'], role: TopicRole, topic: string): ITopicConfig {
  const { kind, config = [] } = TOPIC_LAYOUT[role];
  const configEntries = [...(kind === 'compacted' ? [{ name: 'cleanup.policy', value: 'compact' }] : []), ...config];
  return {
    topic,
    numPartitions: kind === 'partitioned' ? settings.partitions : 1,
    replicationFactor: settings.replicationFactor,
    ...(configEntries.length > 0 ? { configEntries } : {}),
  };
}

export type { Admin } from 'kafkajs';

/**
 * Producer settings for every stage: idempotent, ordered per partition, Java-compatible
 * murmur2 partitioning, and retries without limit so a broker outage pauses the stage
 * (with backpressure upstream) instead of dropping or reordering records.
 */
export function producerConfig(extra: Partial<ProducerConfig> = {}): ProducerConfig {
  return {
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 5_000 },
    ...extra,
  };
}

/** Messages grouped per topic, in order, as kafkajs sendBatch takes them. */
export function topicMessages<M extends { topic: string; key: string; value: Buffer; headers?: Record<string, string> }>(messages: M[]): Array<{ topic: string; messages: Array<{ key: string; value: Buffer; headers?: Record<string, string> }> }> {
  const byTopic = new Map<string, Array<{ key: string; value: Buffer; headers?: Record<string, string> }>>();
  for (const m of messages) {
    let list = byTopic.get(m.topic);
    if (!list) byTopic.set(m.topic, (list = []));
    list.push(m.headers ? { key: m.key, value: m.value, headers: m.headers } : { key: m.key, value: m.value });
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}
