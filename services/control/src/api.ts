import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { CdcError, ERROR_CODES, isCdcError, type ErrorCode, type Logger } from '@cityshare/shared';
import type { AclKeeper } from './acl-keeper.js';
import type { CatalogWorkflow } from './catalog-workflow.js';
import type { GrantWorkflow } from './grants.js';
import type { KeyAdmin } from './keys.js';
import type { AuditLedger } from './ledger.js';
import { LoginThrottle } from './login-throttle.js';
import { authorize, type Principal } from './roles.js';

/** A bearer token, stored only as its SHA-256, and who it authenticates. */
export interface TokenEntry extends Principal {
  tokenSha256: string;
}

/** What one client may ask of the API (CONTROL_MAX_BODY_BYTES, CONTROL_LOGIN_FAILURES, CONTROL_LOGIN_WINDOW_MS). */
export interface ApiLimits {
  /** Largest request body read; a larger one answers 413 and is not read further. */
  maxBodyBytes: number;
  /** After `max` failed logins from one address within `windowMs`, it is answered 429 until the window ends. */
  loginFailures: { max: number; windowMs: number };
}

export const DEFAULT_API_LIMITS: ApiLimits = { maxBodyBytes: 1024 * 1024, loginFailures: { max: 10, windowMs: 60_000 } };

interface ApiDeps {
  port: number;
  host?: string;
  tokens: TokenEntry[];
  grants: GrantWorkflow;
  catalog: CatalogWorkflow;
  keys: KeyAdmin;
  ledger: AuditLedger;
  acls: AclKeeper;
  logger: Logger;
  /** The control plane at a glance: catalog and grant counts, the published policy, the last ledger verification. */
  status: () => Promise<unknown>;
  /** The signed policy last published, for services on other hosts; none before the first publication. */
  policy?: () => { text: string; sha256: string } | undefined;
  /** PEM certificate and key: the API is served over HTTPS only. */
  tls?: { cert: Buffer; key: Buffer };
  limits?: Partial<ApiLimits>;
}

type Body = Record<string, unknown>;
type Handler = (who: Principal, body: Body, match: RegExpExecArray, query: URLSearchParams) => Promise<unknown>;

const str = (b: Body, name: string): string | undefined => (typeof b[name] === 'string' ? (b[name] as string) : undefined);
const required = (b: Body, ...names: string[]) => {
  const missing = names.filter((n) => b[n] === undefined || b[n] === '');
  if (missing.length > 0) throw new CdcError('CONFIG_INVALID', `the request needs ${missing.join(', ')}`);
};

