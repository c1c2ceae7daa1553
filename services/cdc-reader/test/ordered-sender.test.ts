import { describe, expect, it } from 'vitest';
import type { Producer, ProducerBatch } from 'kafkajs';
import { FileKeyring, createLogger, decodeRawMessage, sealJson, type BinlogPosition } from '@cityshare/shared';
import { OrderedSender } from '../src/ordered-sender.js';
import { RawFrameWriter } from '../src/raw-frame-writer.js';

/** Records produce requests; each resolves when the test releases it (a broker under our control). */
class RecordingProducer {
  readonly requests: ProducerBatch[] = [];
  private waiting: Array<() => void> = [];
  failNext: Error | null = null;
  sendBatch(batch: ProducerBatch): Promise<[]> {
    // Values copied as kafkajs encodes them when sending: the writer reuses frame buffers once acknowledged.
    this.requests.push({ ...batch, topicMessages: batch.topicMessages!.map((t) => ({ ...t, messages: t.messages.map((m) => ({ ...m, value: Buffer.from(m.value as Buffer) })) })) });
    if (this.failNext) return Promise.reject(this.failNext);
    return new Promise((resolve) => this.waiting.push(() => resolve([])));
  }
  /** Acknowledges every request sent so far and lets the sender send the next one. */
  async ackAll(): Promise<void> {
    const w = this.waiting;
    this.waiting = [];
    for (const r of w) r();
    await new Promise((r) => setImmediate(r));
  }
}

const pos = (n: number): BinlogPosition => ({ file: 'mariadb-bin.000001', pos: n });
const ev = (id: number) => ({ key: JSON.stringify({ id }), json: JSON.stringify({ op: 'c', after: { id } }) });
const keys = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: Buffer.alloc(32, 9).toString('base64') }] } });

