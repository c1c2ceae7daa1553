import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyHelmet from '@fastify/helmet';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { CdcError, ERROR_CODES, isCdcError, type ErrorCode, type Logger } from '@cityshare/shared';
import { registerOperations, type OperationDeps } from './api-routes.js';
import { ConsoleSessions, type SessionLimits } from './console-sessions.js';
import { registerConsole, SESSION_COOKIE, SIGNED_OUT } from './console-routes.js';
import { LoginThrottle } from './login-throttle.js';
import type { Principal } from './roles.js';

/** A bearer token, stored only as its SHA-256, and who it authenticates. */
export interface TokenEntry extends Principal {
  tokenSha256: string;
}

/** What one client may ask of the API (CONTROL_MAX_BODY_BYTES, CONTROL_LOGIN_FAILURES, CONTROL_LOGIN_WINDOW_MS, CONTROL_SESSION_*). */
export interface ApiLimits {
  /** Largest request body read; a larger one answers 413 and is not read further. */
  maxBodyBytes: number;
  /** After `max` failed logins from one address within `windowMs`, it is answered 429 until the window ends. */
  loginFailures: { max: number; windowMs: number };
  /** How long a web console session lasts. */
  session: SessionLimits;
}

export const DEFAULT_API_LIMITS: ApiLimits = { maxBodyBytes: 1024 * 1024, loginFailures: { max: 10, windowMs: 60_000 }, session: { idleMs: 30 * 60_000, maxMs: 8 * 3_600_000 } };

export interface ApiDeps extends OperationDeps {
  port: number;
  host?: string;
  tokens: TokenEntry[];
  logger: Logger;
  /** PEM certificate and key: the API is served over HTTPS only (and the console's cookies are Secure). */
  tls?: { cert: Buffer; key: Buffer };
  limits?: Partial<ApiLimits>;
  /** The web console's built assets (npm run build); absent or missing: the console answers that it is not built. */
  consoleDir?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who the request authenticates as (set by `authenticate`). */
    principal: Principal | undefined;
    /** Authenticated by the console's session cookie (so a change needs its CSRF token). */
    viaSession: boolean;
  }
}

/** The HTTP status of the codes the API answers with something else than 400. */
const STATUS: Partial<Record<ErrorCode, number>> = { UNAUTHENTICATED: 401, FORBIDDEN: 403, CSRF_INVALID: 403, SETTINGS_TAMPERED: 409, STATE_CONFLICT: 409, NOT_FOUND: 404, UNKNOWN_ID: 404, REQUEST_TOO_LARGE: 413, AUTH_THROTTLED: 429, TABLE_NOT_FOUND: 404, KEY_NOT_FOUND: 404, CONFIG_NOT_FOUND: 404, KAFKA_UNREACHABLE: 503, SOURCE_UNREACHABLE: 503, KAFKA_AUTH_FAILED: 503, KAFKA_NOT_AUTHORIZED: 503, KAFKA_TLS_FAILED: 503 };