/** The operations, by method and path (see openapi.yaml next to this file). */
function routes(o: ApiDeps): Array<[string, RegExp, number, Handler]> {
  return [
    ['GET', /^\/catalog$/, 200, (who) => o.catalog.list(who)],
    ['GET', /^\/policy$/, 200, async (who) => {
      await authorize(o.ledger, who, 'policy.fetch', 'policy');
      const policy = o.policy?.();
      if (!policy) throw new CdcError('CONFIG_NOT_FOUND', 'no policy has been published yet: register a source first (cdc apply)');
      return policy;
    }],
    ['POST', /^\/catalog\/apply$/, 200, (who, b) => {
      required(b, 'pipeline');
      return o.catalog.apply(who, String(b.pipeline), { dryRun: b.dryRun === true, ...(str(b, 'reason') ? { reason: str(b, 'reason') } : {}) });
    }],
    ['POST', /^\/catalog\/tables$/, 200, (who, b) => {
      required(b, 'source', 'table', 'columns');
      return o.catalog.registerTable(who, { source: String(b.source), table: String(b.table), columns: b.columns as Record<string, string>, appendOnly: b.appendOnly === true, dryRun: b.dryRun === true, ...(str(b, 'reason') ? { reason: str(b, 'reason') } : {}) });
    }],
    ['POST', /^\/catalog\/tables\/classify$/, 200, (who, b) => {
      required(b, 'source', 'table', 'columns');
      return o.catalog.classify(who, { source: String(b.source), table: String(b.table), columns: b.columns as Record<string, string | null>, dryRun: b.dryRun === true, ...(str(b, 'reason') ? { reason: str(b, 'reason') } : {}) });
    }],
    ['POST', /^\/catalog\/tables\/unregister$/, 200, (who, b) => {
      required(b, 'source', 'table');
      return o.catalog.unregisterTable(who, { source: String(b.source), table: String(b.table), dryRun: b.dryRun === true, ...(str(b, 'reason') ? { reason: str(b, 'reason') } : {}) });
    }],
    ['GET', /^\/changes$/, 200, (who) => o.catalog.changeRequests(who)],
    ['POST', /^\/changes\/(\d+)\/approve$/, 200, (who, b, m) => o.catalog.approveChange(who, Number(m[1]), str(b, 'reason'))],
    ['POST', /^\/changes\/(\d+)\/reject$/, 200, (who, b, m) => o.catalog.rejectChange(who, Number(m[1]), str(b, 'reason') ?? '')],
    ['GET', /^\/grants$/, 200, (who) => o.grants.list(who)],
    ['POST', /^\/grants$/, 201, (who, b) => {
      required(b, 'table', 'columns', 'purpose');
      return o.grants.request(who, {
        department: str(b, 'department') ?? who.department ?? '',
        table: String(b.table),
        spec: {
          columns: b.columns as Record<string, unknown>,
          ...(str(b, 'filter') ? { filter: str(b, 'filter') } : {}),
          ...(Array.isArray(b.filterReads) ? { filterReads: b.filterReads.map(String) } : {}),
        },
        purpose: String(b.purpose),
        ...(str(b, 'expiresAt') ? { expiresAt: validDate(str(b, 'expiresAt')!) } : {}),
      });
    }],
    ['POST', /^\/grants\/(\d+)\/(approve|reject|revoke)$/, 200, (who, b, m) => o.grants[m[2] as 'approve' | 'reject' | 'revoke'](who, Number(m[1]), str(b, 'reason') ?? '')],
    ['GET', /^\/keys$/, 200, (who) => o.keys.list(who)],
    ['POST', /^\/keys\/rotate$/, 200, (who, b) => {
      required(b, 'name', 'reason');
      return o.keys.rotate(who, String(b.name), String(b.reason));
    }],
    ['GET', /^\/audit$/, 200, async (who, _b, _m, q) => {
      await authorize(o.ledger, who, 'audit.show', 'audit');
      return o.ledger.entries(Number(q.get('after') ?? 0), Math.min(Number(q.get('limit') ?? 1000), 10_000));
    }],
    ['GET', /^\/status$/, 200, async (who) => {
      await authorize(o.ledger, who, 'status.show', 'status');
      return o.status();
    }],
    ['GET', /^\/acls$/, 200, (who) => o.acls.show(who)],
    ['POST', /^\/acls\/apply$/, 200, (who) => o.acls.apply(who)],
    ['GET', /^\/audit\/verify$/, 200, async (who) => {
      await authorize(o.ledger, who, 'audit.verify', 'audit');
      return o.ledger.verify();
    }],
  ];
}

function validDate(text: string): Date {
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw new CdcError('CONFIG_INVALID', `expiresAt ${text} is not a date (use ISO 8601, e.g. 2026-12-31T00:00:00Z)`);
  return d;
}

/** The HTTP status of the codes the API answers with something else than 400. */
const STATUS: Partial<Record<ErrorCode, number>> = { UNAUTHENTICATED: 401, FORBIDDEN: 403, SETTINGS_TAMPERED: 409, STATE_CONFLICT: 409, NOT_FOUND: 404, UNKNOWN_ID: 404, REQUEST_TOO_LARGE: 413, AUTH_THROTTLED: 429, TABLE_NOT_FOUND: 404, KEY_NOT_FOUND: 404, CONFIG_NOT_FOUND: 404, KAFKA_UNREACHABLE: 503, SOURCE_UNREACHABLE: 503, KAFKA_AUTH_FAILED: 503, KAFKA_NOT_AUTHORIZED: 503, KAFKA_TLS_FAILED: 503 };

/** The body of an error answer: a code of the catalogue, what happened, and the catalogue's action. */
export function errorAnswer(code: ErrorCode, message: string, extra: Record<string, unknown> = {}): { code: ErrorCode; message: string; action: string } & Record<string, unknown> {
  return { code, message, action: ERROR_CODES[code].action, ...extra };
}

/**
 * The control plane's HTTP API (see openapi.yaml next to this file): bearer tokens, the
 * role matrix of roles.ts, JSON in and out, errors as `{code, message, action, problems?}`
 * with 400 (invalid; every problem listed), 401 (no or unknown token), 403 (role), 404,
 * 413 (body over the limit), 429 (too many failed logins from the address; Retry-After).
 * An unexpected failure answers 500 with a correlation id only; the log line under that id
 * has the real error. Served over HTTPS when given a certificate.
 */