function setUp(options: { maxFrameEvents?: number; maxBytes?: number; seal?: (json: Buffer, aad: Buffer) => string } = {}) {
  const producer = new RecordingProducer();
  const acked: Array<{ pos: number; state: string | undefined }> = [];
  const pressure: boolean[] = [];
  const errors: Error[] = [];
  const frames = new RawFrameWriter({
    maxFrameEvents: options.maxFrameEvents ?? 1000,
    partitionsOf: () => 3,
    seal: options.seal ?? ((json, aad) => sealJson(keys.activeKey('pipeline'), json, aad)),
  });
  const sender = new OrderedSender<string>(producer as unknown as Producer, frames, {
    maxBytes: options.maxBytes ?? 1 << 20,
    onAcked: (p, _ts, state) => acked.push({ pos: p.pos, state }),
    onPressure: (full) => pressure.push(full),
    onError: (err) => errors.push(err),
  }, createLogger('test', 'silent'));
  /** Enqueues events of topic `t` as one batch, as the reader does for one binlog event. */
  const enqueue = (ids: number[]) => {
    for (const id of ids) sender.enqueueEvent('t', ev(id).key, ev(id).json, null);
    sender.enqueued();
  };
  return { producer, sender, acked, pressure, errors, enqueue };
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

/** The event ids in each frame of a request. */
function framesOf(batch: ProducerBatch): number[][] {
  return batch.topicMessages!.flatMap((t) => t.messages.map((m) => decodeRawMessage(m.value as Buffer).events.map((e) => Number(e.after!.id))));
}

describe('OrderedSender', () => {
  it('sends a lone event at once, and packs the events that arrive while a request is in flight into one frame per partition', async () => {
    const { producer, enqueue } = setUp();
    enqueue([1]);
    expect(producer.requests).toHaveLength(1);
    expect(framesOf(producer.requests[0]!)).toEqual([[1]]);
    enqueue(range(2, 300));
    expect(producer.requests).toHaveLength(1); // one request at a time
    await producer.ackAll();
    const frames = framesOf(producer.requests[1]!);
    expect(frames.length).toBeLessThanOrEqual(3);
    expect(frames.flat().sort((a, b) => a - b)).toEqual(range(2, 300));
  });

  it('reports a transaction boundary only once every event before it is acknowledged', async () => {
    const { producer, sender, acked, enqueue } = setUp();
    enqueue([1]);
    sender.markBoundary(pos(100), 0);
    enqueue([2, 3]);
    sender.markBoundary(pos(200), 0);
    expect(acked).toEqual([]);
    await producer.ackAll(); // the first request (event 1) is acknowledged; events 2 and 3 are sent now
    expect(acked.map((a) => a.pos)).toEqual([100]);
    await producer.ackAll();
    expect(acked.map((a) => a.pos)).toEqual([100, 200]);
    await sender.drain();
  });

  it('reports the newest state of the boundaries acknowledged together (snapshot progress is never lost)', async () => {
    const { producer, sender, acked, enqueue } = setUp();
    enqueue([1]);
    enqueue([2]);
    sender.markBoundary(pos(100), 0, 'chunk 1');
    enqueue([3]);
    sender.markBoundary(pos(200), 0);
    await producer.ackAll();
    await producer.ackAll();
    expect(acked).toEqual([{ pos: 200, state: 'chunk 1' }]);
  });

  it('sends a keyed record after every event enqueued before it', async () => {
    const { producer, sender, enqueue } = setUp();
    enqueue([1]);
    enqueue([2]);
    sender.enqueueRecord({ topic: 'schemas', key: 'ref1', value: Buffer.from('{}') });
    await producer.ackAll();
    const second = producer.requests[1]!.topicMessages!;
    expect(second.map((t) => t.topic)).toEqual(['t', 'schemas']);
    expect(second[1]!.messages[0]).toMatchObject({ key: 'ref1' });
  });

  it('signals backpressure over maxBytes and releases it below half', async () => {
    const { producer, sender, pressure, enqueue } = setUp({ maxBytes: 4096 });
    enqueue([0]);
    enqueue(range(1, 200));
    expect(pressure).toEqual([true]);
    let room = false;
    void sender.waitForRoom().then(() => (room = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(room).toBe(false);
    await producer.ackAll();
    await producer.ackAll();
    expect(pressure).toEqual([true, false]);
    expect(sender.queuedBytes).toBe(0);
    await new Promise((r) => setTimeout(r, 50));
    expect(room).toBe(true);
  });

  it('stops at the first failed request and acknowledges nothing after it', async () => {
    const { producer, sender, acked, errors, enqueue } = setUp();
    producer.failNext = new Error('broker gone');
    enqueue([1]);
    sender.markBoundary(pos(100), 0);
    await expect(sender.drain()).rejects.toThrow('broker gone');
    expect(acked).toEqual([]);
    expect(errors.map((e) => e.message)).toEqual(['broker gone']);
    enqueue([2]);
    expect(producer.requests).toHaveLength(1);
  });

  it('stops when a frame cannot be sealed, sending nothing of it', async () => {
    let seals = 0;
    const { producer, sender, acked, errors, enqueue } = setUp({
      seal: (json, aad) => {
        if (++seals === 2) throw new Error('key unusable');
        return sealJson(keys.activeKey('pipeline'), json, aad);
      },
    });
    enqueue([1]);
    sender.markBoundary(pos(100), 0);
    enqueue([2]);
    sender.markBoundary(pos(200), 0);
    await producer.ackAll();
    expect(errors.map((e) => e.message)).toEqual(['key unusable']);
    expect(producer.requests).toHaveLength(1);
    expect(acked.map((a) => a.pos)).toEqual([100]);
    await expect(sender.drain()).rejects.toThrow('key unusable');
  });

  it('tells how long the request in flight has waited for the brokers', async () => {
    const { producer, sender, enqueue } = setUp();
    expect(sender.stalledMs).toBe(0);
    enqueue([1]);
    await new Promise((r) => setTimeout(r, 30));
    expect(sender.stalledMs).toBeGreaterThanOrEqual(25);
    await producer.ackAll();
    expect(sender.stalledMs).toBe(0);
  });
});
