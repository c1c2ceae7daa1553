import type { Producer } from 'kafkajs';
import { topicMessages, type BinlogPosition, type Logger } from '@cityshare/shared';

export interface OutgoingMessage {
  topic: string;
  key: string;
  value: Buffer;
}

export interface PublisherOptions<S> {
  maxBytes: number;
  maxBatchMessages: number;
  /** Called with the newest transaction boundary whose events Kafka has all acknowledged. */
  onAcked: (position: BinlogPosition, commitTsMs: number, state: S | undefined) => void;
  /** true when the queue went over its byte limit, false when it drained below half. */
  onPressure: (full: boolean) => void;
  onError: (err: Error) => void;
}

interface Boundary<S> {
  /** Sequence number of the last message enqueued before this commit. */
  seq: number;
  position: BinlogPosition;
  tsMs: number;
  /** Progress that becomes durable with this boundary (e.g. snapshot state). */
  state: S | undefined;
}

/**
 * A byte-bounded queue between the binlog and Kafka. Messages go out in order in
 * batches; a transaction boundary is reported as acknowledged only once every message
 * before it is, so a checkpoint never skips an unacknowledged event.
 */
export class RawPublisher<S = unknown> {
  // A growing array with a head index: taking a batch must not copy the whole queue.
  private queue: Array<OutgoingMessage & { seq: number; bytes: number }> = [];
  private head = 0;
  private boundaries: Boundary<S>[] = [];
  private seq = 0;
  private bytes = 0;
  private full = false;
  private sending: Promise<void> | null = null;
  private failed: Error | null = null;

  constructor(
    private readonly producer: Producer,
    private readonly options: PublisherOptions<S>,
    private readonly logger: Logger,
  ) {}

  private get pending(): number {
    return this.queue.length - this.head;
  }

  get queuedBytes(): number {
    return this.bytes;
  }

  enqueue(messages: OutgoingMessage[]): void {
    for (const m of messages) {
      const bytes = m.value.length + m.key.length + m.topic.length;
      this.queue.push({ ...m, seq: ++this.seq, bytes });
      this.bytes += bytes;
    }
    if (!this.full && this.bytes >= this.options.maxBytes) {
      this.full = true;
      this.options.onPressure(true);
    }
    this.kick();
  }

  markBoundary(position: BinlogPosition, tsMs: number, state?: S): void {
    this.boundaries.push({ seq: this.seq, position, tsMs, state });
    this.kick();
  }

  /** Resolves when everything enqueued so far is acknowledged. */
  async drain(): Promise<void> {
    while (this.pending > 0 || this.sending) {
      if (this.failed) throw this.failed;
      await (this.sending ?? new Promise((r) => setImmediate(r)));
    }
    this.releaseBoundaries(this.seq);
  }

  private kick(): void {
    if (this.sending || this.failed) return;
    this.sending = this.loop().finally(() => {
      this.sending = null;
    });
  }

  private async loop(): Promise<void> {
    while (this.pending > 0 || this.boundaries.length > 0) {
      if (this.pending === 0) {
        this.releaseBoundaries(this.seq);
        return;
      }
      const batch = this.queue.slice(this.head, this.head + this.options.maxBatchMessages);
      try {
        await this.producer.sendBatch({
          acks: -1,
          topicMessages: topicMessages(batch),
        });
      } catch (err) {
        this.failed = err as Error;
        this.logger.error({ err }, 'publishing to Kafka failed');
        this.options.onError(err as Error);
        return;
      }
      this.head += batch.length;
      if (this.head > 10_000 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      for (const m of batch) this.bytes -= m.bytes;
      this.releaseBoundaries(batch[batch.length - 1]!.seq);
      if (this.full && this.bytes < this.options.maxBytes / 2) {
        this.full = false;
        this.options.onPressure(false);
      }
    }
  }

  /** Resolves once the queue is below its byte limit. */
  async waitForRoom(): Promise<void> {
    while (this.bytes >= this.options.maxBytes / 2 && !this.failed) await new Promise((r) => setTimeout(r, 20));
  }

  private releaseBoundaries(ackedSeq: number): void {
    let last: Boundary<S> | undefined;
    let state: S | undefined;
    while (this.boundaries.length > 0 && this.boundaries[0]!.seq <= ackedSeq) {
      last = this.boundaries.shift();
      state = last!.state ?? state;
    }
    if (last) this.options.onAcked(last.position, last.tsMs, state);
  }
}
