import { Kafka, logLevel, type KafkaMessage } from 'kafkajs';
import type { PipelineConfig } from './config/pipeline-schema.js';
import { ConsumerLoop } from './kafka/consumer-loop.js';
import { kafkaConnection, kafkaSecurityError } from './kafka/security.js';
import { META_FIELDS, type AvroFieldType, type AvroRecordSchema } from './avro/share-schema.js';
import { LOGICAL } from './avro/logical-types.js';
import { wireSchemaId } from './avro/registry.js';
import { registryEndpoint } from './avro/registry-endpoint.js';
import { WriterSchemas, fingerprintHeader } from './avro/writer-schemas.js';
import { CdcError, isCdcError } from './errors.js';
import { openDepartmentValue, rowKeyOf, type OpenOptions } from './crypto/envelope.js';
import type { KeyProvider } from './crypto/keyring.js';
import { parseShareTopic } from './topics.js';

/** One change as a department receives it, decoded, encrypted columns opened when a keyring is given. */
export interface ShareChange {
  /** Source, database and table the share topic carries. */
  source: string;
  db: string;
  table: string;
  op: 'c' | 'u' | 'd' | 'r';
  /** Source position: keep the newest per key. */
  version: string;
  sourceTsMs: bigint;
  deleted: boolean;
  /** The key columns, as in the Kafka message key. */
  key: Record<string, unknown>;
  /** Granted columns: exact values (DECIMAL and 64-bit integers as text, instants as ISO text). */
  values: Record<string, unknown>;
}

export interface ShareConsumerOptions {
  /**
   * The brokers and how to reach them as the department's own principal (TLS, SASL; file
   * paths absolute), in the shape of the pipeline file's `kafka` settings.
   */
  kafka: Pick<PipelineConfig['kafka'], 'brokers' | 'ssl' | 'sasl'>;
  /** Confluent-compatible registry URL, e.g. http://host:8081/apis/ccompat/v7. */
  registryUrl: string;
  /** Basic auth of the registry, sent on every call (schema lookups by id too). */
  registryAuth?: { username: string; password: string };
  /** CA file of an https:// registry not signed by a system CA. */
  registryCa?: string;
  /** `<prefix>.share.<department>.<source>.<db>.<table>` topics to read. */
  topics: string[];
  /**
   * The department's own consumer group (offsets are committed after `onChange` resolved); its
   * principal may use only groups named `<prefix>.department.<name>.…` (departmentGroupPrefix).
   */
  groupId: string;
  /** The department's keyring: encrypted columns arrive opened; without it they stay bytes. */
  keys?: KeyProvider;
  /**
   * Earlier releases needed the source here to open encrypted values; it is now read from
   * each share topic's name (`<prefix>.share.<department>.<source>.<db>.<table>`). Ignored.
   */
  source?: string;
  /** Version-2 (column-bound) ciphertexts of earlier releases open unless `allowLayout2` is false. */
  open?: OpenOptions;
  /** Called in order per key (per partition); a rejection stops the consumer without committing. */
  onChange: (change: ShareChange) => Promise<void>;
  /** Called when the consumer stops on an error, coded (KAFKA_NOT_AUTHORIZED once a grant is revoked). */
  onError?: (err: unknown) => void;
  /** Called when a partition pauses on a writer schema the registry does not know (SCHEMA_UNKNOWN); it resumes by itself with backoff. */
  onPaused?: (err: CdcError, where: { topic: string; partition: number; offset: string }) => void;
}

/**
 * For a department that reads its share topics itself: a Kafka consumer with the settings
 * that keep the pipeline's guarantees (read committed only, offsets committed after the
 * change was handled, from the beginning for a new group) that decodes each Avro record
 * with its writer schema from the registry and opens the columns encrypted for the
 * department with its keyring.
 */
