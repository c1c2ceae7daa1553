import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { CdcError } from '@cityshare/shared';
import { LoginBody, SessionState, refusal } from './api-schemas.js';
import type { ConsoleSessions } from './console-sessions.js';
import { ROLE_MATRIX, type Operation, type Principal } from './roles.js';

/** The console's session cookie: an opaque id, HttpOnly, SameSite=Strict, Secure under TLS. */
export const SESSION_COOKIE = 'cityshare_session';

/** What CSRF tokens handed out before sign-in are bound to (a session's are bound to its id). */
export const SIGNED_OUT = 'signed-out';

/** The principal as the console shows it: with the operations its role may call (pages and buttons follow them; the API decides). */
function withOperations(p: Principal) {
  return { ...p, operations: (Object.keys(ROLE_MATRIX) as Operation[]).filter((op) => ROLE_MATRIX[op].includes(p.role)) };
}

/**
 * The web console: its built assets under /console/ (services/control/console, `npm run
 * build`), and its session: sign in with a token (POST /console/session, the token in the
 * body, never in a URL) for an HttpOnly session cookie, read the session and a CSRF token
 * (GET), sign out. Everything else the console does is a call of the API under that session.
 * Another way to sign in (an OIDC provider) would open a session the same way: see
 * docs/control-plane.md, "Web console".
 */
export async function registerConsole(app: FastifyInstance, o: {
  sessions: ConsoleSessions;
  /** The principal of a token; throws UNAUTHENTICATED (and counts a failed login) otherwise. */
  principalOfToken: (token: string | undefined, req: FastifyRequest) => Principal;
  secure: boolean;
  assets?: string;
}): Promise<void> {
  const web = app.withTypeProvider<ZodTypeProvider>();
  const cookie = { path: '/', httpOnly: true, sameSite: 'strict' as const, secure: o.secure };
  const sessionId = (req: FastifyRequest) => req.cookies[SESSION_COOKIE];
  // The console's own answers are never cached either: they carry a CSRF token.
  web.addHook('onSend', async (req, reply) => void (req.url.startsWith('/console/session') ? reply.header('cache-control', 'no-store') : undefined));

  web.route({
    method: 'GET', url: '/console/session',
    schema: { summary: "The console's session: who is signed in (null: nobody) and the CSRF token its changes send", tags: ['console'], security: [], response: { 200: SessionState } },
    handler: async (req, reply) => {
      const principal = o.sessions.principalOf(sessionId(req));
      return { principal: principal ? withOperations(principal) : null, csrfToken: reply.generateCsrf({ userInfo: principal ? sessionId(req)! : SIGNED_OUT }) };
    },
  });
  web.route({
    method: 'POST', url: '/console/session',
    // Signing in is a change too: a page of another site may not sign a browser in.
    onRequest: (req, reply, done) => app.csrfProtection(req, reply, done),
    schema: { summary: 'Sign in to the console with a token (in the body, never in a URL): sets the HttpOnly session cookie; the CSRF token of GET /console/session before sign-in goes in x-csrf-token', tags: ['console'], security: [], body: LoginBody, response: { 200: SessionState, 401: refusal('unknown token (counted as a failed login of the address)'), 403: refusal('no or wrong CSRF token (CSRF_INVALID)'), 429: refusal('too many failed logins from the address (AUTH_THROTTLED)') } },
    handler: async (req, reply) => {
      const principal = o.principalOfToken(req.body.token, req);
      o.sessions.close(sessionId(req));
      const id = o.sessions.open(principal);
      reply.setCookie(SESSION_COOKIE, id, cookie);
      return { principal: withOperations(principal), csrfToken: reply.generateCsrf({ userInfo: id }) };
    },
  });
  web.route({
    method: 'POST', url: '/console/session/end',
    onRequest: (req, reply, done) => app.csrfProtection(req, reply, done),
    schema: { summary: 'Sign out of the console: the session ends on the server and its cookie is cleared', tags: ['console'], security: [{ consoleSession: [] }], body: z.object({}), response: { 200: SessionState, 403: refusal('no or wrong CSRF token (CSRF_INVALID)') } },
    handler: async (req, reply) => {
      o.sessions.close(sessionId(req));
      reply.clearCookie(SESSION_COOKIE, cookie);
      return { principal: null, csrfToken: reply.generateCsrf({ userInfo: SIGNED_OUT }) };
    },
  });

  app.get('/', { schema: { hide: true } }, (_req, reply) => reply.redirect('/console/'));
  app.get('/console', { schema: { hide: true } }, (_req, reply) => reply.redirect('/console/'));
  if (o.assets) {
    // Hashed asset names: cached for good; index.html never, so a new build is seen at once.
    await app.register(fastifyStatic, { root: o.assets, prefix: '/console/', index: 'index.html', schemaHide: true, setHeaders: (res, path) => res.header('cache-control', path.endsWith('.html') ? 'no-cache' : 'public, max-age=31536000, immutable') });
  } else {
    app.get('/console/', { schema: { hide: true } }, () => {
      throw new CdcError('NOT_FOUND', 'the web console is not built on this host: run npm run build');
    });
  }
}
