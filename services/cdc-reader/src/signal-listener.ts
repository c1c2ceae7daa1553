import type { Kafka, KafkaMessage } from 'kafkajs';
import { ConsumerLoop, recordForgery, topics, type KeyProvider, type Logger, type PipelineConfig } from '@cityshare/shared';
import { openSignal, signalSummary, type ReaderSignalOf } from './reader-signal.js';

// `cdc snapshot` (packages/cli) signs its signals with these.
export { MAX_REPAIR_KEYS, readerSignal, signalRecord, type ReaderSignal, type RepairSignal } from './reader-signal.js';

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
    /** Acts on a signal; a promise (a repair) holds the next signal and the commit until it settles. */
    private readonly onSignal: (signal: ReaderSignalOf) => Promise<void> | void,
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
      eachBatch: async (batch, { heartbeat }) => {
        for (const message of batch.messages) await this.handle(message, batch.topic, batch.partition, heartbeat);
        // Committed once every signal of the batch is acted on: a reader stopped meanwhile acts on them again (a repair twice is harmless).
        return 'all';
      },
    });
  }

  private async handle(message: KafkaMessage, topic: string, partition: number, heartbeat: () => Promise<void>): Promise<void> {
    if (message.key?.toString() !== this.source || !message.value) return;
    const forged = recordForgery(this.auth.keys(), topic, message);
    if (forged) {
      this.auth.onForged();
      this.logger.error({ code: forged.code, topic, partition, offset: message.offset }, `signal ignored: ${forged.message}`);
      return;
    }
    const signal = openSignal(this.auth.keys(), message.value.toString());
    if ('problems' in signal || signal.source !== this.source) {
      const problems = 'problems' in signal ? signal.problems : ['addressed to another source'];
      this.logger.warn({ code: 'code' in signal ? signal.code : 'SIGNAL_REFUSED', offset: message.offset, problems }, 'signal refused');
      return;
    }
    this.logger.info(signalSummary(signal), 'signal received');
    const acting = this.onSignal(signal);
    if (!acting) return;
    // A repair waits for the stream to pass its watermarks: the group keeps this member meanwhile.
    const beat = setInterval(() => void heartbeat().catch(() => undefined), 2000);
    try {
      await acting;
    } finally {
      clearInterval(beat);
    }
  }

  async stop(): Promise<void> {
    await this.loop?.stop();
  }
}
