import { describe, expect, it } from 'vitest';
import { Partitioners, type Producer, type ProducerBatch } from 'kafkajs';
import { FileKeyring, createLogger, decodeRawMessage, RAW_FRAME_HEADER, sealJson, type BinlogPosition } from '@cityshare/shared';
import { RawPublisher, murmur2, oversizeEventBytes } from '../src/raw-publisher.js';

/** Records produce requests; each resolves when the test releases it (a broker under our control). */
class RecordingProducer {
  readonly requests: ProducerBatch[] = [];
  private waiting: Array<() => void> = [];
  failNext: Error | null = null;
  sendBatch(batch: ProducerBatch): Promise<[]> {
    // Values copied as kafkajs encodes them when sending: the publisher reuses frame buffers once acknowledged.
    this.requests.push({ ...batch, topicMessages: batch.topicMessages!.map((t) => ({ ...t, messages: t.messages.map((m) => ({ ...m, value: Buffer.from(m.value as Buffer) })) })) });
    if (this.failNext) return Promise.reject(this.failNext);
    return new Promise((resolve) => this.waiting.push(() => resolve([])));
  }
  /** Acknowledges every request sent so far and lets the publisher send the next one. */
  async ackAll(): Promise<void> {
    const w = this.waiting;
    this.waiting = [];
    for (const r of w) r();
    await new Promise((r) => setImmediate(r));
  }
}

const pos = (n: number): BinlogPosition => ({ file: 'mariadb-bin.000001', pos: n });
const ev = (topic: string, id: number) => ({ topic, key: JSON.stringify({ id }), json: JSON.stringify({ op: 'c', after: { id } }), secrets: null });
const keys = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: Buffer.alloc(32, 9).toString('base64') }] } });

function setUp(maxFrameEvents = 1000, maxBytes = 1 << 20) {
  const producer = new RecordingProducer();
  const acked: number[] = [];
  const pressure: boolean[] = [];
  const publisher = new RawPublisher<string>(producer as unknown as Producer, {
    maxBytes,
    maxFrameEvents,
    partitionsOf: () => 3,
    seal: (json, aad) => sealJson(keys.activeKey('pipeline'), json, aad),
    onAcked: (p) => acked.push(p.pos),
    onPressure: (full) => pressure.push(full),
    onError: () => undefined,
  }, createLogger('test', 'silent'));
  return { producer, publisher, acked, pressure };
}

/** The event ids in each frame of a request, per partition. */
function framesOf(batch: ProducerBatch): Array<{ partition: number; ids: number[] }> {
  return batch.topicMessages!.flatMap((t) => t.messages.map((m) => ({
    partition: m.partition!,
    ids: decodeRawMessage(m.value as Buffer).events.map((e) => Number(e.after!.id)),
  })));
}

