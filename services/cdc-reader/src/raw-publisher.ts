import type { Producer } from 'kafkajs';
import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { RAW_FRAME_HEADER, type BinlogPosition, type Logger } from '@cityshare/shared';

export interface OutgoingMessage {
  topic: string;
  key: string;
  value: Buffer;
}

/** A change event for a raw topic: its JSON, and the key that places it. */
export interface OutgoingEvent {
  topic: string;
  key: string;
  json: string;
}

export interface PublisherOptions<S> {
  maxBytes: number;
  /** Change events per raw frame at most. */
  maxFrameEvents: number;
  /** Partitions of a raw topic (frames are placed by the key of their events). */
  partitionsOf: (topic: string) => number;
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

/** One Kafka message: a frame of change events of one partition, or a single keyed record. */
interface Frame {
  topic: string;
  /** Set for frames; single records are placed by kafkajs from their key. */
  partition: number | null;
  key: string | null;
  /** Event JSON for frames; the record's value for single records. */
  parts: Array<string | Buffer>;
  bytes: number;
  minSeq: number;
  maxSeq: number;
}

/** Frame bytes at most, and bytes of one partition in one produce request (brokers refuse record batches over 1 MiB by default). */
const MAX_FRAME_BYTES = 256 << 10;
const MAX_PARTITION_REQUEST_BYTES = 900 << 10;
const MAX_REQUEST_BYTES = 4 << 20;

/**
 * A byte-bounded queue between the binlog and Kafka. Change events of the same raw topic
 * partition are packed into frames (one Kafka message holding up to `maxFrameEvents`
 * events, in order): Kafka's per-message cost is paid once per frame, not per row.
 * Frames fill while the previous produce request is in flight, so a quiet source still
 * sends each change at once and a burst sends large frames. Frames go out in order, one
 * request at a time; a transaction boundary is reported as acknowledged only once every
 * event enqueued before it is, so a checkpoint never skips an unacknowledged event.
 */
export class RawPublisher<S = unknown> {
  private readonly open = new Map<string, Frame>();
  private closed: Frame[] = [];
  private boundaries: Boundary<S>[] = [];
  private seq = 0;
  private bytes = 0;
  private full = false;
  private sending: Promise<void> | null = null;
  private failed: Error | null = null;
  private readonly partitioner = Partitioners.DefaultPartitioner();
  private readonly partitionMetadata = new Map<string, PartitionMetadata[]>();

  constructor(
    private readonly producer: Producer,
    private readonly options: PublisherOptions<S>,
    private readonly logger: Logger,
  ) {}

  get queuedBytes(): number {
    return this.bytes;
  }

  /** Change events, framed per partition of their topic, placed by their key as kafkajs would place them. */
  enqueueEvents(messages: OutgoingEvent[]): void {
    for (const m of messages) {
      const partition = this.partitionOf(m.topic, m.key);
      const id = `${m.topic}\u0000${partition}`;
      let frame = this.open.get(id);
      // A large event starts a frame of its own rather than pushing a full one past the broker's message limit.
      if (frame && frame.parts.length > 0 && frame.bytes + Buffer.byteLength(m.json) + 1 > MAX_FRAME_BYTES) {
        this.open.delete(id);
        this.closed.push(frame);
        frame = undefined;
      }
      if (!frame) this.open.set(id, (frame = this.newFrame(m.topic, partition, null)));
      this.add(frame, m.json);
      if (frame.parts.length >= this.options.maxFrameEvents || frame.bytes >= MAX_FRAME_BYTES) {
        this.open.delete(id);
        this.closed.push(frame);
      }
    }
    this.afterEnqueue();
  }

  /** A single keyed record (schemas, markers, schema changes): it goes out after every event enqueued before it. */
  enqueueRecord(m: OutgoingMessage): void {
    this.closeOpenFrames();
    const frame = this.newFrame(m.topic, null, m.key);
    this.add(frame, m.value);
    this.closed.push(frame);
    this.afterEnqueue();
  }

  markBoundary(position: BinlogPosition, tsMs: number, state?: S): void {
    this.boundaries.push({ seq: this.seq, position, tsMs, state });
    this.kick();
  }

  /** Resolves when everything enqueued so far is acknowledged. */
  async drain(): Promise<void> {
    while (this.closed.length > 0 || this.open.size > 0 || this.sending) {
      if (this.failed) throw this.failed;
      this.kick();
      await (this.sending ?? new Promise((r) => setImmediate(r)));
    }
    if (this.failed) throw this.failed;
    this.releaseBoundaries(this.seq);
  }

