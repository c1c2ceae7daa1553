import { describe, expect, it } from 'vitest';
import { Partitioners, type Message } from 'kafkajs';
import { FileKeyring, decodeRawMessage, RAW_FRAME_HEADER, sealJson } from '@cityshare/shared';
import { murmur2 } from '../src/kafka-partition.js';
import { RawFrameWriter, oversizeEventBytes, type FrameRequest } from '../src/raw-frame-writer.js';

const keys = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: Buffer.alloc(32, 9).toString('base64') }] } });
const ev = (id: number, topic = 't') => ({ topic, key: JSON.stringify({ id }), json: JSON.stringify({ op: 'c', after: { id } }), secrets: null as string | null });
type Event = ReturnType<typeof ev>;

function writerOf(maxFrameEvents = 1000, partitions = 3): RawFrameWriter {
  return new RawFrameWriter({ maxFrameEvents, partitionsOf: () => partitions, seal: (json, aad) => sealJson(keys.activeKey('pipeline'), json, aad) });
}

function write(writer: RawFrameWriter, events: Event[]): void {
  for (const e of events) writer.writeEvent(e.topic, e.key, e.json, e.secrets);
}

/** Every message written so far, sealed and taken request by request, each request acknowledged. */
function drain(writer: RawFrameWriter): { requests: FrameRequest[]; messages: Array<Message & { topic: string }> } {
  writer.closeOpen();
  const requests: FrameRequest[] = [];
  for (let r = writer.takeRequest(); r; r = writer.takeRequest()) {
    // Copied before the writer reuses the buffers of acknowledged frames.
    r.topicMessages = r.topicMessages.map((t) => ({ ...t, messages: t.messages.map((m) => ({ ...m, value: Buffer.from(m.value as Buffer) })) }));
    requests.push(r);
    writer.acknowledged(r);
  }
  return { requests, messages: requests.flatMap((r) => r.topicMessages.flatMap((t) => t.messages.map((m) => ({ ...m, topic: t.topic })))) };
}

const idsOf = (m: Message) => decodeRawMessage(m.value as Buffer).events.map((e) => Number(e.after!.id));
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('RawFrameWriter frames', () => {
  it('frames the events of each partition in order, each where kafkajs would place its key', () => {
    const writer = writerOf();
    write(writer, range(1, 300).map((id) => ev(id)));
    const { messages } = drain(writer);
    expect(messages.length).toBeLessThanOrEqual(3);
    expect(messages.flatMap(idsOf).sort((a, b) => a - b)).toEqual(range(1, 300));
    const kafkajs = Partitioners.DefaultPartitioner();
    const partitionMetadata = range(0, 3).map((partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [], isr: [] }));
    for (const m of messages) {
      const ids = idsOf(m);
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
      expect(m.headers).toEqual({ [RAW_FRAME_HEADER]: String(ids.length) });
      for (const id of ids) expect(kafkajs({ topic: 't', partitionMetadata, message: { key: JSON.stringify({ id }), value: null } })).toBe(m.partition);
    }
  });

  it('caps frames at maxFrameEvents', () => {
    const writer = writerOf(10);
    write(writer, range(1, 100).map((id) => ev(id)));
    const { messages } = drain(writer);
    expect(Math.max(...messages.map((m) => idsOf(m).length))).toBeLessThanOrEqual(10);
    expect(messages.flatMap(idsOf)).toHaveLength(100);
  });

  it('starts a new frame rather than letting a large event push a full one past the frame limit', () => {
    const writer = writerOf(10_000);
    const big = (id: number, kib: number) => ({ topic: 't', key: JSON.stringify({ id: 1 }), json: JSON.stringify({ op: 'c', after: { id, pad: 'x'.repeat(kib << 10) } }), secrets: null });
    write(writer, [big(1, 200), big(2, 200)]);
    const sizes = drain(writer).messages.map((m) => (m.value as Buffer).length);
    expect(sizes).toHaveLength(2);
    expect(Math.max(...sizes)).toBeLessThan(256 << 10);
  });

  it('writes a keyed record unframed, after every event written before it', () => {
    const writer = writerOf(1000, 1);
    write(writer, [ev(1), ev(2, 'u')]);
    writer.writeRecord({ topic: 'schemas', key: 'ref1', value: Buffer.from('{}'), headers: { mac: 'm' } });
    write(writer, [ev(3)]);
    expect(writer.lastSeq).toBe(4);
    const { requests, messages } = drain(writer);
    expect(requests).toHaveLength(1);
    // The record closed the open frames: the event after it is in a frame of its own.
    expect(messages.filter((m) => m.topic === 't').map(idsOf)).toEqual([[1], [3]]);
    expect(messages.find((m) => m.topic === 'schemas')).toEqual({ topic: 'schemas', key: 'ref1', value: Buffer.from('{}'), headers: { mac: 'm' } });
  });

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
});