describe('RawPublisher', () => {
  it('packs the events that arrive while a request is in flight into one frame per partition, in order', async () => {
    const { producer, publisher } = setUp();
    publisher.enqueueEvents([ev('t', 1)]);
    expect(framesOf(producer.requests[0]!)).toHaveLength(1); // a lone event goes out at once
    publisher.enqueueEvents(Array.from({ length: 300 }, (_, i) => ev('t', i + 2)));
    await producer.ackAll();
    const frames = framesOf(producer.requests[1]!);
    expect(frames.length).toBeLessThanOrEqual(3);
    expect(frames.flatMap((f) => f.ids).sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i + 2));
    for (const f of frames) expect(f.ids).toEqual([...f.ids].sort((a, b) => a - b));
    // The same key always lands on the same partition.
    const again = setUp();
    again.publisher.enqueueEvents([ev('t', 1)]);
    expect(framesOf(again.producer.requests[0]!)[0]!.partition).toBe(framesOf(producer.requests[0]!)[0]!.partition);
    expect(producer.requests[1]!.topicMessages![0]!.messages[0]!.headers).toHaveProperty(RAW_FRAME_HEADER);
  });

  it('caps frames at maxFrameEvents', async () => {
    const { producer, publisher } = setUp(10);
    publisher.enqueueEvents([ev('t', 0)]);
    publisher.enqueueEvents(Array.from({ length: 100 }, (_, i) => ev('t', i + 1)));
    await producer.ackAll();
    const frames = framesOf(producer.requests[1]!);
    expect(Math.max(...frames.map((f) => f.ids.length))).toBeLessThanOrEqual(10);
    expect(frames.flatMap((f) => f.ids)).toHaveLength(100);
  });

  it('starts a new frame rather than letting a large event push a full one past the frame limit', async () => {
    const { producer, publisher } = setUp(10_000, 64 << 20);
    const big = (id: number, kib: number) => ({ topic: 't', key: JSON.stringify({ id: 1 }), json: JSON.stringify({ op: 'c', after: { id, pad: 'x'.repeat(kib << 10) } }), secrets: null });
    publisher.enqueueEvents([ev('t', 0)]);
    publisher.enqueueEvents([big(1, 200), big(2, 200)]);
    await producer.ackAll();
    const sizes = producer.requests[1]!.topicMessages!.flatMap((t) => t.messages.map((m) => (m.value as Buffer).length));
    expect(sizes).toHaveLength(2);
    expect(Math.max(...sizes)).toBeLessThan(256 << 10);
  });

  it('reports a transaction boundary only once every event before it is acknowledged', async () => {
    const { producer, publisher, acked } = setUp();
    publisher.enqueueEvents([ev('t', 1)]);
    publisher.markBoundary(pos(100), 0);
    publisher.enqueueEvents([ev('t', 2), ev('t', 3)]);
    publisher.markBoundary(pos(200), 0);
    expect(acked).toEqual([]);
    await producer.ackAll(); // the first request (event 1) is acknowledged; events 2 and 3 are sent now
    expect(acked).toEqual([100]);
    await producer.ackAll();
    expect(acked).toEqual([100, 200]);
    await publisher.drain();
  });

  it('sends a keyed record after every event enqueued before it, unframed', async () => {
    const { producer, publisher } = setUp();
    publisher.enqueueEvents([ev('t', 1)]);
    publisher.enqueueEvents([ev('t', 2)]);
    publisher.enqueueRecord({ topic: 'schemas', key: 'ref1', value: Buffer.from('{}') });
    await producer.ackAll();
    const second = producer.requests[1]!.topicMessages!;
    expect(second.map((t) => t.topic)).toEqual(['t', 'schemas']);
    expect(second[1]!.messages[0]).toMatchObject({ key: 'ref1' });
  });

  it('signals backpressure over maxBytes and releases it below half', async () => {
    const { producer, publisher, pressure } = setUp(1000, 4096);
    publisher.enqueueEvents([ev('t', 0)]);
    publisher.enqueueEvents(Array.from({ length: 200 }, (_, i) => ev('t', i + 1)));
    expect(pressure).toEqual([true]);
    await producer.ackAll();
    await producer.ackAll();
    expect(pressure).toEqual([true, false]);
    expect(publisher.queuedBytes).toBe(0);
  });

  it('stops at the first failed request and acknowledges nothing after it', async () => {
    const { producer, publisher, acked } = setUp();
    producer.failNext = new Error('broker gone');
    publisher.enqueueEvents([ev('t', 1)]);
    publisher.markBoundary(pos(100), 0);
    await expect(publisher.drain()).rejects.toThrow('broker gone');
    expect(acked).toEqual([]);
  });
});

