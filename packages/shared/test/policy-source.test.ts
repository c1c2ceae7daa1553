import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileKeyring, PolicySync, createLogger, keyNames, policySigningKey, signPolicy } from '../src/index.js';

describe('the policy over the network (PolicySync)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'policy-sync-'));
  const keys = FileKeyring.ensure(join(dir, 'control.json'), ['policy']);
  const publicKeys = policySigningKey(keys.activeKey(keyNames.policy)).publicKey;
  const signed = signPolicy('kafka: {}\n', keys.activeKey(keyNames.policy));
  writeFileSync(join(dir, 'token'), 'service-token\n');
  let served: { status: number; body: unknown } = { status: 200, body: { text: signed, sha256: 'x' } };
  let seenAuth = '';
  let server: Server | undefined;
  const serve = async () => {
    server = createServer((req, res) => {
      seenAuth = req.headers.authorization ?? '';
      res.writeHead(served.status, { 'content-type': 'application/json' }).end(JSON.stringify(served.body));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server!.address() as { port: number }).port}/policy`;
  };
  afterEach(() => server?.close());
  const sync = (url: string, file: string) => new PolicySync({ url, tokenFile: join(dir, 'token'), refreshMs: 60_000, file, publicKeys }, createLogger('test', 'silent'));

  it('takes a 200 that is not the control API\'s answer for an unreachable control plane, not a crash', async () => {
    served = { status: 200, body: '<html>proxy</html>' };
    const url = await serve();
    await expect(sync(url, join(dir, 'f.yaml')).start()).rejects.toMatchObject({ code: 'CONTROL_UNREACHABLE' });
    served = { status: 200, body: { text: signed, sha256: 'x' } };
  });

  it('writes the fetched policy to the local copy when it verifies, with the service token', async () => {
    const url = await serve();
    const file = join(dir, 'a.yaml');
    const s = sync(url, file);
    await s.start();
    s.stop();
    expect(readFileSync(file, 'utf8')).toBe(signed);
    expect(seenAuth).toBe('Bearer service-token');
  });

  it('never writes a policy that does not verify (edited on the way, or signed by another key)', async () => {
    served = { status: 200, body: { text: signed.replace('kafka: {}', 'kafka: { brokers: [evil:9092] }'), sha256: 'x' } };
    const url = await serve();
    const file = join(dir, 'b.yaml');
    await expect(sync(url, file).start()).rejects.toMatchObject({ code: 'POLICY_SIGNATURE_INVALID' });
    expect(existsSync(file)).toBe(false);
    served = { status: 200, body: { text: signed, sha256: 'x' } };
  });

  it('never replaces the policy in force with an older one, however well signed (a replay)', async () => {
    const issued = (at: string) => signPolicy(`kafka: {}\n# cityshare-policy-issued: ${at}\n`, keys.activeKey(keyNames.policy));
    const file = join(dir, 'g.yaml');
    writeFileSync(file, issued('2026-12-04T10:00:00.000Z'));
    served = { status: 200, body: { text: issued('2026-12-01T10:00:00.000Z'), sha256: 'x' } };
    const url = await serve();
    await expect(sync(url, file).start()).rejects.toMatchObject({ code: 'POLICY_SIGNATURE_INVALID', message: expect.stringContaining('an older policy replayed') });
    expect(readFileSync(file, 'utf8')).toContain('2026-12-04T10:00:00.000Z');
    served = { status: 200, body: { text: issued('2026-12-05T10:00:00.000Z'), sha256: 'x' } };
    const s = sync(url, file);
    await s.start();
    s.stop();
    expect(readFileSync(file, 'utf8')).toContain('2026-12-05T10:00:00.000Z');
    served = { status: 200, body: { text: signed, sha256: 'x' } };
  });

  it('keeps the local copy while the control plane does not answer; without one the start waits (CONTROL_UNREACHABLE)', async () => {
    const file = join(dir, 'c.yaml');
    await expect(sync('http://127.0.0.1:1/policy', file).start()).rejects.toMatchObject({ code: 'CONTROL_UNREACHABLE', retriable: true });
    writeFileSync(file, signed);
    const s = sync('http://127.0.0.1:1/policy', file);
    await s.start();
    s.stop();
    expect(readFileSync(file, 'utf8')).toBe(signed);
  });

  it('refuses to run a fetched policy without trusted public keys, and a refused token is not retried', async () => {
    expect(() => new PolicySync({ url: 'http://control.city.internal:8090/policy', tokenFile: join(dir, 'token'), refreshMs: 1000, file: join(dir, 'd.yaml'), publicKeys }, createLogger('test', 'silent'))).toThrow(/is not https/);
    expect(() => new PolicySync({ url: 'https://x/policy', tokenFile: join(dir, 'token'), refreshMs: 1000, file: join(dir, 'd.yaml'), publicKeys: undefined }, createLogger('test', 'silent'))).toThrow(/CITYSHARE_POLICY_PUBLIC_KEYS/);
    served = { status: 403, body: { code: 'FORBIDDEN', message: 'no' } };
    const url = await serve();
    await expect(sync(url, join(dir, 'e.yaml')).start()).rejects.toMatchObject({ code: 'UNAUTHENTICATED', retriable: false });
  });
});