export function startApi(o: ApiDeps): Promise<Server> {
  const byHash = new Map(o.tokens.map((t) => [t.tokenSha256, t]));
  const table = routes(o);
  const limits = { ...DEFAULT_API_LIMITS, ...o.limits };
  const throttle = new LoginThrottle(limits.loginFailures.max, limits.loginFailures.windowMs);
  const listener: RequestListener = (req, res) => {
    void (async () => {
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
      };
      const url = new URL(req.url ?? '/', 'http://control');
      const remoteAddress = req.socket.remoteAddress ?? 'unknown';
      try {
        const blockedMs = throttle.blockedFor(remoteAddress);
        if (blockedMs !== undefined) {
          const retryAfterS = Math.max(1, Math.ceil(blockedMs / 1000));
          throw new CdcError('AUTH_THROTTLED', `too many failed logins from ${remoteAddress}; try again in ${retryAfterS} s`, { details: { retryAfterS } });
        }
        const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        const who = token ? byHash.get(createHash('sha256').update(token).digest('hex')) : undefined;
        if (!who) {
          // A request without credentials is not a login attempt; one with credentials that do not authenticate is.
          if (req.headers.authorization !== undefined) {
            const { failures, throttled } = throttle.fail(remoteAddress);
            o.logger.warn({ remoteAddress, failures, method: req.method, path: url.pathname }, 'control API login failed');
            if (throttled) o.logger.warn({ remoteAddress, failures, windowMs: limits.loginFailures.windowMs }, 'control API logins throttled');
          }
          throw new CdcError('UNAUTHENTICATED', 'a valid bearer token is required');
        }
        const principal: Principal = { name: who.name, role: who.role, ...(who.department ? { department: who.department } : {}) };
        for (const [method, path, status, handle] of table) {
          const match = path.exec(url.pathname);
          if (match && req.method === method) return send(status, await handle(principal, method === 'POST' ? await body(req, limits.maxBodyBytes) : {}, match, url.searchParams));
        }
        throw new CdcError('NOT_FOUND', `${req.method} ${url.pathname} is not an operation of the control API`);
      } catch (err) {
        if (isCdcError(err)) {
          const headers: Record<string, string> = {
            ...(err.code === 'AUTH_THROTTLED' ? { 'retry-after': String(err.details.retryAfterS) } : {}),
            // The rest of a body over the limit is not read: the connection goes with the answer.
            ...(err.code === 'REQUEST_TOO_LARGE' ? { connection: 'close' } : {}),
          };
          return send(STATUS[err.code] ?? 400, errorAnswer(err.code, err.message, err.details?.problems ? { problems: err.details.problems } : {}), headers);
        }
        // Internal messages (SQL, paths, stacks) stay in the log; the caller gets the id to quote.
        const correlationId = randomUUID();
        o.logger.error({ err, correlationId, method: req.method, path: url.pathname, remoteAddress }, 'control API request failed');
        return send(500, errorAnswer('INTERNAL', 'internal error', { correlationId }), { 'x-correlation-id': correlationId });
      }
    })();
  };
  const server = o.tls ? createTlsServer({ cert: o.tls.cert, key: o.tls.key }, listener) : createServer(listener);
  const host = o.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new CdcError('CONFIG_INVALID', `the control API cannot listen on ${host}:${o.port} (${err.code ?? err.message}): ${err.code === 'EADDRINUSE' ? 'another process listens there (another control service?); stop it or set CONTROL_PORT' : 'set CONTROL_HOST to an address of this host'}`, { cause: err })));
    server.listen(o.port, host, () => resolve(server));
  });
}

/** The JSON object of a request body of at most `max` bytes; reading stops at the first byte over. */
function body(req: IncomingMessage, max: number): Promise<Body> {
  const tooLarge = () => new CdcError('REQUEST_TOO_LARGE', `the request body is larger than ${max} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > max) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= max) return void chunks.push(c);
      req.off('data', onData).pause();
      reject(tooLarge());
    };
    req.on('data', onData);
    req.on('error', reject);
    req.on('end', () => {
      let parsed: unknown;
      try {
        parsed = chunks.length === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        parsed = undefined;
      }
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) resolve(parsed as Body);
      else reject(new CdcError('CONFIG_INVALID', 'the request body is not a JSON object'));
    });
  });
}