describe('RawFrameWriter size accounting', () => {
  it('writes multi-byte events into frames that grow, counting open frames at least and closed ones exactly', () => {
    const writer = writerOf(10_000);
    const events = range(0, 2000).map((i) => ({ topic: 't', key: JSON.stringify({ id: i }), json: JSON.stringify({ op: 'c', after: { id: i, name: `市民${i}😀`.repeat(1 + (i % 7)) } }), secrets: null }));
    write(writer, events);
    const open = writer.queuedBytes;
    writer.closeOpen();
    const closed = writer.queuedBytes;
    expect(closed).toBeLessThanOrEqual(open);
    const { messages } = drain(writer);
    expect(messages.reduce((n, m) => n + (m.value as Buffer).length, 0)).toBe(closed);
    expect(writer.queuedBytes).toBe(0);
    expect(writer.empty).toBe(true);
    for (const m of messages) {
      expect((m.value as Buffer).length).toBeLessThanOrEqual(256 << 10);
      expect(Number(m.headers![RAW_FRAME_HEADER])).toBe(decodeRawMessage(m.value as Buffer).events.length);
    }
    const rows = messages.flatMap((m) => decodeRawMessage(m.value as Buffer).events.map((e) => e.after as { id: number; name: string }));
    expect(rows.map((e) => e.id).sort((a, b) => a - b)).toEqual(range(0, 2000));
    expect(rows.find((e) => e.id === 6)!.name).toBe('市民6😀'.repeat(7));
  });

  it('takes requests the brokers accept (under 1 MiB per partition) and tells which messages each one covered', () => {
    const writer = writerOf(10_000, 1);
    // Eight frames of about 200 KiB on one partition, then a record.
    const big = (id: number) => ({ topic: 't', key: JSON.stringify({ id }), json: JSON.stringify({ op: 'c', after: { id, pad: 'x'.repeat(200 << 10) } }), secrets: null });
    write(writer, range(1, 8).map(big));
    writer.writeRecord({ topic: 'schemas', key: 'ref', value: Buffer.from('{}') });
    expect(writer.lastSeq).toBe(9);
    writer.closeOpen();
    const bytesOf = (r: FrameRequest) => r.topicMessages.flatMap((t) => t.messages).reduce((n, m) => n + (m.value as Buffer).length, 0);
    const first = writer.takeRequest()!;
    expect(bytesOf(first)).toBeLessThan(1 << 20);
    expect(first.topicMessages.flatMap((t) => t.messages.flatMap(idsOf))).toEqual([1, 2, 3, 4]);
    // Each acknowledged request acknowledges every message written up to its last.
    expect(writer.acknowledged(first)).toBe(4);
    const second = writer.takeRequest()!;
    expect(second.topicMessages.map((t) => t.topic)).toEqual(['t', 'schemas']);
    expect(writer.acknowledged(second)).toBe(9);
    expect(writer.takeRequest()).toBeNull();
    expect(writer.queuedBytes).toBe(0);
  });

  it('measures an event as the message it would be alone, counting exact bytes only near the limit', () => {
    const person = (id: number, name: string) => ({ topic: 't', key: JSON.stringify({ id }), json: JSON.stringify({ op: 'c', after: { id }, source: { db: 'civil', table: 'citizens', version: `v${id}` }, protected: ['name'] }), secrets: JSON.stringify({ after: { name } }) });
    const clear = { topic: 't', key: '{"id":3}', json: JSON.stringify({ op: 'c', after: { id: 3, note: '東'.repeat(100_000) }, source: { db: 'civil', table: 'citizens', version: 'v3' }, protected: [] }), secrets: null };
    for (const e of [person(1, '市'.repeat(200_000)), person(2, 'y'.repeat(1000)), clear]) {
      const writer = writerOf();
      write(writer, [e]);
      const [message] = drain(writer).messages;
      const length = (message!.value as Buffer).length;
      const bytes = oversizeEventBytes(e.json, e.secrets, 0)!;
      expect(bytes).toBeGreaterThanOrEqual(length);
      expect(bytes - length).toBeLessThan(400);
      expect(oversizeEventBytes(e.json, e.secrets, bytes)).toBeNull();
      expect(oversizeEventBytes(e.json, e.secrets, bytes - 1)).toBe(bytes);
    }
  });
});