export async function consumeShareTopics(options: ShareConsumerOptions): Promise<{ stop(): Promise<void> }> {
  const endpoint = registryEndpoint({ url: options.registryUrl, ...options.registryAuth, ca: options.registryCa });
  const writerSchemas = new WriterSchemas(endpoint);
  const sealedFields = new Map<string, Set<string>>();
  const sealedOf = (key: string, schema: AvroRecordSchema) => {
    let fields = sealedFields.get(key);
    if (!fields) sealedFields.set(key, (fields = new Set(schema.fields.filter((f) => isSealed(f.type)).map((f) => f.name))));
    return fields;
  };
  // Partitions waiting for a writer schema the registry does not know (SCHEMA_UNKNOWN): attempts in a row.
  const waiting = new Map<string, number>();
  const kafka = new Kafka({ clientId: `cityshare-department-${options.groupId}`, ...kafkaConnection(options.kafka), logLevel: logLevel.WARN });
  /** One record: decoded with its writer schema, encrypted columns opened, handed to onChange. */
  const deliver = async (topic: string, message: KafkaMessage & { value: Buffer }) => {
    const where = parseShareTopic(topic);
    if (!where) throw new CdcError('CONFIG_INVALID', `${topic} is not a share topic (<prefix>.share.<department>.<source>.<db>.<table>)`);
    const { department, source, db, table } = where;
    const writer = await writerSchemas.resolve(topic, wireSchemaId(message.value), fingerprintHeader(message.headers));
    const record = writerSchemas.decode(writer, message.value);
    const sealed = sealedOf(writer.key, writer.schema);
    const key = message.key ? (JSON.parse(message.key.toString('utf8')) as Record<string, unknown>) : {};
    const rowKey = rowKeyOf(key, record[META_FIELDS.version] as string);
    const values: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(record)) {
      if ((Object.values(META_FIELDS) as string[]).includes(name)) continue;
      const binding = { source, department, db, table, column: name, key: rowKey };
      values[name] = options.keys && sealed.has(name) && Buffer.isBuffer(value) ? openDepartmentValue(options.keys, value, binding, options.open) : value;
    }
    await options.onChange({
      source,
      db,
      table,
      op: record[META_FIELDS.op] as ShareChange['op'],
      version: record[META_FIELDS.version] as string,
      sourceTsMs: record[META_FIELDS.sourceTsMs] as bigint,
      deleted: record[META_FIELDS.deleted] as boolean,
      key,
      values,
    });
  };
  const loop = await ConsumerLoop.start(kafka, {
    groupId: options.groupId,
    topics: options.topics,
    settings: options.kafka,
    consumer: { groupId: options.groupId, readUncommitted: false },
    eachBatch: async ({ topic, partition, messages }) => {
      let through: string | undefined;
      for (const message of messages) {
        try {
          if (message.value) await deliver(topic, message as KafkaMessage & { value: Buffer });
          waiting.delete(`${topic}/${partition}`);
        } catch (err) {
          if (!isCdcError(err, 'SCHEMA_UNKNOWN')) throw err;
          // Paused, not skipped: the record is read again after the resume.
          const attempts = (waiting.get(`${topic}/${partition}`) ?? 0) + 1;
          waiting.set(`${topic}/${partition}`, attempts);
          loop.consumer.pause([{ topic, partitions: [partition] }]);
          setTimeout(() => loop.consumer.resume([{ topic, partitions: [partition] }]), Math.min(30_000, 1_000 * 2 ** (attempts - 1))).unref();
          options.onPaused?.(err, { topic, partition, offset: message.offset });
          return through === undefined ? 'again' : { through };
        }
        through = message.offset;
      }
      return 'all';
    },
  });
  loop.consumer.on(loop.consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) options.onError?.(kafkaSecurityError(payload.error, options.kafka, options.topics.join(', ')));
  });
  return { stop: () => loop.stop() };
}

function isSealed(type: AvroFieldType): boolean {
  if (Array.isArray(type)) return type.some(isSealed);
  return typeof type === 'object' && type !== null && (type as { logicalType?: string }).logicalType === LOGICAL.sealed;
}
