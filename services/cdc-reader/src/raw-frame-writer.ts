import type { TopicMessages } from 'kafkajs';
import { FRAME_LAYOUT, RAW_FRAME_HEADER } from '@cityshare/shared';
import { KeyPartitioner } from './kafka-partition.js';

export interface OutgoingMessage {
  topic: string;
  key: string;
  value: Buffer;
  /** Kafka headers (a table schema's MAC, record-mac.ts). */
  headers?: Record<string, string>;
}

export interface FrameWriterOptions {
  /** Change events per raw frame at most. */
  maxFrameEvents: number;
  /** Partitions of a raw topic (frames are placed by the key of their events). */
  partitionsOf: (topic: string) => number;
  /** Seals a frame's protected columns (UTF-8 JSON) bound to `aad`: `enc:v1:` and base64, as `sealJson` writes. */
  seal: (json: Buffer, aad: Buffer) => string;
}

/** One Kafka message: a frame of change events of one partition, or a single keyed record. */
interface Frame {
  topic: string;
  /** Set for frames; single records are placed by kafkajs from their key. */
  partition: number | null;
  key: string | null;
  /** Records: their headers. */
  headers?: Record<string, string>;
  /** Frames: the layout's head and the events' JSON so far, comma-separated (the rest is written on closing); records: the value. */
  buf: Buffer;
  /** Bytes of `buf` written. */
  used: number;
  /** Frames: `[` and, per event so far, the JSON of its protected columns or null; null while no event has any. */
  secrets: Buffer | null;
  secretsUsed: number;
  /** Events in a frame (1 for a record). */
  count: number;
  /** Queue bytes of this message: for a frame, at least the length of its value while open, exactly it once closed. */
  bytes: number;
  minSeq: number;
  maxSeq: number;
}

/** The messages of one produce request, oldest first, and the frames they came from. */
export interface FrameRequest {
  topicMessages: TopicMessages[];
  /** What `acknowledged` releases. */
  readonly frames: readonly Frame[];
}

/**
 * Frame bytes at most, and bytes of one partition in one produce request (brokers refuse
 * record batches over 1 MiB by default). kafkajs encodes each message, each batch and the
 * request into buffers that double to the next power of two above their content, so
 * these stay just under one: a frame of 256 KiB exactly would take 512 KiB buffers.
 */
const MAX_FRAME_BYTES = (256 << 10) - 256;
const MAX_PARTITION_REQUEST_BYTES = 900 << 10;
const MAX_REQUEST_BYTES = (2 << 20) - (64 << 10);
/** First buffer of a frame; it doubles as events arrive, up to MAX_FRAME_BYTES. */
const FIRST_FRAME_BUFFER = 16 << 10;
/** Frame buffers of full size kept for reuse once Kafka has them. */
const SPARE_FRAME_BUFFERS = 16;
/** A frame's layout (raw-frame.ts): `{"events":[` events `],"sealed":` ciphertext `}`. */
const HEAD = Buffer.from(FRAME_LAYOUT.head);
const SEALED_KEY = Buffer.from(FRAME_LAYOUT.sealed);
const TAIL = FRAME_LAYOUT.tail.length;

/** Upper bound of the sealed string (with its quotes) of `n` bytes of JSON: `"enc:v1:` base64 of (version, key id of up to 255 bytes, IV, ciphertext, tag) `"`. */
function sealedBound(n: number): number {
  return 2 + 7 + 4 * Math.ceil((2 + 255 + 12 + n + 16) / 3);
}

/** Upper bound of a frame's value with `used` bytes of events and `secrets` bytes of their protected columns' list so far. */
function frameBound(used: number, secrets: number): number {
  return used + SEALED_KEY.length + sealedBound(secrets + 1) + TAIL;
}

/** Bytes of a frame's protected columns' list so far: `[` and a null per event while none of them has any. */
function secretsBytes(frame: Frame): number {
  return frame.secrets === null ? 1 + 5 * frame.count : frame.secretsUsed;
}

