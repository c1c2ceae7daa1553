import type { Kafka, KafkaMessage } from 'kafkajs';
import { z } from 'zod';
import { ConsumerLoop, recordForgery, recordMacHeaders, topics, type KeyProvider, type Logger, type PipelineConfig } from '@cityshare/shared';

/** Keys one repair signal may name (keys, deletes and share keys together); `cdc repair` splits larger repairs. */
export const MAX_REPAIR_KEYS = 10_000;

const tableName = z.string().regex(/^[^.]+\.[^.]+$/);
/** A source primary key: column name to value, canonical or as a department's table holds it (text). */
const sourceKey = z.record(z.string().max(256), z.union([z.string().max(65_535), z.number(), z.boolean(), z.null()]));

/** Snapshot registered tables again from their first key (`cdc snapshot`). */
const snapshotSignal = z.object({
  action: z.literal('snapshot'),
  source: z.string(),
  tables: z.array(tableName).min(1),
  requestedBy: z.string().optional(),
});

/**
 * Deliver named rows of one table again to one department only (`cdc repair`), through the
 * pipeline: `keys` are read at the source and delivered as they are; `deletes` too, and
 * those the source has no row for are deleted at the department; `shareKeys` (the share
 * topic's message key JSON, for keys the department holds tokenized) are deleted at the
 * department by that key, unconditionally (the reader cannot map a token back to a row).
 */
const repairSignal = z.object({
  action: z.literal('repair'),
  source: z.string(),
  table: tableName,
  department: z.string().min(1).max(200),
  /** The repair's id, for logs and the ledger; it travels with every event of the repair. */
  request: z.string().min(1).max(200),
  keys: z.array(sourceKey).max(MAX_REPAIR_KEYS).default([]),
  deletes: z.array(sourceKey).max(MAX_REPAIR_KEYS).default([]),
  shareKeys: z.array(z.string().min(2).max(65_535)).max(MAX_REPAIR_KEYS).default([]),
  requestedBy: z.string().optional(),
});

/** A request to the reader of one source, sent on `<prefix>.signals` (keyed by source). */
export const readerSignal = z.discriminatedUnion('action', [snapshotSignal, repairSignal]).superRefine((signal, ctx) => {
  if (signal.action !== 'repair') return;
  const named = signal.keys.length + signal.deletes.length + signal.shareKeys.length;
  if (named === 0) ctx.addIssue({ code: 'custom', message: 'a repair names no keys, deletes or share keys' });
  if (named > MAX_REPAIR_KEYS) ctx.addIssue({ code: 'custom', message: `a repair names ${named} keys, over ${MAX_REPAIR_KEYS}: split it` });
});

export type ReaderSignal = z.input<typeof readerSignal>;
export type RepairSignal = z.output<typeof repairSignal>;
export type SnapshotSignal = z.output<typeof snapshotSignal>;

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
    /** Acts on a signal; a promise (a repair) holds the next signal and the commit until it settles. */
    private readonly onSignal: (signal: z.output<typeof readerSignal>) => Promise<void> | void,
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
    let parsed: unknown;
    try {
      parsed = JSON.parse(message.value.toString());
    } catch {
      parsed = undefined;
    }
    const signal = readerSignal.safeParse(parsed);
    if (!signal.success || signal.data.source !== this.source) {
      // The problems name paths and limits, never the values (a key may be personal).
      const problems = signal.success ? ['addressed to another source'] : signal.error.issues.map((i) => `${i.path.map(String).join('.') || 'signal'}: ${i.message}`).slice(0, 5);
      this.logger.warn({ code: 'SIGNAL_REFUSED', offset: message.offset, problems }, 'signal refused: malformed');
      return;
    }
    this.logger.info(signalSummary(signal.data), 'signal received');
    const acting = this.onSignal(signal.data);
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

/** What a log line says of a signal: its tables and counts, never a key. */
export function signalSummary(signal: z.output<typeof readerSignal>): Record<string, unknown> {
  if (signal.action === 'snapshot') return { action: signal.action, tables: signal.tables, requestedBy: signal.requestedBy };
  const { action, table, department, request, requestedBy } = signal;
  return { action, table, department, request, requestedBy, keys: signal.keys.length, deletes: signal.deletes.length, shareKeys: signal.shareKeys.length };
}
