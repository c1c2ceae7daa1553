/**
 * kafkajs's default partitioner (Java-compatible murmur2 of the key's UTF-8), computed
 * without a new buffer per key: frames are placed by partition before kafkajs sees them,
 * and must land where kafkajs would have put each event's key.
 */
export class KeyPartitioner {
  private readonly scratch = Buffer.allocUnsafeSlow(1024);

  /** The partition of `key` among `partitions`. */
  partitionOf(key: string, partitions: number): number {
    if (partitions === 1) return 0;
    const buf = key.length * 3 <= this.scratch.length ? this.scratch : Buffer.allocUnsafe(key.length * 3);
    const length = buf.write(key, 0, 'utf8');
    return (murmur2(buf, length) & 0x7fffffff) % partitions;
  }
}

/** murmur2 as Kafka's Java client (and kafkajs) compute it, over `length` bytes of `data`; a signed 32-bit result. */
export function murmur2(data: Buffer, length: number): number {
  const m = 0x5bd1e995;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length & ~3;
  for (let i = 0; i < length4; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & 3;
  if (tail > 0) {
    if (tail === 3) h ^= data[length4 + 2]! << 16;
    if (tail >= 2) h ^= data[length4 + 1]! << 8;
    h ^= data[length4]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}