/** `[null,...,null]`: the protected columns of a frame none of whose `count` events (at least one) has any. */
function nullList(count: number): Buffer {
  return Buffer.from(`[${'null,'.repeat(count - 1)}null]`, 'latin1');
}

/**
 * The bytes of the raw-topic message an event would be in a frame of its own (bounded from
 * above by at most the seal's key-id allowance), or null when it is within `limit`. The
 * exact UTF-8 lengths are counted only when 3 bytes per character could be over it.
 */
export function oversizeEventBytes(json: string, secrets: string | null, limit: number): number | null {
  if (aloneBound(json.length * 3, secrets === null ? 0 : secrets.length * 3) <= limit) return null;
  const bytes = aloneBound(Buffer.byteLength(json), secrets === null ? 0 : Buffer.byteLength(secrets));
  return bytes > limit ? bytes : null;
}

/** frameBound of a frame of one event: its JSON, and `[`, its protected columns (or null) in the list. */
function aloneBound(jsonBytes: number, secretBytes: number): number {
  return frameBound(HEAD.length + jsonBytes, 1 + Math.max(secretBytes, 4));
}

/**
 * The bytes of the raw topics, without I/O. Change events of the same raw topic partition
 * are packed into frames (one Kafka message holding up to `maxFrameEvents` events, in
 * order, and their protected columns under one seal; layout in raw-frame.ts): Kafka's
 * per-message cost and the cipher's per-call cost are paid once per frame, not per row.
 * Every message gets a sequence number in the order it was written, and the queue's bytes
 * are counted (open frames at their upper bound, closed ones exactly), so a sender can
 * apply backpressure and tell which messages an acknowledged request covered.
 */
export class RawFrameWriter {
  /** Open frames per topic, by partition, and all of them in the order they were opened. */
  private readonly open = new Map<string, Array<Frame | undefined>>();
  private openFrames: Frame[] = [];
  private closed: Frame[] = [];
  private readonly partitionCounts = new Map<string, number>();
  private readonly partitioner = new KeyPartitioner();
  private readonly spare: Buffer[] = [];
  private seq = 0;
  private bytes = 0;

  constructor(private readonly options: FrameWriterOptions) {}

  /** Bytes of every message written and not yet acknowledged. */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** Sequence number of the last message written (0: none yet). */
  get lastSeq(): number {
    return this.seq;
  }

  /** True when every message written has been taken and acknowledged. */
  get empty(): boolean {
    return this.closed.length === 0 && this.openFrames.length === 0;
  }

  /** One change event and the JSON of its protected columns (null: none), into the open frame of its partition. */
  writeEvent(topic: string, key: string, json: string, secrets: string | null): void {
    let frames = this.open.get(topic);
    if (!frames) this.open.set(topic, (frames = []));
    const partition = this.partitionOf(topic, key);
    let frame = frames[partition];
    // Upper bounds of the UTF-8 bytes; the exact counts only when the bounds are not enough.
    let bytes = json.length * 3;
    let secretBytes = secrets === null ? 0 : secrets.length * 3;
    if (frame && this.boundWith(frame, bytes, secrets === null ? -1 : secretBytes) > MAX_FRAME_BYTES) {
      bytes = Buffer.byteLength(json);
      if (secrets !== null) secretBytes = Buffer.byteLength(secrets);
      // A large event starts a frame of its own rather than pushing a full one past the broker's message limit.
      if (this.boundWith(frame, bytes, secrets === null ? -1 : secretBytes) > MAX_FRAME_BYTES) {
        this.close(frame);
        frames[partition] = frame = undefined;
      }
    }
    if (!frame) {
      frame = this.newFrame(topic, partition, null, this.frameBuffer(HEAD.length + bytes));
      frame.used = HEAD.copy(frame.buf, 0);
      this.openFrames.push(frame);
      frames[partition] = frame;
    }
    // Room for a comma and the event.
    if (frame.used + 1 + bytes > frame.buf.length) frame.buf = this.grow(frame.buf, frame.used, frame.used + 1 + bytes);
    if (frame.count > 0) frame.buf[frame.used++] = 0x2c; // ,
    frame.used += frame.buf.write(json, frame.used, 'utf8');
    if (secrets !== null || frame.secrets !== null) this.addSecrets(frame, secrets, secretBytes);
    frame.count++;
    frame.maxSeq = ++this.seq;
    this.account(frame, frameBound(frame.used, secretsBytes(frame)));
    if (frame.count >= this.options.maxFrameEvents || frame.bytes >= MAX_FRAME_BYTES) {
      this.close(frame);
      frames[partition] = undefined;
    }
  }