describe('RawPublisher frames and placement', () => {
  it('places keys as kafkajs\'s default partitioner does', () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    const keys = ['', 'a', 'ab', 'abc', 'abcd', '{"id":"1"}', '{"id":"123456789"}', '市民张三', '😀x', ...Array.from({ length: 500 }, (_, i) => JSON.stringify({ id: String(i * 7919), n: 'é'.repeat(i % 5) }))];
    for (const n of [1, 3, 7]) {
      const partitionMetadata = Array.from({ length: n }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [], isr: [] }));
      for (const key of keys) {
        const buf = Buffer.from(key);
        expect((murmur2(buf, buf.length) & 0x7fffffff) % n).toBe(kafkajs({ topic: 't', partitionMetadata, message: { key, value: null } }));
      }
    }
  });

  it('writes multi-byte events into frames that grow, each a JSON array of exactly its bytes', async () => {
    const { producer, publisher } = setUp(10_000, 64 << 20);
    publisher.enqueueEvents([ev('t', -1)]);
    const events = Array.from({ length: 2000 }, (_, i) => ({ topic: 't', key: JSON.stringify({ id: i }), json: JSON.stringify({ op: 'c', after: { id: i, name: `市民${i}😀`.repeat(1 + (i % 7)) } }), secrets: null }));
    publisher.enqueueEvents(events);
    // Open frames count at least their final size; closed ones exactly it.
    const queued = publisher.queuedBytes;
    await producer.ackAll();
    const messages = producer.requests.flatMap((r) => r.topicMessages!.flatMap((t) => t.messages));
    const sent = messages.reduce((n, m) => n + (m.value as Buffer).length, 0);
    expect(sent).toBeLessThanOrEqual(queued);
    expect(publisher.queuedBytes).toBe(sent - (messages[0]!.value as Buffer).length);
    for (const m of messages) {
      expect((m.value as Buffer).length).toBeLessThanOrEqual(256 << 10);
      expect(Number(m.headers![RAW_FRAME_HEADER])).toBe(decodeRawMessage(m.value as Buffer).events.length);
    }
    const ids = messages.flatMap((m) => decodeRawMessage(m.value as Buffer).events.map((e) => e.after as { id: number; name: string }));
    expect(ids.map((e) => e.id).sort((a, b) => a - b)).toEqual(Array.from({ length: 2001 }, (_, i) => i - 1));
    expect(ids.find((e) => e.id === 6)!.name).toBe('市民6😀'.repeat(7));
    await producer.ackAll();
    await publisher.drain();
    expect(publisher.queuedBytes).toBe(0);
  });
});

