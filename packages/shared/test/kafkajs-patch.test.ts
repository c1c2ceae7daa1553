import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';

// kafkajs is patched (patches/kafkajs+2.2.4.patch): its record-batch CRC32C comes from
// @node-rs/crc32, and its encoder does not zero-fill buffers. The broker rejects a batch
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