  /** A single keyed record (schemas, markers, schema changes), unframed: it goes out after every event written before it. */
  writeRecord(m: OutgoingMessage): void {
    this.closeOpen();
    const frame = this.newFrame(m.topic, null, m.key, m.value);
    frame.headers = m.headers;
    frame.count = 1;
    frame.used = m.value.length;
    frame.maxSeq = ++this.seq;
    this.account(frame, Buffer.byteLength(m.key) + m.value.length);
    this.closed.push(frame);
  }

  /** Seals every open frame: they are as full as they get before the next request. Throws when sealing fails. */
  closeOpen(): void {
    if (this.openFrames.length === 0) return;
    for (const frame of this.openFrames) {
      this.finish(frame);
      this.closed.push(frame);
    }
    this.openFrames = [];
    for (const frames of this.open.values()) frames.length = 0;
  }

  /** The closed messages that fit one produce request, oldest first; null when none is closed. */
  takeRequest(): FrameRequest | null {
    if (this.closed.length === 0) return null;
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
    const frames = this.closed.splice(0, n);
    return { frames, topicMessages: wireMessages(frames) };
  }

  /**
   * Kafka acknowledged `request` (the only one taken and not yet acknowledged): its bytes
   * leave the queue and its buffers are reused. Returns the sequence number up to which
   * every message written is acknowledged: the oldest one not yet sent is next.
   */
  acknowledged(request: FrameRequest): number {
    for (const f of request.frames) {
      this.bytes -= f.bytes;
      if (f.partition !== null) this.release(f.buf);
    }
    let min = this.seq + 1;
    for (const f of this.closed) min = Math.min(min, f.minSeq);
    for (const f of this.openFrames) min = Math.min(min, f.minSeq);
    return min - 1;
  }

  private partitionOf(topic: string, key: string): number {
    let n = this.partitionCounts.get(topic);
    if (n === undefined) this.partitionCounts.set(topic, (n = this.options.partitionsOf(topic)));
    return this.partitioner.partitionOf(key, n);
  }

  private newFrame(topic: string, partition: number | null, key: string | null, buf: Buffer): Frame {
    return { topic, partition, key, buf, used: 0, secrets: null, secretsUsed: 0, count: 0, bytes: 0, minSeq: this.seq + 1, maxSeq: 0 };
  }

  /** Sets a message's queue bytes, keeping the queue's total. */
  private account(frame: Frame, bytes: number): void {
    this.bytes += bytes - frame.bytes;
    frame.bytes = bytes;
  }

  /** The frame's bound once it holds one more event of `bytes` and protected columns of `secretBytes` (-1: none). */
  private boundWith(frame: Frame, bytes: number, secretBytes: number): number {
    // The list so far, a comma and the entry (`null` when none).
    return frameBound(frame.used + 1 + bytes, secretsBytes(frame) + 1 + Math.max(secretBytes, 4));
  }

