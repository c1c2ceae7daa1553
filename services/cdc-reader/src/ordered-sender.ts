import type { Producer } from 'kafkajs';
import type { BinlogPosition, Logger } from '@cityshare/shared';
import type { OutgoingMessage, RawFrameWriter } from './raw-frame-writer.js';

export interface SenderOptions<S> {
  /** Queue bytes over which the binlog is paused; it resumes below half. */
  maxBytes: number;
  /** Called with the newest transaction boundary whose events Kafka has all acknowledged. */
  onAcked: (position: BinlogPosition, commitTsMs: number, state: S | undefined) => void;
  /** true when the queue went over its byte limit, false when it drained below half. */
  onPressure: (full: boolean) => void;
  onError: (err: Error) => void;
}

interface Boundary<S> {
  /** Sequence number of the last message written before this commit. */
  seq: number;
  position: BinlogPosition;
  tsMs: number;
  /** Progress that becomes durable with this boundary (e.g. snapshot state). */
  state: S | undefined;
}

/**
 * Sends what the frame writer holds to Kafka, in order, one produce request at a time
 * (acks from every in-sync replica). Frames fill while the previous request is in flight,
 * so a quiet source still sends each change at once and a burst sends large frames. A
 * transaction boundary is reported as acknowledged only once every message written before
 * it is, so a checkpoint never skips an unacknowledged event; over `maxBytes` queued, the
 * producer of the messages is told to pause (backpressure) until half is sent.
 */
export class OrderedSender<S = unknown> {
  private boundaries: Boundary<S>[] = [];
  private full = false;
  private sending: Promise<void> | null = null;
  private failed: Error | null = null;
  /** When the produce request in flight was sent (0: none in flight). */
  private requestSince = 0;

  constructor(
    private readonly producer: Producer,
    private readonly frames: RawFrameWriter,
    private readonly options: SenderOptions<S>,
    private readonly logger: Logger,
  ) {}

  get queuedBytes(): number {
    return this.frames.queuedBytes;
  }

  /** How long the produce request in flight has waited for the brokers (0 when none is). */
  get stalledMs(): number {
    return this.requestSince === 0 ? 0 : Date.now() - this.requestSince;
  }

  /** One change event and the JSON of its protected columns (null: none); call `enqueued()` after the last of a batch. */
  enqueueEvent(topic: string, key: string, json: string, secrets: string | null): void {
    this.frames.writeEvent(topic, key, json, secrets);
  }

  /** After a batch of `enqueueEvent`s: backpressure and sending. */
  enqueued(): void {
    if (!this.full && this.frames.queuedBytes >= this.options.maxBytes) {
      this.full = true;
      this.options.onPressure(true);
    }
    this.kick();
  }

  /** A single keyed record (schemas, markers, schema changes): it goes out after every event enqueued before it. */
  enqueueRecord(m: OutgoingMessage): void {
    this.frames.writeRecord(m);
    this.enqueued();
  }

  /** A transaction ended at `position`: reported by `onAcked`, with `state`, once everything before it is acknowledged. */
  markBoundary(position: BinlogPosition, tsMs: number, state?: S): void {
    this.boundaries.push({ seq: this.frames.lastSeq, position, tsMs, state });
    this.kick();
  }

  /** Resolves when everything enqueued so far is acknowledged. */
  async drain(): Promise<void> {
    while (!this.frames.empty || this.sending) {
      if (this.failed) throw this.failed;
      this.kick();
      await (this.sending ?? new Promise((r) => setImmediate(r)));
    }
    if (this.failed) throw this.failed;
    this.releaseBoundaries(this.frames.lastSeq);
  }

  /** Resolves once the queue is below half its byte limit. */
  async waitForRoom(): Promise<void> {
    while (this.frames.queuedBytes >= this.options.maxBytes / 2 && !this.failed) await new Promise((r) => setTimeout(r, 20));
  }

  private kick(): void {
    if (this.sending || this.failed) return;
    this.sending = this.loop().finally(() => {
      this.sending = null;
    });
  }

  private async loop(): Promise<void> {
    for (;;) {
      try {
        // Frames still open are closed now: they are as full as waiting for the last request made them.
        this.frames.closeOpen();
      } catch (err) {
        this.stopOn(err as Error, 'sealing a raw frame failed');
        return;
      }
      const request = this.frames.takeRequest();
      if (!request) {
        this.releaseBoundaries(this.frames.lastSeq);
        return;
      }
      this.requestSince = Date.now();
      try {
        await this.producer.sendBatch({ acks: -1, topicMessages: request.topicMessages });
      } catch (err) {
        this.stopOn(err as Error, 'publishing to Kafka failed');
        return;
      } finally {
        this.requestSince = 0;
      }
      this.releaseBoundaries(this.frames.acknowledged(request));
      if (this.full && this.frames.queuedBytes < this.options.maxBytes / 2) {
        this.full = false;
        this.options.onPressure(false);
      }
    }
  }

  /** Nothing is sent after a failure: a later message must never be acknowledged past a lost one. */
  private stopOn(err: Error, what: string): void {
    this.failed = err;
    this.logger.error({ err }, what);
    this.options.onError(err);
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
