import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSchemaRegistry, fetchSchemaJson, isCdcError, registerValueSchema, registryEndpoint, type AvroRecordSchema } from '@cityshare/shared';
import { makeTestCerts, type TestCerts } from './support/test-certs.js';

/**
 * The registry hop over HTTPS with a private CA and basic auth, against a local HTTPS
 * server answering the few Confluent API calls the pipeline makes. Needs no stack.
 */
const schema: AvroRecordSchema = {
  type: 'record',
  name: 'citizens',
  namespace: 'tlscheck',
  fields: [{ name: 'id', type: 'long' }],
  'x-primary-key': ['id'],
} as AvroRecordSchema;

describe('schema registry over HTTPS with basic auth', () => {
  let certs: TestCerts;
  let server: Server;
  let url: string;
  const calls: Array<{ method: string; path: string; authorization: string | undefined }> = [];

  beforeAll(async () => {
    certs = makeTestCerts();
    server = createServer({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) }, (req, res) => {
      calls.push({ method: req.method!, path: req.url!, authorization: req.headers.authorization });
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
        res.end(JSON.stringify(body));
      };
      req.resume();
      req.on('end', () => {
        if (req.headers.authorization !== `Basic ${Buffer.from('svc-transformer:s3cret-pw').toString('base64')}`) return reply(401, { error_code: 40101, message: 'unauthorized' });
        if (req.method === 'GET' && req.url!.includes('/config/')) return reply(200, { compatibilityLevel: 'BACKWARD' });
        if (req.method === 'PUT' && req.url!.includes('/config/')) return reply(200, { compatibility: 'BACKWARD' });
        if (req.method === 'POST' && /\/subjects\/[^/]+\/versions$/.test(req.url!)) return reply(200, { id: 7 });
        if (req.method === 'GET' && req.url!.endsWith('/schemas/ids/7')) return reply(200, { schema: JSON.stringify(schema) });
        return reply(404, { error_code: 40401, message: 'not found' });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/apis/ccompat/v7`;
  });

  afterAll(() => {
    server?.closeAllConnections();
    server?.close();
  });

  it('registers and fetches by id through the configured CA, sending basic auth on every call', async () => {
    calls.length = 0;
    const endpoint = registryEndpoint({ url, username: 'svc-transformer', password: 's3cret-pw', ca: certs.ca });
    const id = await registerValueSchema(createSchemaRegistry(endpoint), 'tlscheck.share.health.civil.citizens', schema);
    expect(id).toBe(7);
    const fetched = await fetchSchemaJson(endpoint, 7);
    expect(fetched['x-primary-key']).toEqual(['id']);
    expect(calls.some((c) => c.method === 'POST' && c.path.includes('/subjects/'))).toBe(true);
    expect(calls.some((c) => c.path.endsWith('/schemas/ids/7'))).toBe(true);
    for (const c of calls) expect(c.authorization, `${c.method} ${c.path}`).toBe(`Basic ${Buffer.from('svc-transformer:s3cret-pw').toString('base64')}`);
  });

  it('does not trust the server without its CA, or with another CA', async () => {
    for (const ca of [undefined, certs.otherCa]) {
      calls.length = 0;
      const endpoint = registryEndpoint({ url, username: 'svc-transformer', password: 's3cret-pw', ...(ca ? { ca } : {}) });
      const fetching = await fetchSchemaJson(endpoint, 7).catch((err: unknown) => err);
      expect(isCdcError(fetching, 'REGISTRY_UNREACHABLE'), String(fetching)).toBe(true);
      expect((fetching as Error).message).toMatch(/certificate/);
      expect((fetching as Error).message).not.toContain('s3cret-pw');
      const registering = await registerValueSchema(createSchemaRegistry(endpoint), 'tlscheck.share.health.civil.citizens', schema).catch((err: unknown) => err);
      expect(isCdcError(registering, 'REGISTRY_UNREACHABLE'), String(registering)).toBe(true);
      // The TLS handshake failed before any request reached the server.
      expect(calls).toEqual([]);
    }
  });

  it('says which credentials to check when the registry refuses them, without quoting the password', async () => {
    const endpoint = registryEndpoint({ url, username: 'svc-transformer', password: 'wrong-pw', ca: certs.ca });
    const err = await fetchSchemaJson(endpoint, 7).catch((e: unknown) => e);
    expect(isCdcError(err, 'REGISTRY_UNREACHABLE')).toBe(true);
    expect((err as Error).message).toMatch(/HTTP 401 .*schemaRegistry\.username/);
    expect((err as Error).message).not.toContain('wrong-pw');
  });
});