describe('RawFrameWriter sealing', () => {
  /** An event of row `id` whose `name` is protected (null for ids divisible by 3: a row without protected columns). */
  const person = (id: number, name = `市民${id}`) => ({
    topic: 't',
    key: JSON.stringify({ id }),
    json: JSON.stringify({ op: 'c', after: { id }, source: { db: 'civil', table: 'citizens', version: `v${id}` }, protected: id % 3 === 0 ? [] : ['name'] }),
    secrets: id % 3 === 0 ? null : JSON.stringify({ after: { name } }),
  });
  function sealedFrames(events: Event[]): Buffer[] {
    const writer = writerOf(10_000);
    write(writer, events);
    return drain(writer).messages.map((m) => m.value as Buffer);
  }

  it('seals the protected columns of a frame once, each event\'s in its place, and opens them with the keyring', () => {
    const frames = sealedFrames(range(0, 600).map((i) => person(i)));
    const opened = new Map<number, unknown>();
    for (const value of frames) {
      const text = value.toString();
      expect(text.startsWith('{"events":[')).toBe(true);
      expect(text.match(/enc:v1:/g)?.length ?? 0).toBe(1);
      expect(text).not.toContain('市民');
      const frame = decodeRawMessage(value);
      frame.events.forEach((e, i) => opened.set(Number(e.after!.id), frame.secretsOf(i, keys)));
    }
    expect(opened.size).toBe(600);
    for (const [id, secrets] of opened) expect(secrets).toEqual(id % 3 === 0 ? null : { after: { name: `市民${id}` } });
  });

  it('seals a frame none of whose events has protected columns too (a list of nulls): the seal authenticates its events', () => {
    const frames = sealedFrames([person(3), person(6), person(9)]);
    for (const value of frames) {
      expect(value.toString()).toMatch(/\],"sealed":"enc:v1:[A-Za-z0-9+/=]+"\}$/);
      const frame = decodeRawMessage(value);
      expect(frame.events.map((_, i) => frame.secretsOf(i, keys))).toEqual(frame.events.map(() => null));
    }
    const only = frames.find((f) => decodeRawMessage(f).events.some((e) => e.after!.id === 3))!;
    const altered = decodeRawMessage(Buffer.from(only.toString().replace('"id":3', '"id":4')));
    expect(() => altered.secretsOf(0, keys)).toThrow(expect.objectContaining({ code: 'DECRYPT_FAILED' }));
    const unsealed = decodeRawMessage(Buffer.from(only.toString().replace(/"sealed":"[^"]+"/, '"sealed":null')));
    expect(() => unsealed.secretsOf(0, keys)).toThrow(expect.objectContaining({ code: 'RECORD_FORGED' }));
  });

  it('refuses a frame whose events were altered, reordered or given another frame\'s seal', () => {
    const frames = sealedFrames(range(1, 300).map((i) => person(i)));
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

  it('keeps frames with large protected columns under the message limit', () => {
    const frames = sealedFrames(range(0, 8).map((i) => person(i * 3 + 1, 'x'.repeat(90 << 10))));
    for (const f of frames) expect(f.length).toBeLessThan(256 << 10);
    expect(frames.flatMap((f) => decodeRawMessage(f).events)).toHaveLength(8);
    // One event larger than a frame travels alone, whole.
    const alone = sealedFrames([person(1), person(2, 'y'.repeat(300 << 10))]).find((f) => decodeRawMessage(f).events[0]!.after!.id === 2)!;
    expect(decodeRawMessage(alone).secretsOf(0, keys)).toEqual({ after: { name: 'y'.repeat(300 << 10) } });
  });

  it('gives each event of a frame as a message on its own for a dead letter, still sealed; the whole frame when its seal does not open', () => {
    const writer = writerOf(10_000, 1);
    write(writer, [person(0), person(1), person(2), person(3)]);
    const [frame] = drain(writer).messages.map((m) => m.value as Buffer);
    const decoded = decodeRawMessage(frame!);
    expect(decoded.events).toHaveLength(4);
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

  it('throws when the seal fails, and the frame is not taken', () => {
    const writer = new RawFrameWriter({ maxFrameEvents: 10, partitionsOf: () => 1, seal: () => { throw new Error('key unusable'); } });
    write(writer, [ev(1)]);
    expect(() => writer.closeOpen()).toThrow('key unusable');
    expect(writer.takeRequest()).toBeNull();
  });
});
