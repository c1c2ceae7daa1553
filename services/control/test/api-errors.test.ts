import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, createLogger } from '@cityshare/shared';
import { startApi } from '../src/api.js';

const TOKEN = 'api-errors-test-token';

/** Every error answer of the control API carries a code of the catalogue and the catalogue's action. */
describe('control API error answers', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    // Only the paths that answer before any workflow is reached, and one whose workflow fails unexpectedly.
    const failing = { list: () => Promise.reject(new Error('select failed: connection reset')) };
    server = await startApi({
      port: 0,
      tokens: [{ name: 'ops', role: 'dba', tokenSha256: createHash('sha256').update(TOKEN).digest('hex') }],
      grants: {} as never,
      catalog: failing as never,
      keys: {} as never,
      ledger: {} as never,
      acls: {} as never,
      logger: createLogger('control-api-test', 'silent'),
      status: () => Promise.resolve({}),
      limits: { maxBodyBytes: 64, loginFailures: { max: 2, windowMs: 60_000 } },
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => {
    server.close();
  });

  const call = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${base}${path}`, init);
    return { status: res.status, body: (await res.json()) as { code: string; action: string } };
  };
  const auth = { authorization: `Bearer ${TOKEN}` };

  const expectCatalogued = (answer: { status: number; body: { code: string; action: string } }, status: number, code: string) => {
    expect(answer.status).toBe(status);
    expect(answer.body.code).toBe(code);
    expect(Object.keys(ERROR_CODES)).toContain(answer.body.code);
    expect(answer.body.action).toBe(ERROR_CODES[code as keyof typeof ERROR_CODES].action);
  };

  it('answers each refusal with its catalogued code and action', async () => {
    expectCatalogued(await call('/grants'), 401, 'UNAUTHENTICATED');
    expectCatalogued(await call('/no-such-operation', { headers: auth }), 404, 'NOT_FOUND');
    expectCatalogued(await call('/catalog/apply', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ pipeline: 'x'.repeat(100) }) }), 413, 'REQUEST_TOO_LARGE');
    expectCatalogued(await call('/catalog/apply', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{not json' }), 400, 'CONFIG_INVALID');
    expectCatalogued(await call('/catalog', { headers: auth }), 500, 'INTERNAL');
  });

  it('throttles an address after failed logins with AUTH_THROTTLED', async () => {
    const wrong = { authorization: 'Bearer wrong' };
    expectCatalogued(await call('/grants', { headers: wrong }), 401, 'UNAUTHENTICATED');
    await call('/grants', { headers: wrong });
    expectCatalogued(await call('/grants', { headers: auth }), 429, 'AUTH_THROTTLED');
  });
});
