import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSchemaRegistry, registerValueSchema } from '../src/avro/registry.js';
import type { AvroRecordSchema } from '../src/avro/share-schema.js';

/**
 * A registry that takes a request and never answers it (a lock wait in its storage, a proxy
 * that holds the connection) must not hold a department stream forever: every call of the
 * registry client gives up after the endpoint's timeout as REGISTRY_UNREACHABLE, and the
 * stream retries with backoff. Before, the client had no timeout and the stream waited for good.
 */
describe('schema registry client: a registry that never answers', () => {
  let server: Server;
  let url = '';
  const held: Array<() => void> = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      held.push(() => res.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const release of held) release();
    await new Promise((r) => server.close(r));
  });

  it('registering a schema fails as REGISTRY_UNREACHABLE after the timeout instead of waiting for ever', async () => {
    const registry = createSchemaRegistry({ url, timeoutMs: 300 });
    const schema: AvroRecordSchema = { type: 'record', name: 'r', fields: [{ name: 'id', type: 'long' }] } as AvroRecordSchema;
    const started = Date.now();
    const err = await registerValueSchema(registry, 'hung.share.health.t', schema).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY_UNREACHABLE', message: expect.stringMatching(/Timeout/i) });
    // Its retries (3, each after a short backoff) included: well under the test's own limit.
    expect(Date.now() - started).toBeLessThan(4_000);
  }, 8_000);
});
