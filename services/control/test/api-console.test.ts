import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../src/api.js';

const sha = (t: string) => createHash('sha256').update(t).digest('hex');

/**
 * The console's session and the API's browser defences, on the real Fastify app (no
 * database: the workflows are stand-ins that record what reached them): sign-in with a token
 * in the body, cookie flags, CSRF on every change, the CSP, tokens never logged.
 */
describe('control API: console session, CSRF, security headers', () => {
  const lines: string[] = [];
  const rotated: string[] = [];
  let app: FastifyInstance;

  const build = (tls?: { cert: Buffer; key: Buffer }, limits?: { loginFailures: { max: number; windowMs: number } }) => buildApi({
    port: 0,
    tokens: [{ tokenSha256: sha('officer-secret-token'), name: 'zhang.officer', role: 'security-officer' }],
    grants: { list: async () => [] } as never,
    catalog: {} as never,
    keys: { rotate: async (_who: unknown, name: string) => (rotated.push(name), { name, id: `${name}-2`, created: null, active: true, rotatedBy: 'zhang.officer' }) } as never,
    ledger: {} as never,
    acls: {} as never,
    status: async () => ({}),
    logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }),
    ...(tls ? { tls } : {}),
    ...(limits ? { limits } : {}),
  });

  beforeAll(async () => {
    app = await build();
  });
  afterAll(() => app.close());

  /** Cookies a response sets, by name, with their attributes. */
  const cookiesOf = (res: LightMyRequestResponse) => new Map(res.cookies.map((c) => [c.name, c]));
  const jar = (res: LightMyRequestResponse, before: Record<string, string> = {}) => ({ ...before, ...Object.fromEntries(res.cookies.filter((c) => c.value !== '').map((c) => [c.name, c.value])) });

  async function signIn(target = app) {
    const start = await target.inject({ method: 'GET', url: '/console/session' });
    const csrf = (start.json() as { csrfToken: string }).csrfToken;
    const res = await target.inject({ method: 'POST', url: '/console/session', headers: { 'x-csrf-token': csrf }, cookies: jar(start), payload: { token: 'officer-secret-token' } });
    return { res, cookies: jar(res, jar(start)), csrf: (res.json() as { csrfToken: string }).csrfToken };
  }

  it('signs in with the token in the body for an HttpOnly, SameSite=Strict session cookie (Secure only under TLS)', async () => {
    const { res } = await signIn();
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ principal: { name: 'zhang.officer', role: 'security-officer', operations: expect.arrayContaining(['grant.approve', 'key.rotate']) }, csrfToken: expect.any(String) });
    const session = cookiesOf(res).get('cityshare_session')!;
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(session.secure).toBeUndefined();
    expect(session.value).not.toContain('officer-secret-token');

    const dir = mkdtempSync(join(tmpdir(), 'console-tls-'));
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const tls = await build({ cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) });
    try {
      const secure = await signIn(tls);
      expect(cookiesOf(secure.res).get('cityshare_session')).toMatchObject({ httpOnly: true, sameSite: 'Strict', secure: true });
      expect(secure.res.headers['strict-transport-security']).toMatch(/max-age=\d+/);
    } finally {
      await tls.close();
    }
  });

  it('refuses a sign-in and every change of a session without its CSRF token (403 CSRF_INVALID), and lets reads through', async () => {
    const start = await app.inject({ method: 'GET', url: '/console/session' });
    const noToken = await app.inject({ method: 'POST', url: '/console/session', cookies: jar(start), payload: { token: 'officer-secret-token' } });
    expect(noToken.statusCode).toBe(403);
    expect(noToken.json()).toMatchObject({ code: 'CSRF_INVALID' });
    expect(cookiesOf(noToken).has('cityshare_session')).toBe(false);

    const { cookies, csrf } = await signIn();
    expect((await app.inject({ method: 'GET', url: '/grants', cookies })).statusCode).toBe(200);
    for (const headers of [{}, { 'x-csrf-token': 'forged' }, { 'x-csrf-token': (start.json() as { csrfToken: string }).csrfToken }]) {
      const refused = await app.inject({ method: 'POST', url: '/keys/rotate', cookies, headers, payload: { name: 'pipeline', reason: 'csrf test' } });
      expect(refused.statusCode).toBe(403);
      expect(refused.json()).toMatchObject({ code: 'CSRF_INVALID', action: expect.stringMatching(/CSRF token/) });
    }
    expect(rotated).toEqual([]);
    const done = await app.inject({ method: 'POST', url: '/keys/rotate', cookies, headers: { 'x-csrf-token': csrf }, payload: { name: 'pipeline', reason: 'csrf test' } });
    expect(done.statusCode).toBe(200);
    expect(rotated).toEqual(['pipeline']);
    // A program's bearer token is not sent by a browser on its own: no CSRF token needed.
    expect((await app.inject({ method: 'POST', url: '/keys/rotate', headers: { authorization: 'Bearer officer-secret-token' }, payload: { name: 'audit', reason: 'cli' } })).statusCode).toBe(200);
  });

  it('ends a session on sign-out; its cookie no longer authenticates', async () => {
    const { cookies, csrf } = await signIn();
    const out = await app.inject({ method: 'POST', url: '/console/session/end', cookies, headers: { 'x-csrf-token': csrf }, payload: {} });
    expect(out.statusCode).toBe(200);
    expect(cookiesOf(out).get('cityshare_session')?.value).toBe('');
    expect((await app.inject({ method: 'GET', url: '/grants', cookies })).json()).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect((await app.inject({ method: 'GET', url: '/console/session', cookies })).json()).toMatchObject({ principal: null });
  });

  it('serves every answer with a strict Content-Security-Policy and no caching of API answers', async () => {
    for (const url of ['/console/', '/console/session', '/grants']) {
      const res = await app.inject({ method: 'GET', url });
      const csp = String(res.headers['content-security-policy']);
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:/);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
    const { cookies } = await signIn();
    expect((await app.inject({ method: 'GET', url: '/grants', cookies })).headers['cache-control']).toBe('no-store');
  });

  it('throttles sign-in attempts like bearer logins: after too many failures even the right token answers 429', async () => {
    const strict = await build(undefined, { loginFailures: { max: 2, windowMs: 60_000 } });
    try {
      const attempt = async (token: string) => {
        const start = await strict.inject({ method: 'GET', url: '/console/session' });
        return strict.inject({ method: 'POST', url: '/console/session', cookies: jar(start), headers: { 'x-csrf-token': (start.json() as { csrfToken: string }).csrfToken }, payload: { token } });
      };
      expect((await attempt('guess-1')).statusCode).toBe(401);
      expect((await attempt('guess-2')).statusCode).toBe(401);
      const throttled = await attempt('officer-secret-token');
      expect(throttled.statusCode).toBe(429);
      expect(throttled.json()).toMatchObject({ code: 'AUTH_THROTTLED' });
      expect(Number(throttled.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    } finally {
      await strict.close();
    }
  });

  it('counts a wrong sign-in token as a failed login and never logs a token', async () => {
    const start = await app.inject({ method: 'GET', url: '/console/session' });
    const wrong = await app.inject({ method: 'POST', url: '/console/session', cookies: jar(start), headers: { 'x-csrf-token': (start.json() as { csrfToken: string }).csrfToken }, payload: { token: 'guessed-token-123' } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(lines.some((l) => l.includes('control API login failed'))).toBe(true);
    expect(lines.join('\n')).not.toMatch(/guessed-token-123|officer-secret-token/);
  });
});