  /** Resolves once the queue is below its byte limit. */
  async waitForRoom(): Promise<void> {
    while (this.bytes >= this.options.maxBytes / 2 && !this.failed) await new Promise((r) => setTimeout(r, 20));
  }

  private partitionOf(topic: string, key: string): number {
    let partitionMetadata = this.partitionMetadata.get(topic);
    if (!partitionMetadata) {
      const n = this.options.partitionsOf(topic);
      partitionMetadata = Array.from({ length: n }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [], isr: [] }));
      this.partitionMetadata.set(topic, partitionMetadata);
    }
    return this.partitioner({ topic, partitionMetadata, message: { key, value: null } });
  }

  private newFrame(topic: string, partition: number | null, key: string | null): Frame {
    const bytes = key === null ? 1 : Buffer.byteLength(key);
    this.bytes += bytes;
    return { topic, partition, key, parts: [], bytes, minSeq: this.seq + 1, maxSeq: 0 };
  }

  private add(frame: Frame, value: string | Buffer): void {
    const bytes = (typeof value === 'string' ? Buffer.byteLength(value) : value.length) + 1;
    frame.parts.push(value);
    frame.bytes += bytes;
    frame.maxSeq = ++this.seq;
    this.bytes += bytes;
  }

  private afterEnqueue(): void {
    if (!this.full && this.bytes >= this.options.maxBytes) {
      this.full = true;
      this.options.onPressure(true);
    }
    this.kick();
  }

  private closeOpenFrames(): void {
    for (const frame of this.open.values()) this.closed.push(frame);
    this.open.clear();
  }

  private kick(): void {
    if (this.sending || this.failed) return;
    this.sending = this.loop().finally(() => {
      this.sending = null;
    });
  }

  private async loop(): Promise<void> {
    for (;;) {
      // Frames still open are closed now: they are as full as waiting for the last request made them.
      this.closeOpenFrames();
      if (this.closed.length === 0) {
        this.releaseBoundaries(this.seq);
        return;
      }
      const batch = this.takeRequest();
      try {
        await this.producer.sendBatch({ acks: -1, topicMessages: wireMessages(batch) });
      } catch (err) {
        this.failed = err as Error;
        this.logger.error({ err }, 'publishing to Kafka failed');
        this.options.onError(err as Error);
        return;
      }
      for (const f of batch) this.bytes -= f.bytes;
      this.releaseBoundaries(this.ackedSeq());
      if (this.full && this.bytes < this.options.maxBytes / 2) {
        this.full = false;
        this.options.onPressure(false);
      }
    }
  }

  /** The closed frames that fit one produce request, oldest first. */
  private takeRequest(): Frame[] {
    const perPartition = new Map<string, number>();
    let total = 0;
    let n = 0;
    for (; n < this.closed.length; n++) {
      const f = this.closed[n]!;
      const id = `${f.topic}\u0000${f.partition ?? 'k'}`;
      const p = (perPartition.get(id) ?? 0) + f.bytes;
      if (n > 0 && (p > MAX_PARTITION_REQUEST_BYTES || total + f.bytes > MAX_REQUEST_BYTES)) break;
      perPartition.set(id, p);
      total += f.bytes;
    }
    return this.closed.splice(0, n);
  }

  /** Every event up to this sequence number is acknowledged: the oldest unsent one is next. */
  private ackedSeq(): number {
    let min = this.seq + 1;
    for (const f of this.closed) min = Math.min(min, f.minSeq);
    for (const f of this.open.values()) min = Math.min(min, f.minSeq);
    return min - 1;
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

function wireMessages(frames: Frame[]): Array<{ topic: string; messages: Array<{ key?: string; value: Buffer; partition?: number; headers?: Record<string, string> }> }> {
  const byTopic = new Map<string, Array<{ key?: string; value: Buffer; partition?: number; headers?: Record<string, string> }>>();
  for (const f of frames) {
    let list = byTopic.get(f.topic);
    if (!list) byTopic.set(f.topic, (list = []));
    if (f.partition === null) {
      list.push({ key: f.key!, value: f.parts[0] as Buffer });
    } else {
      // A frame is a JSON array of change events.
      list.push({ partition: f.partition, value: Buffer.from(`[${f.parts.join(',')}]`), headers: { [RAW_FRAME_HEADER]: String(f.parts.length) } });
    }
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}
