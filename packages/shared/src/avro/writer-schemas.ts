import { createHash } from 'node:crypto';
import avro from 'avsc';
import { canonicalJson } from '../canonical-json.js';
import { CdcError, isCdcError } from '../errors.js';
import { avroOptions } from './logical-types.js';
import { getRegistryJson, type RegistryEndpoint } from './registry-endpoint.js';
import type { AvroRecordSchema } from './share-schema.js';

/**
 * Header of every share record: the fingerprint of its writer schema. The schema id in the
 * record names the schema only in the registry that assigned it; a registry that lost its
 * storage hands out the same numbers again, possibly for other schemas. The fingerprint
 * lets a reader check what an id returns and find the schema again under the topic's subject.
 */
export const SCHEMA_FINGERPRINT_HEADER = 'cityshare-schema-sha256';

/** SHA-256 of the schema's canonical JSON: equal for equal schemas however the registry formats them. */
export function avroSchemaFingerprint(schema: AvroRecordSchema): string {
  // Through JSON first: what the registry holds has no undefined members.
  return createHash('sha256').update(canonicalJson(JSON.parse(JSON.stringify(schema)))).digest('hex');
}

/** The fingerprint header of a Kafka message, if it has one (records of older transformers do not). */
export function fingerprintHeader(headers: Record<string, unknown> | undefined): string | undefined {
  const value = headers?.[SCHEMA_FINGERPRINT_HEADER];
  const first = Array.isArray(value) ? (value[0] as unknown) : value;
  return Buffer.isBuffer(first) ? first.toString('utf8') : typeof first === 'string' ? first : undefined;
}

export interface WriterSchema {
  /** The fingerprint, or `id:<n>` for a record without one: what caches key on. */
  readonly key: string;
  readonly schema: AvroRecordSchema;
  readonly type: avro.Type;
}

/**
 * Writer schemas of share records, as readers (the sink, a department's consumer) resolve
 * them: by the record's schema id, checked against its fingerprint; if the registry does not
 * know the id (or knows another schema under it), among the versions of the topic's subject.
 * Not found: SCHEMA_UNKNOWN, retriable; the transformer registers its contracts again
 * when the registry lost them, and the record decodes then.
 */
export class WriterSchemas {
  private readonly cache = new Map<string, WriterSchema>();

  constructor(private readonly endpoint: RegistryEndpoint) {}

  /** The writer schema of a record when it is resolved already: no registry call, nothing to wait for. */
  known(schemaId: number, fingerprint: string | undefined): WriterSchema | undefined {
    return this.cache.get(writerKey(schemaId, fingerprint));
  }

  async resolve(topic: string, schemaId: number, fingerprint: string | undefined): Promise<WriterSchema> {
    const key = writerKey(schemaId, fingerprint);
    const cached = this.cache.get(key);
    if (cached) return cached;
    const schema = (await this.byId(schemaId, fingerprint)) ?? (fingerprint ? await this.bySubject(`${topic}-value`, fingerprint) : undefined);
    if (!schema) {
      throw new CdcError('SCHEMA_UNKNOWN', `the registry does not know the writer schema of a record on ${topic} (schema id ${schemaId}${fingerprint ? `, fingerprint ${fingerprint.slice(0, 12)}` : ''})`, {
        details: { topic, schemaId, ...(fingerprint ? { fingerprint } : {}) },
      });
    }
    const resolved: WriterSchema = { key, schema, type: avro.Type.forSchema(schema as unknown as avro.Schema, avroOptions()) };
    this.cache.set(key, resolved);
    return resolved;
  }

  /** Decodes a Confluent wire-format message with its writer schema. */
  decode(writer: WriterSchema, message: Buffer): Record<string, unknown> {
    return writer.type.fromBuffer(message.subarray(5)) as Record<string, unknown>;
  }

  private async byId(schemaId: number, fingerprint: string | undefined): Promise<AvroRecordSchema | undefined> {
    const body = await notFoundAsUndefined(getRegistryJson(this.endpoint, `/schemas/ids/${schemaId}`)) as { schema: string } | undefined;
    if (!body) return undefined;
    const schema = JSON.parse(body.schema) as AvroRecordSchema;
    return fingerprint === undefined || avroSchemaFingerprint(schema) === fingerprint ? schema : undefined;
  }

  private async bySubject(subject: string, fingerprint: string): Promise<AvroRecordSchema | undefined> {
    const path = `/subjects/${encodeURIComponent(subject)}/versions`;
    const versions = (await notFoundAsUndefined(getRegistryJson(this.endpoint, path))) as number[] | undefined;
    for (const version of [...(versions ?? [])].reverse()) {
      const body = (await notFoundAsUndefined(getRegistryJson(this.endpoint, `${path}/${version}`))) as { schema: string } | undefined;
      const schema = body ? (JSON.parse(body.schema) as AvroRecordSchema) : undefined;
      if (schema && avroSchemaFingerprint(schema) === fingerprint) return schema;
    }
    return undefined;
  }
}

/** What caches of writer schemas key on: the fingerprint, or the id for a record without one. */
function writerKey(schemaId: number, fingerprint: string | undefined): string {
  return fingerprint ?? `id:${schemaId}`;
}

/** The registry's 404 (no such id, subject or version) as undefined; other failures stay errors. */
async function notFoundAsUndefined<T>(request: Promise<T>): Promise<T | undefined> {
  try {
    return await request;
  } catch (err) {
    if (isCdcError(err, 'REGISTRY_UNREACHABLE') && err.details.status === 404) return undefined;
    throw err;
  }
}
