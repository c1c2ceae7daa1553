import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';

// kafkajs is patched (patches/kafkajs+2.2.4.patch): its record-batch CRC32C comes from
// @node-rs/crc32, its encoder does not zero-fill buffers, and its partitioner hashes and groups
// without allocating per step. The broker rejects a batch
// whose CRC is wrong, so the patched function must equal kafkajs's own table-driven one.
const require = createRequire(import.meta.url);
const patched = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number;
const original = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (b: Buffer) => number;
const Encoder = require('kafkajs/src/protocol/encoder.js') as new (size?: number) => { writeInt32(v: number): unknown; writeBytes(b: Buffer): unknown; buffer: Buffer };

describe('patched kafkajs', () => {
  it('computes CRC32C as kafkajs does, and the standard check value', () => {
    expect(patched(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(patched(Buffer.alloc(0))).toBe(0);
    for (const size of [1, 7, 64, 1000, 300_000]) {
      const data = randomBytes(size);
      expect(patched(data)).toBe(original(data) >>> 0);
    }
  });

  it('uses the native CRC32C', () => {
    expect(patched.toString()).toContain('native(buffer)');
  });

  it('encodes only what was written, whatever the unfilled buffer held', () => {
    const e = new Encoder(4);
    e.writeInt32(7);
    e.writeBytes(Buffer.from('abcdefgh'.repeat(100)));
    expect(e.buffer.length).toBe(4 + 4 + 800);
    expect(e.buffer.readInt32BE(0)).toBe(7);
    expect(e.buffer.subarray(8).toString()).toBe('abcdefgh'.repeat(100));
  });
});

// The producer's send path is patched too: acknowledgements are kept per partition across
// retries (upstream kept them per broker and lost the messages of a partition whose leader
// moved to a broker that had already answered), partitions a broker took in a request that
// failed for others keep their sequence numbers, and every request settles before a retry.
type Produced = { broker: number; topic: string; partition: number; firstSequence: number; values: string[] };
const sendMessagesOf = require('kafkajs/src/producer/sendMessages.js') as (o: unknown) => (r: unknown) => Promise<Array<{ topicName: string; partition: number }>>;
const createRetry = require('kafkajs/src/retry/index.js') as (o: unknown) => unknown;
const { parse: parseProduce } = require('kafkajs/src/protocol/requests/produce/v3/response.js') as { parse(data: unknown): Promise<unknown> };
const NOT_LEADER = 6;

/** Two partitions of one topic, led by brokers 1 and 2 as given; `answer` decides each produce request's fate. */
function fakeProducer(leadersAtStart: [number, number], answer: (broker: number, partitions: number[], attempt: number) => 'ok' | 'closed' | { failed: number[] }, unknownUntilRefresh: number[] = []) {
  const leaders = new Map([[0, leadersAtStart[0]], [1, leadersAtStart[1]]]);
  let hidden = new Set(unknownUntilRefresh);
  const sequences = new Map<number, number>();
  const produced: Produced[] = [];
  const brokers = new Map<number, ReturnType<typeof brokerOf>>();
  let attempt = 0;
  const logger = { debug() {}, info() {}, warn() {}, error() {} };
  const brokerOf = (nodeId: number) => ({
    nodeId,
    async produce({ topicData }: { topicData: Array<{ topic: string; partitions: Array<{ partition: number; firstSequence: number; messages: Array<{ value: string }> }> }> }) {
      const partitions = topicData.flatMap((t) => t.partitions.map((p) => p.partition));
      const fate = answer(nodeId, partitions, attempt++);
      if (fate === 'closed') throw Object.assign(new Error('Connection closed'), { name: 'KafkaJSConnectionClosedError', retriable: true });
      const failed = fate === 'ok' ? [] : fate.failed;
      for (const t of topicData) {
        for (const p of t.partitions) {
          if (!failed.includes(p.partition)) produced.push({ broker: nodeId, topic: t.topic, partition: p.partition, firstSequence: p.firstSequence, values: p.messages.map((m) => m.value) });
        }
      }
      for (const f of failed) leaders.set(f, nodeId === 1 ? 2 : 1); // the controller moved the leadership
      return parseProduce({ topics: topicData.map((t) => ({ topicName: t.topic, partitions: t.partitions.map((p) => ({ partition: p.partition, errorCode: failed.includes(p.partition) ? NOT_LEADER : 0, baseOffset: '0' })) })), throttleTime: 0 });
    },
  });
  const cluster = {
    targetTopics: new Set<string>(),
    async refreshMetadataIfNecessary() {},
    async refreshMetadata() {
      hidden = new Set();
    },
    async addMultipleTargetTopics() {},
    async connect() {},
    isConnected: () => true,
    removeBroker() {
      leaders.set(1, 1); // the broker that closed its connection is gone: its partition moved
    },
    findTopicPartitionMetadata: () => [...leaders].map(([partitionId, leader]) => ({ partitionId, leader })),
    findLeaderForPartitions: (_topic: string, partitions: string[]) => {
      const out: Record<number, number[]> = {};
      for (const p of partitions.map(Number)) if (!hidden.has(p)) (out[leaders.get(p)!] ??= []).push(p);
      return out;
    },
    // One Broker object per node, as kafkajs's cluster keeps them.
    findBroker: async ({ nodeId }: { nodeId: string }) => {
      if (!brokers.has(Number(nodeId))) brokers.set(Number(nodeId), brokerOf(Number(nodeId)));
      return brokers.get(Number(nodeId));
    },
  };
  const eosManager = {
    isTransactional: () => false,
    async acquireBrokerLock() {},
    async releaseBrokerLock() {},
    getProducerId: () => 1,
    getProducerEpoch: () => 0,
    getTransactionalId: () => undefined,
    getSequence: (_t: string, p: number) => sequences.get(p) ?? 0,
    updateSequence: (_t: string, p: number, n: number) => sequences.set(p, (sequences.get(p) ?? 0) + n),
  };
  const send = sendMessagesOf({
    logger: { ...logger, namespace: () => logger },
    cluster,
    partitioner: ({ message }: { message: { partition: number } }) => message.partition,
    eosManager,
    retrier: createRetry({ retries: 5, initialRetryTime: 1, maxRetryTime: 2 }),
  });
  const batch = (tag: string) => ({ acks: -1, timeout: 1000, topicMessages: [{ topic: 't', messages: [0, 1].flatMap((partition) => [{ partition, value: `${tag}-${partition}-a` }, { partition, value: `${tag}-${partition}-b` }]) }] });
  return { send: (tag: string) => send(batch(tag)), produced, sequences };
}

describe('patched kafkajs partitioning', () => {
  // murmur2 in 32-bit integer arithmetic instead of a Long per step: a key must still land on the
  // partition Java clients (and every earlier record of the row) use. Values from Kafka's UtilsTest.
  const murmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: string | Buffer) => number;
  const group = require('kafkajs/src/producer/groupMessagesPerPartition.js') as (o: { topic: string; partitionMetadata: unknown[]; messages: Array<{ key: string }>; partitioner: (o: { message: { key: string } }) => number }) => Record<string, Array<{ key: string }>>;

  it('hashes keys as Java Kafka\'s murmur2', () => {
    expect(murmur2('21')).toBe(-973932308);
    expect(murmur2('foobar')).toBe(-790332482);
    expect(murmur2('a-little-bit-long-string')).toBe(-985981536);
    expect(murmur2('a-little-bit-longer-string')).toBe(-1486304829);
    expect(murmur2('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8')).toBe(-58897971);
    expect(murmur2(Buffer.from('abc'))).toBe(479470107);
    expect(murmur2('{"id":"市民"}')).toBe(murmur2(Buffer.from('{"id":"市民"}', 'utf8')));
  });

  it('groups messages per partition in their order', () => {
    const messages = Array.from({ length: 1000 }, (_, i) => ({ key: String(i) }));
    const grouped = group({ topic: 't', partitionMetadata: [{}, {}, {}], messages, partitioner: ({ message }) => Number(message.key) % 3 });
    expect(Object.keys(grouped).sort()).toEqual(['0', '1', '2']);
    for (const [p, list] of Object.entries(grouped)) expect(list).toEqual(messages.filter((m) => Number(m.key) % 3 === Number(p)));
  });
});

describe('patched kafkajs producer', () => {
  it('sends the messages of a partition whose leader moved to a broker that had already answered', async () => {
    const p = fakeProducer([1, 2], (broker, _partitions, attempt) => (broker === 2 && attempt < 2 ? 'closed' : 'ok'));
    const acks = await p.send('x');
    expect(acks.map((a) => a.partition).sort()).toEqual([0, 1]);
    expect(p.produced.flatMap((m) => m.values).sort()).toEqual(['x-0-a', 'x-0-b', 'x-1-a', 'x-1-b']);
    expect(p.produced.find((m) => m.partition === 1)).toMatchObject({ broker: 1, firstSequence: 0 });
    expect(p.sequences).toEqual(new Map([[0, 2], [1, 2]]));
  });

  it('refreshes the metadata and sends to a partition it did not know a leader for, instead of skipping it', async () => {
    const p = fakeProducer([1, 2], () => 'ok', [1]);
    await p.send('m');
    expect(p.produced.flatMap((m) => m.values).sort()).toEqual(['m-0-a', 'm-0-b', 'm-1-a', 'm-1-b']);
  });

  it('keeps the sequence numbers of the partitions a broker took when others in the same request failed', async () => {
    // Both partitions on broker 1; it takes partition 0 and answers NOT_LEADER for partition 1.
    const p = fakeProducer([1, 1], (_broker, _partitions, attempt) => (attempt === 0 ? { failed: [1] } : 'ok'));
    await p.send('y');
    await p.send('z');
    // Each message once, each partition's sequence continuous (0, then 2), none reused.
    expect(p.produced.map((m) => `${m.partition}@${m.broker}:${m.firstSequence}:${m.values.join(',')}`).sort()).toEqual([
      '0@1:0:y-0-a,y-0-b',
      '0@1:2:z-0-a,z-0-b',
      '1@2:0:y-1-a,y-1-b',
      '1@2:2:z-1-a,z-1-b',
    ]);
    expect(p.sequences).toEqual(new Map([[0, 4], [1, 4]]));
  });
});

// Node 24 warns (TimeoutNegativeWarning, on every operator's terminal) when a timer is set
// with a negative delay; kafkajs's request queue computed one from its unset throttle
// deadline (upstream issue 1751). The patch clamps it.
describe('patched kafkajs request queue', () => {
  it('never schedules its pending-request check with a negative delay', () => {
    const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as new (o: object) => { scheduleCheckPendingRequests(): void; destroy(): void; throttleCheckTimeoutId: NodeJS.Timeout | null };
    const noop = () => undefined;
    const queue = new RequestQueue({ maxInFlightRequests: 1, requestTimeout: 1000, enforceRequestTimeout: true, clientId: 't', broker: 'b:9092', logger: { debug: noop, info: noop, warn: noop, error: noop } });
    const delays: number[] = [];
    const real = globalThis.setTimeout;
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      delays.push(ms ?? 0);
      return real(noop, 0);
    }) as typeof setTimeout;
    try {
      queue.scheduleCheckPendingRequests();
    } finally {
      globalThis.setTimeout = real;
      clearTimeout(queue.throttleCheckTimeoutId ?? undefined);
    }
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeGreaterThanOrEqual(0);
  });
});

