import avro from 'avsc';
import { avroOptions } from './logical-types.js';
import type { AvroRecordSchema } from './share-schema.js';

/** The reused buffer grows up to this; a larger record is written into a buffer of its own (and none is kept for it). */
const MAX_SCRATCH = 1024 * 1024;

/**
 * Encodes records of one schema in the Confluent wire format (magic byte 0, the schema id
 * as a 4-byte big-endian integer, the Avro body), compiled once with our logical types.
 * Each record is written into a reused scratch buffer and copied out once: one allocation
 * per record, no promise (the registry client's `encode` makes three buffers and awaits its
 * schema cache for every record).
 */
export class WireEncoder {
  private readonly type: avro.Type;
  private static scratch = Buffer.allocUnsafe(64 * 1024);

  constructor(
    readonly id: number,
    schema: AvroRecordSchema,
  ) {
    this.type = avro.Type.forSchema(schema as unknown as avro.Schema, avroOptions());
  }

  /** Throws avsc's error for a value that does not match the schema (see `invalidPaths`). */
  encode(value: unknown): Buffer {
    const scratch = WireEncoder.scratch;
    const end = this.type.encode(value, scratch, 5);
    if (end >= 0) return this.framed(Buffer.from(scratch.subarray(0, end)));
    // Too small: avsc says by how much (-end bytes), so the next write fits.
    const needed = scratch.length - end;
    if (needed > MAX_SCRATCH) {
      const own = Buffer.allocUnsafe(needed);
      this.type.encode(value, own, 5);
      return this.framed(own);
    }
    WireEncoder.scratch = Buffer.allocUnsafe(Math.min(MAX_SCRATCH, Math.max(scratch.length * 2, needed)));
    return this.encode(value);
  }

  private framed(out: Buffer): Buffer {
    out[0] = 0;
    out.writeInt32BE(this.id, 1);
    return out;
  }

  /** The paths of the fields of `value` that do not match the schema (field names only, never values). */
  invalidPaths(value: unknown): string[] {
    const paths: string[] = [];
    this.type.isValid(value, { errorHook: (path) => paths.push(path.join('.')) });
    return paths;
  }
}
