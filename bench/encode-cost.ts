/**
 * CPU cost per row of the reader's event path, without a stack: writing a wide `citizens`
 * row (8 columns, 5 protected) as a raw change event; the same event written into raw
 * frames by the RawFrameWriter and sent by the OrderedSender, its protected columns sealed
 * once per frame (a producer that acknowledges at once stands in for Kafka); and, for
 * comparison, one AES-GCM seal per event as readers before frame sealing did.
 *   node --import tsx bench/encode-cost.ts [--rows 200000]
 */
import { parseArgs } from 'node:util';
import type { Producer } from 'kafkajs';
import { FileKeyring, createLogger, sealJson, type ColumnClass, type TableSchema } from '@cityshare/shared';
import { encoderFor } from '../services/cdc-reader/src/event-encoder.js';
import { OrderedSender } from '../services/cdc-reader/src/ordered-sender.js';
import { RawFrameWriter } from '../services/cdc-reader/src/raw-frame-writer.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '200000' } } });
const total = Number(args.rows);
const keys = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: Buffer.alloc(32, 7).toString('base64') }] } });
const text = { kind: 'string', charset: 'utf8mb4' } as const;
const schema: TableSchema = {
  db: 'civil',
  table: 'citizens',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: { kind: 'bigint', unsigned: true }, sourceType: 'bigint unsigned', nullable: false },
    { name: 'national_id', type: text, sourceType: 'char(18)', nullable: false },
    { name: 'name', type: text, sourceType: 'varchar(64)', nullable: false },
    { name: 'phone', type: text, sourceType: 'varchar(20)', nullable: false },
    { name: 'address', type: text, sourceType: 'varchar(200)', nullable: false },
    { name: 'birth_date', type: { kind: 'date' }, sourceType: 'date', nullable: false },
    { name: 'district', type: text, sourceType: 'varchar(32)', nullable: false },
    { name: 'updated_at', type: { kind: 'datetime', fsp: 6 }, sourceType: 'datetime(6)', nullable: false },
  ],
};
const classes: Record<string, ColumnClass> = { national_id: 'secret', name: 'personal', phone: 'personal', address: 'personal', birth_date: 'personal' };
const rows = Array.from({ length: 1000 }, (_, i) => ({
  before: null,
  after: { id: String(i), national_id: '110101199001011234', name: '张伟明', phone: '13800138000', address: '北京市海淀区中关村大街1号院', birth_date: '1990-01-01', district: '海淀区', updated_at: '2024-01-01 00:00:00.000000' },
}));
const change = { kind: 'insert' as const, schema, rows, file: 'mariadb-bin.000002', eventPos: 8183, gtid: null, tsMs: 1, txOffset: 0 };
const encoder = encoderFor(schema, classes, keys.activeKey('pipeline'));

function microsPerCall(calls: number, f: () => void): number {
  f(); // warm-up
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1000 / calls;
}

let events = 0;
const encode = microsPerCall(total, () => {
  for (let i = 0; i < total / rows.length; i++) encoder.encode(change, 'cityhub', 1, 'ref', Date.now(), () => events++);
});

const pipelineKey = keys.activeKey('pipeline');
let frames = 0;
const producer = { sendBatch: async (batch: { topicMessages: Array<{ messages: unknown[] }> }) => { for (const t of batch.topicMessages) frames += t.messages.length; return []; } };
const frameWriter = new RawFrameWriter({ maxFrameEvents: 1000, partitionsOf: () => 1, seal: (json, aad) => sealJson(pipelineKey, json, aad) });
const publisher = new OrderedSender(producer as unknown as Producer, frameWriter, {
  maxBytes: 64 << 20,
  onAcked: () => undefined,
  onPressure: () => undefined,
  onError: (err) => { throw err; },
}, createLogger('bench', 'silent'));
/** Encodes and frames `total` rows, letting the publisher send between changes as the reader's event loop does. */
async function framed(): Promise<number> {
  const t = process.hrtime.bigint();
  for (let i = 0; i < total / rows.length; i++) {
    encoder.encode(change, 'cityhub', 1, 'ref', Date.now(), (key, json, secrets) => publisher.enqueueEvent('raw', key, json, secrets));
    publisher.enqueued();
    await new Promise((r) => setImmediate(r));
  }
  await publisher.drain();
  return Number(process.hrtime.bigint() - t) / 1000 / total;
}
await framed(); // warm-up
frames = 0;
const frame = await framed();

const plain = Buffer.from('{"after":{"national_id":"110101199001011234","name":"张伟明","phone":"13800138000","address":"北京市海淀区中关村大街1号院","birth_date":"1990-01-01"}}');
const perEvent = microsPerCall(total, () => {
  for (let i = 0; i < total; i++) sealJson(pipelineKey, plain, 'civil.citizens@0000000002.000000008183.000000');
});
console.log(
  `citizens row: event JSON ${encode.toFixed(2)} µs; event JSON into raw frames with one seal per frame ${frame.toFixed(2)} µs ` +
    `(${frames.toLocaleString('en')} frames); one seal per event instead would add ${perEvent.toFixed(2)} µs; ` +
    `${total.toLocaleString('en')} rows, Node.js ${process.version}`,
);