// Records are written into one encoder each (patched), byte for byte as kafkajs 2.2.4 wrote
// them with an encoder per record and per header; `reference` is that upstream code.
describe('patched kafkajs record encoding', () => {
  type Headers = Record<string, string | Buffer | Array<string | Buffer> | null>;
  type RecordInput = { offsetDelta?: number; timestampDelta?: number; key: string | Buffer | null; value: string | Buffer | null; headers?: Headers };
  type Enc = {
    buffer: Buffer;
    writeVarInt(v: number): Enc;
    writeInt8(v: number): Enc;
    writeVarLong(v: number): Enc;
    writeVarIntBytes(v: unknown): Enc;
    writeVarIntString(v: string): Enc;
    writeVarIntArray(v: Enc[]): Enc;
  };
  const E = require('kafkajs/src/protocol/encoder.js') as { new (size?: number): Enc; sizeOfVarInt(v: number): number; sizeOfVarLong(v: number): number; sizeOfVarIntBytes(v: unknown): number };
  const patchedRecord = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (r: RecordInput) => Enc;
  const reference = ({ offsetDelta = 0, timestampDelta = 0, key, value, headers = {} }: RecordInput): Buffer => {
    const headersArray = Object.keys(headers).flatMap((k) => (!Array.isArray(headers[k]) ? [{ key: k, value: headers[k] }] : (headers[k] as Array<string | Buffer>).map((v) => ({ key: k, value: v }))));
    let headersSize = E.sizeOfVarInt(headersArray.length);
    for (const h of headersArray) {
      const keySize = Buffer.byteLength(h.key);
      headersSize += E.sizeOfVarInt(keySize) + keySize;
      if (h.value === null) headersSize += E.sizeOfVarInt(-1);
      else {
        const valueSize = Buffer.byteLength(h.value as string | Buffer);
        headersSize += E.sizeOfVarInt(valueSize) + valueSize;
      }
    }
    const sizeOfBody = 1 + E.sizeOfVarLong(timestampDelta) + E.sizeOfVarInt(offsetDelta) + E.sizeOfVarIntBytes(key) + E.sizeOfVarIntBytes(value) + headersSize;
    return new E()
      .writeVarInt(sizeOfBody)
      .writeInt8(0)
      .writeVarLong(timestampDelta)
      .writeVarInt(offsetDelta)
      .writeVarIntBytes(key)
      .writeVarIntBytes(value)
      .writeVarIntArray(headersArray.map((h) => new E().writeVarIntString(h.key).writeVarIntBytes(h.value))).buffer;
  };

  it('writes the same bytes as kafkajs for keys, values, headers and timestamp deltas of every size', () => {
    const cases: RecordInput[] = [
      { key: null, value: null },
      { key: 'k', value: Buffer.from('v'), headers: { a: 'b' } },
      { key: Buffer.from('键'), value: 'wert ✓', headers: { 'cityshare-schema-sha256': 'f'.repeat(64), many: ['1', Buffer.from('2')] } },
      { key: 'x'.repeat(300), value: randomBytes(70_000), offsetDelta: 999, timestampDelta: 0 },
    ];
    for (const timestampDelta of [1, -1, 63, 64, -65, 2 ** 30 - 1, -(2 ** 30) + 1, 2 ** 30, -(2 ** 30), 2 ** 31 + 5, -(2 ** 40), 1_700_000_000_000]) {
      cases.push({ key: `t${timestampDelta}`, value: randomBytes(40), offsetDelta: 17, timestampDelta, headers: { h: 'v' } });
    }
    for (let i = 0; i < 200; i++) {
      cases.push({ key: i % 5 === 0 ? null : randomBytes(i % 40), value: randomBytes((i * 37) % 3000), offsetDelta: i * 131, timestampDelta: (i - 100) * 977, headers: i % 3 === 0 ? {} : { [`h${i}`]: randomBytes(i % 70).toString('hex') } });
    }
    for (const c of cases) expect(patchedRecord(c).buffer).toEqual(reference(c));
  });

  it('takes kafkajs own path for a delta that is not an integer', () => {
    const c = { key: 'k', value: 'v', timestampDelta: 1.5 };
    const outcome = (f: () => Buffer) => {
      try {
        return f();
      } catch (err) {
        return (err as Error).constructor.name;
      }
    };
    expect(outcome(() => patchedRecord(c).buffer)).toEqual(outcome(() => reference(c)));
  });
});
