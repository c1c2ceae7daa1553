import { COMPATIBILITY, SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { CdcError } from '../errors.js';
import { avroOptions } from './logical-types.js';
import { TimeoutMiddleware } from 'mappersmith/middleware/timeout';
import { REGISTRY_TIMEOUT_MS, getRegistryJson, type RegistryEndpoint } from './registry-endpoint.js';
import type { AvroRecordSchema } from './share-schema.js';

export { COMPATIBILITY, SchemaRegistry };

type RegistryMiddleware = NonNullable<ConstructorParameters<typeof SchemaRegistry>[0]['middlewares']>[number];

/**
 * Registry client (Confluent API: Confluent Schema Registry or Apicurio's ccompat) that knows
 * our logical types; basic auth and the CA of the endpoint on every call, and a timeout on
 * each (the client has none of its own: a registry that took a request and never answered
 * held a department stream for good).
 */
export function createSchemaRegistry(endpoint: RegistryEndpoint): SchemaRegistry {
  return new SchemaRegistry(
    {
      host: endpoint.url,
      clientId: 'cityshare',
      ...(endpoint.auth ? { auth: endpoint.auth } : {}),
      ...(endpoint.agent ? { agent: endpoint.agent } : {}),
      // mappersmith's ESM typings of its own middleware differ from the CJS ones the client declares.
      middlewares: [TimeoutMiddleware(endpoint.timeoutMs ?? REGISTRY_TIMEOUT_MS) as unknown as RegistryMiddleware],
    },
    { [SchemaType.AVRO]: avroOptions() },
  );
}

/**
 * Registers (or finds) the schema under the topic's value subject with BACKWARD compatibility.
 * Instances registering a new subject at the same moment race to set its compatibility: the
 * loser's 409 "already exists" (Apicurio) is not a verdict on the schema, so it asks again.
 */
export async function registerValueSchema(registry: SchemaRegistry, topic: string, schema: AvroRecordSchema, attempt = 1): Promise<number> {
  try {
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
      { subject: `${topic}-value`, compatibility: COMPATIBILITY.BACKWARD },
    );
    return id;
  } catch (err) {
    const e = err as Error & { status?: number };
    if (e.status === 409 && /already exists/i.test(e.message) && attempt < 3) return registerValueSchema(registry, topic, schema, attempt + 1);
    if (e.status === 409 || e.name === 'ConfluentSchemaRegistryCompatibilityError') {
      throw new CdcError('SCHEMA_INCOMPATIBLE', `schema for ${topic} is not BACKWARD compatible with the registered versions: ${e.message}`, { cause: err, details: { topic } });
    }
    throw new CdcError('REGISTRY_UNREACHABLE', `registering the schema for ${topic} failed: ${e.message}`, { cause: err, details: { topic } });
  }
}

/** The writer schema's JSON as registered (keeps custom attributes such as x-primary-key). */
export async function fetchSchemaJson(endpoint: RegistryEndpoint, id: number): Promise<AvroRecordSchema> {
  const body = (await getRegistryJson(endpoint, `/schemas/ids/${id}`)) as { schema: string };
  return JSON.parse(body.schema) as AvroRecordSchema;
}

/** The schema id of a Confluent wire-format message (magic byte 0, 4-byte id). */
export function wireSchemaId(message: Buffer): number {
  if (message.length < 5 || message[0] !== 0) throw new CdcError('RECORD_INVALID', 'message is not in Confluent wire format');
  return message.readInt32BE(1);
}
