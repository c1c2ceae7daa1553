import { createHash } from 'node:crypto';

/**
 * The canonical form of a delivered row, the same on both sides of a comparison (and for a
 * department that computes it on its own side, docs/verify.md):
 *
 * - the row's key text: JSON array of the comparable texts of its key columns, in the
 *   table's key order (`["42"]`, `["tok_9f…","2024-05-01"]`);
 * - its digest: the first 16 bytes of SHA-256 over the key text, a line feed, and the
 *   comparable text of every granted column in source column order, each followed by a unit
 *   separator (U+001F), a null as a single NUL (U+0000);
 * - its bucket: the 32-bit FNV-1a hash of the key text's UTF-8 bytes, modulo the bucket
 *   count; a bucket's digest is the XOR of its rows' digests, with their count.
 */
export function keyText(keyValues: Array<string | null>): string {
  return JSON.stringify(keyValues);
}

export function rowDigest(key: string, values: Array<string | null>): Buffer {
  const hash = createHash('sha256').update(key).update('\n');
  for (const v of values) hash.update(v === null ? '\u0000\u001f' : `${v}\u001f`);
  return hash.digest().subarray(0, 16);
}

export function keyBucket(key: string, buckets: number): number {
  let hash = 0x811c9dc5;
  const step = (byte: number) => (hash = Math.imul(hash ^ byte, 0x01000193));
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x80) step(c);
    else {
      // Past ASCII: the UTF-8 bytes of the rest.
      for (const byte of Buffer.from(key.slice(i), 'utf8')) step(byte);
      break;
    }
  }
  return (hash >>> 0) % buckets;
}

/** Order-independent digests of a table's rows per bucket: XOR of the rows' digests, and their count. */
export class BucketDigests {
  readonly xor: Buffer;
  readonly counts: Uint32Array;

  constructor(readonly buckets: number) {
    this.xor = Buffer.alloc(buckets * 16);
    this.counts = new Uint32Array(buckets);
  }

  add(key: string, digest: Buffer): void {
    const b = keyBucket(key, this.buckets);
    const at = b * 16;
    for (let i = 0; i < 16; i++) this.xor[at + i]! ^= digest[i]!;
    this.counts[b]!++;
  }

  /** The buckets whose rows differ from `other`'s (same bucket count). */
  differing(other: BucketDigests): number[] {
    const out: number[] = [];
    for (let b = 0; b < this.buckets; b++) {
      if (this.counts[b] !== other.counts[b] || !this.xor.subarray(b * 16, b * 16 + 16).equals(other.xor.subarray(b * 16, b * 16 + 16))) out.push(b);
    }
    return out;
  }

  /** As JSON: `[{ bucket, rows, xor }]` of the buckets that hold rows, for a digest file. */
  toJSON(): Array<{ bucket: number; rows: number; xor: string }> {
    const out: Array<{ bucket: number; rows: number; xor: string }> = [];
    for (let b = 0; b < this.buckets; b++) if (this.counts[b]! > 0) out.push({ bucket: b, rows: this.counts[b]!, xor: this.xor.subarray(b * 16, b * 16 + 16).toString('hex') });
    return out;
  }
}
