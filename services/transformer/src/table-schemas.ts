import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { CdcError, ConsumerLoop, eachMessage, recordForgery, topics, type KeyProvider, type Logger, type PipelineConfig, type RawChangeEvent, type TableSchema } from '@cityshare/shared';

/**
 * The table schemas raw events reference, read from `<prefix>.table-schemas`. The reader
 * writes a schema before the first event that references it; an event can still be seen
 * a moment before its schema, so an unknown reference waits for the topic to catch up.
 * Only schemas the pipeline key authenticates are kept: a forged record under a real
 * reference (to misalign columns, or to declassify one) is logged, counted and ignored.
 */
export class TableSchemas {
  private readonly byRef = new Map<string, TableSchema>();
  private loop: ConsumerLoop | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly prefix: string,
    private readonly logger: Logger,
    /** The keyring in force. */
    private readonly keys: () => KeyProvider,
    /** A schema record that is not authenticated was ignored (cityshare_forged_records_total). */
    private readonly onForged: () => void,
    /** Kafka settings, to name a refused principal or unreachable brokers. */
    private readonly settings: PipelineConfig['kafka'],
  ) {}

  async start(): Promise<void> {
    // Every instance keeps the whole (compacted) topic; no offsets are committed.
    this.loop = await ConsumerLoop.start(this.kafka, {
      groupId: `${this.prefix}.transformer.table-schemas.${randomUUID()}`,
      topics: [topics.tableSchemas(this.prefix)],
      settings: this.settings,
      commit: false,
      eachBatch: eachMessage(async (message, { topic, partition }) => {
        if (!message.key || !message.value) return;
        const forged = recordForgery(this.keys(), topic, message);
        if (forged) {
          this.onForged();
          this.logger.error({ code: forged.code, topic, partition, offset: message.offset }, `table schema ignored: ${forged.message}`);
          return;
        }
        this.byRef.set(message.key.toString(), JSON.parse(message.value.toString()) as TableSchema);
      }),
    });
  }

  /** The schema of a raw event: inline (older events) or by reference. */
  async resolve(event: RawChangeEvent, timeoutMs = 30_000): Promise<TableSchema> {
    if (event.schema) return event.schema;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const schema = this.byRef.get(event.schemaRef);
      if (schema) return schema;
      if (Date.now() > deadline) {
        throw new CdcError('SCHEMA_INCOMPATIBLE', `table schema ${event.schemaRef} of ${event.source.db}.${event.source.table} is not on ${topics.tableSchemas(this.prefix)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    await this.loop?.stop();
    this.logger.debug({ schemas: this.byRef.size }, 'table schemas consumer stopped');
  }
}
