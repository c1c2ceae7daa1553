import { randomUUID } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import { ConsumerLoop, eachMessage, recordForgery, topics, type BinlogPosition, type KeyProvider, type Logger, type PipelineConfig } from '@cityshare/shared';

/** Binlog positions in order: file sequence, then offset in the file. */
export function comparePositions(a: BinlogPosition, b: BinlogPosition): number {
  const seq = (p: BinlogPosition) => Number(/\.(\d+)$/.exec(p.file)?.[1] ?? 0);
  return seq(a) - seq(b) || a.pos - b.pos;
}

/** Where one department's delivery of one table stands, for the waiting verifier. */
export interface Lane {
  source: string;
  rawTopic: string;
  shareTopic: string;
  department: string;
}

/**
 * Tells when the pipeline has delivered to a department every change a source committed up
 * to a binlog position: the reader's checkpoint (authenticated with the pipeline key) is at
 * or past it, then the department's transformer group has committed every raw record there
 * was at that moment, then its sink group every share record there was after that. Kafka's
 * own offsets, no clock: what the department holds after that includes every change up to
 * the position (and perhaps later ones, which carry later versions).
 */
export class PipelineProgress {
  private readonly checkpoints = new Map<string, BinlogPosition>();
  private loop: ConsumerLoop | undefined;
  private admin: Admin | undefined;
  private readonly groupId: string;

  constructor(
    private readonly kafka: Kafka,
    private readonly config: PipelineConfig,
    private readonly keys: () => KeyProvider,
    private readonly logger: Logger,
  ) {
    this.groupId = `${topics.checkpoints(config.kafka.topicPrefix)}.loader.verifier-${randomUUID()}`;
  }

  async start(): Promise<void> {
    this.admin = this.kafka.admin();
    await this.admin.connect();
    const topic = topics.checkpoints(this.config.kafka.topicPrefix);
    // A private reader of the (compacted) checkpoints: the newest authentic one of each source, kept up to date.
    this.loop = await ConsumerLoop.start(this.kafka, {
      // A checkpoint loader's group (like the reader's own at start): removed again at stop.
      groupId: this.groupId,
      topics: [topic],
      settings: this.config.kafka,
      commit: false,
      eachBatch: eachMessage(async (message, { partition }) => {
        const source = message.key?.toString();
        if (!source || !message.value) return;
        const forged = recordForgery(this.keys(), topic, message);
        if (forged) {
          this.logger.warn({ code: forged.code, topic, partition, offset: message.offset }, `checkpoint ignored: ${forged.message}`);
          return;
        }
        const { file, pos } = JSON.parse(message.value.toString()) as BinlogPosition;
        const known = this.checkpoints.get(source);
        if (!known || comparePositions({ file, pos }, known) > 0) this.checkpoints.set(source, { file, pos });
      }),
    });
  }

  /**
   * Waits until `lane` has delivered every change up to `position`; false when it has not
   * within `timeoutMs` (the department lags, or its table is paused): the caller cannot
   * settle what it compared then.
   */
  async waitFor(lane: Lane, position: BinlogPosition, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const until = async (done: () => Promise<boolean>) => {
      for (;;) {
        if (await done()) return true;
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const prefix = this.config.kafka.topicPrefix;
    if (!(await until(async () => {
      const at = this.checkpoints.get(lane.source);
      return at !== undefined && comparePositions(at, position) >= 0;
    }))) return false;
    const raw = await this.ends(lane.rawTopic);
    if (!(await until(() => this.committed(`${prefix}.transformer.${lane.department}`, lane.rawTopic, raw)))) return false;
    const share = await this.ends(lane.shareTopic);
    return until(() => this.committed(`${prefix}.sink.${lane.department}`, lane.shareTopic, share));
  }

  private async ends(topic: string): Promise<Map<number, bigint>> {
    const offsets = await this.admin!.fetchTopicOffsets(topic);
    return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  }

  /** Whether `groupId` has committed, on every partition of `topic`, at least `ends`. */
  private async committed(groupId: string, topic: string, ends: Map<number, bigint>): Promise<boolean> {
    const [offsets] = await this.admin!.fetchOffsets({ groupId, topics: [topic] });
    const byPartition = new Map((offsets?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
    return [...ends].every(([partition, end]) => end === 0n || (byPartition.get(partition) ?? -1n) >= end);
  }

  async stop(): Promise<void> {
    await this.loop?.stop();
    await this.admin?.deleteGroups([this.groupId]).catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
  }
}