  /** Appends an event's protected columns (or null) to its frame's, starting them with a null per earlier event. */
  private addSecrets(frame: Frame, secrets: string | null, bytes: number): void {
    if (frame.secrets === null) {
      frame.secrets = this.frameBuffer(2 + 5 * frame.count + bytes);
      frame.secrets[0] = 0x5b; // [
      frame.secretsUsed = 1;
      for (let i = 0; i < frame.count; i++) frame.secretsUsed += frame.secrets.write(i > 0 ? ',null' : 'null', frame.secretsUsed, 'latin1');
    }
    // A comma, the entry, and room for the closing `]` that `finish` writes.
    const need = frame.secretsUsed + 1 + Math.max(bytes, 4) + 1;
    if (need > frame.secrets.length) frame.secrets = this.grow(frame.secrets, frame.secretsUsed, need);
    if (frame.count > 0) frame.secrets[frame.secretsUsed++] = 0x2c; // ,
    frame.secretsUsed += frame.secrets.write(secrets ?? 'null', frame.secretsUsed, 'utf8');
  }

  private frameBuffer(atLeast: number): Buffer {
    if (atLeast <= FIRST_FRAME_BUFFER) return Buffer.allocUnsafe(FIRST_FRAME_BUFFER);
    if (atLeast <= MAX_FRAME_BYTES + 1) return this.spare.pop() ?? Buffer.allocUnsafeSlow(MAX_FRAME_BYTES + 1);
    return Buffer.allocUnsafeSlow(atLeast);
  }

  /** A larger buffer holding the first `used` bytes of `buf`, which is released. */
  private grow(buf: Buffer, used: number, atLeast: number): Buffer {
    let size = buf.length * 2;
    while (size < atLeast) size *= 2;
    const next = this.frameBuffer(Math.min(size, Math.max(atLeast, MAX_FRAME_BYTES + 1)));
    buf.copy(next, 0, 0, used);
    this.release(buf);
    return next;
  }

  private release(buf: Buffer): void {
    if (buf.length === MAX_FRAME_BYTES + 1 && this.spare.length < SPARE_FRAME_BUFFERS) this.spare.push(buf);
  }

  /** An open frame is complete: it is finished and queues for sending. */
  private close(frame: Frame): void {
    this.finish(frame);
    const i = this.openFrames.indexOf(frame);
    if (i >= 0) this.openFrames.splice(i, 1);
    this.closed.push(frame);
  }

  /**
   * Writes the end of a frame: `],"sealed":`, its protected columns sealed (bound to the
   * events array), `}`. A frame none of whose events has protected columns is sealed too
   * (a list of nulls): the seal is what authenticates the frame to the transformer.
   */
  private finish(frame: Frame): void {
    const end = frameBound(frame.used, secretsBytes(frame));
    if (end > frame.buf.length) frame.buf = this.grow(frame.buf, frame.used, end);
    const buf = frame.buf;
    let at = frame.used + SEALED_KEY.copy(buf, frame.used);
    let secrets: Buffer;
    if (frame.secrets) {
      frame.secrets[frame.secretsUsed++] = 0x5d; // ]
      secrets = frame.secrets.subarray(0, frame.secretsUsed);
    } else {
      secrets = nullList(frame.count);
    }
    // The associated data: the events array, from its `[` to its `]`.
    const sealed = this.options.seal(secrets, buf.subarray(HEAD.length - 1, frame.used + 1));
    if (frame.secrets) this.release(frame.secrets);
    frame.secrets = null;
    buf[at++] = 0x22; // "
    at += buf.write(sealed, at, 'latin1');
    buf[at++] = 0x22;
    buf[at++] = 0x7d; // }
    frame.used = at;
    this.account(frame, at);
  }
}

/** The messages of `frames` as kafkajs sends them: frames to their partition with their event count, records by their key. */
function wireMessages(frames: Frame[]): TopicMessages[] {
  const byTopic = new Map<string, TopicMessages['messages']>();
  for (const f of frames) {
    let list = byTopic.get(f.topic);
    if (!list) byTopic.set(f.topic, (list = []));
    if (f.partition === null) {
      list.push({ key: f.key!, value: f.buf, ...(f.headers ? { headers: f.headers } : {}) });
    } else {
      list.push({ partition: f.partition, value: f.buf.subarray(0, f.used), headers: { [RAW_FRAME_HEADER]: String(f.count) } });
    }
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}