describe('RawPublisher sealing', () => {
  /** An event of row `id` whose `name` is protected (null for ids divisible by 3: a row without protected columns). */
  const person = (id: number, name = `市民${id}`) => ({
    topic: 't',
    key: JSON.stringify({ id }),
    json: JSON.stringify({ op: 'c', after: { id }, source: { db: 'civil', table: 'citizens', version: `v${id}` }, protected: id % 3 === 0 ? [] : ['name'] }),
    secrets: id % 3 === 0 ? null : JSON.stringify({ after: { name } }),
  });
  async function sentFrames(events: ReturnType<typeof person>[]): Promise<Buffer[]> {
    const { producer, publisher } = setUp(10_000, 64 << 20);
    publisher.enqueueEvents(events.slice(0, 1));
    publisher.enqueueEvents(events.slice(1));
    await producer.ackAll();
    await producer.ackAll();
    await publisher.drain();
    return producer.requests.flatMap((r) => r.topicMessages!.flatMap((t) => t.messages.map((m) => m.value as Buffer)));
  }

  it('seals the protected columns of a frame once, each event\'s in its place, and opens them with the keyring', async () => {
    const frames = await sentFrames(Array.from({ length: 600 }, (_, i) => person(i)));
    const opened = new Map<number, unknown>();
    for (const value of frames) {
      const text = value.toString();
      expect(text.startsWith('{"events":[')).toBe(true);
      expect(text.match(/enc:v1:/g)?.length ?? 0).toBeLessThanOrEqual(1);
      expect(text).not.toContain('市民');
      const frame = decodeRawMessage(value);
      frame.events.forEach((e, i) => opened.set(Number(e.after!.id), frame.secretsOf(i, keys)));
    }
    expect(opened.size).toBe(600);
    for (const [id, secrets] of opened) expect(secrets).toEqual(id % 3 === 0 ? null : { after: { name: `市民${id}` } });
  });

  it('seals a frame none of whose events has protected columns too (a list of nulls): the seal authenticates its events', async () => {
    const frames = await sentFrames([person(3), person(6), person(9)]);
    for (const value of frames) {
      expect(value.toString()).toMatch(/\],"sealed":"enc:v1:[A-Za-z0-9+/=]+"\}$/);
      const frame = decodeRawMessage(value);
      expect(frame.events.map((_, i) => frame.secretsOf(i, keys))).toEqual(frame.events.map(() => null));
    }
    const only = frames[0];
    const altered = decodeRawMessage(Buffer.from(only!.toString().replace('"id":3', '"id":4')));
    expect(() => altered.secretsOf(0, keys)).toThrow(expect.objectContaining({ code: 'DECRYPT_FAILED' }));
    const unsealed = decodeRawMessage(Buffer.from(only!.toString().replace(/"sealed":"[^"]+"/, '"sealed":null')));
    expect(() => unsealed.secretsOf(0, keys)).toThrow(expect.objectContaining({ code: 'RECORD_FORGED' }));
  });

  it('refuses a frame whose events were altered, reordered or given another frame\'s seal', async () => {
    const frames = await sentFrames(Array.from({ length: 300 }, (_, i) => person(i + 1)));
    const big = frames.filter((f) => decodeRawMessage(f).events.length > 10);
    expect(big.length).toBeGreaterThanOrEqual(2);
    const [a, b] = big as [Buffer, Buffer];
    const openAll = (value: Buffer) => { const f = decodeRawMessage(value); return f.events.map((_, i) => f.secretsOf(i, keys)); };
    expect(() => openAll(a)).not.toThrow();
    const altered = Buffer.from(a.toString().replace('"table":"citizens"', '"table":"citizenz"'));
    expect(() => openAll(altered)).toThrow(/does not verify/);
    const events = JSON.parse(a.toString()).events as unknown[];
    const sealedOf = (v: Buffer) => (JSON.parse(v.toString()) as { sealed: string }).sealed;
    const reordered = Buffer.from(`{"events":${JSON.stringify([events[1], events[0], ...events.slice(2)])},"sealed":"${sealedOf(a)}"}`);
    expect(() => openAll(reordered)).toThrow(/does not verify/);
    const swapped = Buffer.from(a.toString().replace(sealedOf(a), sealedOf(b)));
    expect(() => openAll(swapped)).toThrow(/does not verify/);
    const stripped = Buffer.from(a.toString().replace(`"${sealedOf(a)}"`, 'null'));
    expect(() => openAll(stripped)).toThrow(expect.objectContaining({ code: 'RECORD_FORGED' }));
    // Its dead letter is the frame as it came, without throwing.
    expect(decodeRawMessage(stripped).standalone(0, keys)).toEqual(stripped);
  });

  it('keeps frames with large protected columns under the message limit', async () => {
    const frames = await sentFrames(Array.from({ length: 8 }, (_, i) => person(i * 3 + 1, 'x'.repeat(90 << 10))));
    for (const f of frames) expect(f.length).toBeLessThan(256 << 10);
    expect(frames.flatMap((f) => decodeRawMessage(f).events)).toHaveLength(8);
    // One event larger than a frame travels alone, whole.
    const [, alone] = await sentFrames([person(1), person(2, 'y'.repeat(300 << 10))]);
    expect(decodeRawMessage(alone!).secretsOf(0, keys)).toEqual({ after: { name: 'y'.repeat(300 << 10) } });
  });

  it('measures an event as the message it would be alone, counting exact bytes only near the limit', async () => {
    const clear = { ...person(3), json: JSON.stringify({ op: 'c', after: { id: 3, note: '東'.repeat(100_000) }, source: { db: 'civil', table: 'citizens', version: 'v3' }, protected: [] }) };
    for (const e of [person(1, '市'.repeat(200_000)), person(2, 'y'.repeat(1000)), clear]) {
      const [message] = await sentFrames([e]);
      const bytes = oversizeEventBytes(e.json, e.secrets, 0)!;
      expect(bytes).toBeGreaterThanOrEqual(message!.length);
      expect(bytes - message!.length).toBeLessThan(400);
      expect(oversizeEventBytes(e.json, e.secrets, bytes)).toBeNull();
      expect(oversizeEventBytes(e.json, e.secrets, bytes - 1)).toBe(bytes);
    }
  });

  it('gives each event of a frame as a message on its own for a dead letter, still sealed; the whole frame when its seal does not open', async () => {
    const [, frame] = await sentFrames([person(0), person(1), person(2), person(3)]);
    const decoded = decodeRawMessage(frame!);
    const payload = decoded.standalone(1, keys);
    expect(payload.toString()).not.toContain('市民');
    // A frame of that one event, sealed again: it authenticates as the frame did.
    const alone = decodeRawMessage(payload);
    expect(alone.framed).toBe(true);
    expect(alone.events).toHaveLength(1);
    expect(alone.sealError(keys)).toBeNull();
    expect(alone.events[0]).toMatchObject(decoded.events[1]!);
    expect(alone.secretsOf(0, keys)).toEqual(decoded.secretsOf(1, keys));
    const broken = decodeRawMessage(Buffer.from(frame!.toString().replace('"version":"v', '"version":"w')));
    expect(broken.standalone(1, keys)).toEqual(Buffer.from(frame!.toString().replace('"version":"v', '"version":"w')));
  });
});