/** The body of an error answer: a code of the catalogue, what happened, and the catalogue's action. */
export function errorAnswer(code: ErrorCode, message: string, extra: Record<string, unknown> = {}): { code: ErrorCode; message: string; action: string } & Record<string, unknown> {
  return { code, message, action: ERROR_CODES[code].action, ...extra };
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The refusals Fastify and its plugins raise before a handler runs, as codes of the
 * catalogue: an invalid request (every problem listed), a body over the limit, a change from
 * the console without its CSRF token. Undefined: not a refusal, an internal failure.
 */
function refusalOf(err: FastifyError): CdcError | undefined {
  if (hasZodFastifySchemaValidationErrors(err)) {
    const problems = err.validation.map((v) => `${[err.validationContext ?? 'body', ...v.instancePath.split('/').filter(Boolean)].join('.')}: ${v.message}`);
    return new CdcError('CONFIG_INVALID', `the request is invalid:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new CdcError('REQUEST_TOO_LARGE', 'the request body is larger than the limit');
  if (err.code === 'FST_CSRF_INVALID_TOKEN' || err.code === 'FST_CSRF_MISSING_SECRET') return new CdcError('CSRF_INVALID', 'a change made with the console session needs its CSRF token in the x-csrf-token header');
  if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) return new CdcError('CONFIG_INVALID', 'the request body is not a JSON object');
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return new CdcError('CONFIG_INVALID', `the request is invalid: ${err.message}`);
  return undefined;
}

/**
 * The control plane's HTTP API (services/control/openapi.yaml, generated from the schemas of
 * api-schemas.ts) and its web console, on Fastify: bearer tokens for programs (the CLI, the
 * services), a session cookie with CSRF protection for the console; the role matrix of
 * roles.ts; JSON in and out, errors as `{code, message, action, problems?}` with 400
 * (invalid; every problem listed), 401 (no or unknown token), 403 (role, or a console change
 * without its CSRF token), 404, 413 (body over the limit), 429 (too many failed logins from
 * the address; Retry-After). An unexpected failure answers 500 with a correlation id only;
 * the log line under that id has the real error. Served over HTTPS when given a certificate.
 */
export async function buildApi(o: ApiDeps): Promise<FastifyInstance> {
  const limits = { ...DEFAULT_API_LIMITS, ...o.limits };
  const byHash = new Map(o.tokens.map((t) => [t.tokenSha256, t]));
  const throttle = new LoginThrottle(limits.loginFailures.max, limits.loginFailures.windowMs);
  const sessions = new ConsoleSessions(limits.session);
  const secure = Boolean(o.tls);
  const app = Fastify({
    ...(o.tls ? { https: { cert: o.tls.cert, key: o.tls.key } } : {}),
    bodyLimit: limits.maxBodyBytes,
    // Our own log lines (failed logins, 500s) say what matters; Fastify's would log every URL.
    logger: false,
    // Idle keep-alive connections as the health server keeps them: a client reusing one is not cut.
    keepAliveTimeout: 65_000,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('principal', undefined);
  app.decorateRequest('viaSession', false);

  // A POST without a body is an empty object, as the CLI sends some; an empty JSON body too.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => (body === '' ? done(null, {}) : parseJson(req, body as string, done)));
  app.addHook('preValidation', async (req) => {
    if (req.body === undefined && UNSAFE_METHODS.has(req.method)) req.body = {};
  });

  await app.register(fastifyHelmet, {
    // Everything the console loads is its own bundle: no inline script or style, no CDN.
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'], fontSrc: ["'self'"], connectSrc: ["'self'"], manifestSrc: ["'self'"], baseUri: ["'none'"], formAction: ["'self'"], frameAncestors: ["'none'"], objectSrc: ["'none'"] } },
    strictTransportSecurity: secure ? { maxAge: 31_536_000 } : false,
    referrerPolicy: { policy: 'no-referrer' },
  });
  await app.register(fastifyCookie, { secret: randomBytes(32).toString('hex') });
  await app.register(fastifyCsrf, {
    cookieKey: 'cityshare_csrf',
    cookieOpts: { path: '/', httpOnly: true, sameSite: 'strict', secure, signed: true },
    getToken: (req) => req.headers['x-csrf-token'] as string | undefined,
    // Tokens are bound to the session they were handed out for (or to being signed out).
    getUserInfo: (req) => (sessions.principalOf(req.cookies[SESSION_COOKIE]) ? req.cookies[SESSION_COOKIE]! : SIGNED_OUT),
    csrfOpts: { hmacKey: randomBytes(32) },
  });
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'cityshare control plane',
        version: '0.1.0',
        description: [
          'Catalog, grant workflow, keys, audit and pipeline status of the cityshare control service (services/control/src/api.ts); the `cdc` command line and the web console (/console/) make the same calls.',
          'Programs send `Authorization: Bearer <token>`; tokens map to a principal with a role (dba, security-officer, department, sre, auditor, service). The web console signs in with a token once (POST /console/session) and then sends its HttpOnly session cookie, with the `x-csrf-token` header on every change.',
          'A call the role may not make answers 403 and is written to the audit ledger. Errors are `{code, message, action, problems?}`; an invalid request answers 400 with every problem listed and changes nothing. Served over HTTPS when the service has CONTROL_TLS_CERT and CONTROL_TLS_KEY.',
          `Any call may also answer 401 UNAUTHENTICATED; 413 REQUEST_TOO_LARGE for a body over CONTROL_MAX_BODY_BYTES (1 MiB); 429 AUTH_THROTTLED with Retry-After once an address has made CONTROL_LOGIN_FAILURES (10) failed logins within CONTROL_LOGIN_WINDOW_MS (60 s); and 500 INTERNAL with a generic message and a correlationId (also the X-Correlation-Id header) that names the log line holding the real error.`,
          'This file is generated from the schemas the API validates with (services/control/src/api-schemas.ts): `npm run docs`.',
        ].join('\n\n'),
      },
      servers: [{ url: 'http://127.0.0.1:8090' }, { url: 'https://control.example.gov:8090' }],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, consoleSession: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE } } },
      security: [{ bearer: [] }, { consoleSession: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });

  /**
   * Who the request is: a bearer token (programs), else a console session (its changes need
   * the CSRF token). Addresses with too many failed logins are refused whatever they send.
   */
  const authenticate = async (req: FastifyRequest): Promise<void> => {
    refuseThrottled(req);
    if (req.headers.authorization !== undefined) {
      req.principal = principalOfToken(/^Bearer (.+)$/.exec(req.headers.authorization)?.[1], req);
      return;
    }
    const principal = sessions.principalOf(req.cookies[SESSION_COOKIE]);
    if (!principal) throw new CdcError('UNAUTHENTICATED', 'a valid bearer token (or a console session) is required');
    req.principal = principal;
    req.viaSession = true;
  };

  /** Refuses an address with too many failed logins, whatever it sends, until its window ends. */
  const refuseThrottled = (req: FastifyRequest): void => {
    const remoteAddress = req.socket.remoteAddress ?? 'unknown';
    const blockedMs = throttle.blockedFor(remoteAddress);
    if (blockedMs === undefined) return;
    const retryAfterS = Math.max(1, Math.ceil(blockedMs / 1000));
    throw new CdcError('AUTH_THROTTLED', `too many failed logins from ${remoteAddress}; try again in ${retryAfterS} s`, { details: { retryAfterS } });
  };

  /** The principal a token authenticates (a bearer token, or one signing in to the console); an unknown one counts as a failed login of the address. */
  const principalOfToken = (token: string | undefined, req: FastifyRequest): Principal => {
    refuseThrottled(req);
    const who = token ? byHash.get(createHash('sha256').update(token).digest('hex')) : undefined;
    if (!who) {
      const remoteAddress = req.socket.remoteAddress ?? 'unknown';
      const { failures, throttled } = throttle.fail(remoteAddress);
      o.logger.warn({ remoteAddress, failures, method: req.method, path: req.url.split('?')[0] }, 'control API login failed');
      if (throttled) o.logger.warn({ remoteAddress, failures, windowMs: limits.loginFailures.windowMs }, 'control API logins throttled');
      throw new CdcError('UNAUTHENTICATED', 'a valid bearer token is required');
    }
    return { name: who.name, role: who.role, ...(who.department ? { department: who.department } : {}) };
  };

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const refusal = isCdcError(err) ? err : refusalOf(err);
    if (refusal) {
      if (refusal.code === 'AUTH_THROTTLED') reply.header('retry-after', String(refusal.details.retryAfterS));
      // The rest of a body over the limit is not read: the connection goes with the answer.
      if (refusal.code === 'REQUEST_TOO_LARGE') reply.header('connection', 'close');
      const message = refusal.code === 'REQUEST_TOO_LARGE' ? `the request body is larger than ${limits.maxBodyBytes} bytes` : refusal.message;
      return reply.code(STATUS[refusal.code] ?? 400).type('application/json').send(errorAnswer(refusal.code, message, Array.isArray(refusal.details?.problems) ? { problems: refusal.details.problems } : {}));
    }
    // Internal messages (SQL, paths, stacks) stay in the log; the caller gets the id to quote.
    const correlationId = randomUUID();
    o.logger.error({ err, correlationId, method: req.method, path: req.url.split('?')[0], remoteAddress: req.socket.remoteAddress }, 'control API request failed');
    return reply.code(500).header('x-correlation-id', correlationId).type('application/json').send(errorAnswer('INTERNAL', 'internal error', { correlationId }));
  });

  app.setNotFoundHandler(async (req) => {
    await authenticate(req);
    throw new CdcError('NOT_FOUND', `${req.method} ${req.url.split('?')[0]} is not an operation of the control API`);
  });

  await app.register(async (api) => {
    api.addHook('onRequest', authenticate);
    // A browser sends the session cookie with any request to this host; a change needs the token only the console's page holds.
    api.addHook('onRequest', (req, reply, done) => (req.viaSession && UNSAFE_METHODS.has(req.method) ? app.csrfProtection(req, reply, done) : done()));
    // Answers hold catalog, grants and the ledger: never kept by a browser or a proxy.
    api.addHook('onSend', async (_req, reply) => void reply.header('cache-control', 'no-store'));
    registerOperations(api, o);
  });
  await app.register(async (web) => registerConsole(web, { sessions, principalOfToken, secure, ...(o.consoleDir && existsSync(o.consoleDir) ? { assets: o.consoleDir } : {}) }));
  return app;
}

/** Builds the API and listens; resolves with the listening server (close it to stop). */
export async function startApi(o: ApiDeps): Promise<Server> {
  const app = await buildApi(o);
  const host = o.host ?? '127.0.0.1';
  try {
    await app.listen({ port: o.port, host });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CdcError('CONFIG_INVALID', `the control API cannot listen on ${host}:${o.port} (${e.code ?? e.message}): ${e.code === 'EADDRINUSE' ? 'another process listens there (another control service?); stop it or set CONTROL_PORT' : 'set CONTROL_HOST to an address of this host'}`, { cause: err });
  }
  return app.server as Server;
}
