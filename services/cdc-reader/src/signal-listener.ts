import type { Kafka } from 'kafkajs';
import { z } from 'zod';
import { ConsumerLoop, eachMessage, recordForgery, recordMacHeaders, topics, type KeyProvider, type Logger, type PipelineConfig } from '@cityshare/shared';

/** A request to the reader of one source, sent on `<prefix>.signals` (keyed by source). */
export const readerSignal = z.object({
  action: z.literal('snapshot'),
  source: z.string(),
  tables: z.array(z.string().regex(/^[^.]+\.[^.]+$/)).min(1),
  requestedBy: z.string().optional(),
});

export type ReaderSignal = z.infer<typeof readerSignal>;

/** The record that asks a source's reader to act, signed with the pipeline key (the reader ignores any other). */
export function signalRecord(keys: KeyProvider, prefix: string, signal: ReaderSignal): { topic: string; message: { key: string; value: string; headers: Record<string, string> } } {
  const topic = topics.signals(prefix);
  const value = JSON.stringify(readerSignal.parse(signal));
  return { topic, message: { key: signal.source, value, headers: recordMacHeaders(keys, topic, signal.source, value) } };
}

export interface SignalAuthentication {
  /** The keyring in force: a signal is acted on only with a MAC under a pipeline key (`cdc snapshot` signs it). */
  keys: () => KeyProvider;
  /** A signal that is not authenticated was ignored (cityshare_forged_records_total). */
  onForged: () => void;
}

/**
 * Listens for signals addressed to this source (Debezium's Kafka signal channel). The
 * consumer group keeps its offset, so a signal sent while the reader was down is acted
 * on when it comes back. Malformed signals are logged and skipped; signals the pipeline
 * key does not authenticate are logged, counted and ignored.
 */
export class SignalListener {
  private loop: ConsumerLoop | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly prefix: string,
    private readonly source: string,
    private readonly onSignal: (signal: ReaderSignal) => void,
    private readonly logger: Logger,
    private readonly auth: SignalAuthentication,
    /** Kafka settings, to name a refused principal or unreachable brokers. */
    private readonly settings: PipelineConfig['kafka'],
  ) {}

  async start(): Promise<void> {
    // A reader killed without leaving holds the group for its session: 8 s, so a standby taking over reads signals soon.
    this.loop = await ConsumerLoop.start(this.kafka, {
      groupId: `${this.prefix}.reader.${this.source}.signals`,
      topics: [topics.signals(this.prefix)],
      fromBeginning: false,
      settings: this.settings,
      eachBatch: eachMessage(async (message, { topic, partition }) => {
        if (message.key?.toString() !== this.source || !message.value) return;
        const forged = recordForgery(this.auth.keys(), topic, message);
        if (forged) {
          this.auth.onForged();
          this.logger.error({ code: forged.code, topic, partition, offset: message.offset }, `signal ignored: ${forged.message}`);
          return;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(message.value.toString());
        } catch {
          parsed = undefined;
        }
        const signal = readerSignal.safeParse(parsed);
        if (!signal.success || signal.data.source !== this.source) {
          this.logger.warn({ offset: message.offset }, 'ignoring a malformed signal');
          return;
        }
        this.logger.info({ action: signal.data.action, tables: signal.data.tables, requestedBy: signal.data.requestedBy }, 'signal received');
        this.onSignal(signal.data);
      }),
    });
  }

  async stop(): Promise<void> {
    await this.loop?.stop();
  }
}
