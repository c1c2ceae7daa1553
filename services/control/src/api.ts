import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { CdcError, isCdcError, type Logger } from '@cityshare/shared';
import type { GrantWorkflow } from './grants.js';
import type { AuditLedger } from './ledger.js';
import { allowed, forbidden, type Principal } from './roles.js';

/** A bearer token, stored only as its SHA-256, and who it authenticates. */
export interface TokenEntry extends Principal {
  tokenSha256: string;
}

/**
 * The control plane's HTTP API (see openapi.yaml next to this file): bearer tokens, the
 * role matrix of roles.ts, JSON in and out, errors as `{code, message, action}` with
 * 400 (invalid), 401 (no or unknown token), 403 (role), 404.
 */
export function startApi(o: { port: number; tokens: TokenEntry[]; grants: GrantWorkflow; ledger: AuditLedger; logger: Logger }): Promise<Server> {
  const byHash = new Map(o.tokens.map((t) => [t.tokenSha256, t]));
  const server = createServer((req, res) => {
    void (async () => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      };
      try {
        const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        const who = token ? byHash.get(createHash('sha256').update(token).digest('hex')) : undefined;
        if (!who) return send(401, { code: 'UNAUTHENTICATED', message: 'a valid bearer token is required', action: 'Send Authorization: Bearer <token> with a token the control plane knows.' });
        const principal: Principal = { name: who.name, role: who.role, ...(who.department ? { department: who.department } : {}) };
        const url = new URL(req.url ?? '/', 'http://control');
        const decide = /^\/grants\/(\d+)\/(approve|reject|revoke)$/.exec(url.pathname);
        if (req.method === 'GET' && url.pathname === '/grants') return send(200, await o.grants.list(principal));
        if (req.method === 'POST' && url.pathname === '/grants') {
          const b = (await body(req)) as { department?: string; table?: string; columns?: Record<string, unknown>; filter?: string; purpose?: string; expiresAt?: string };
          if (!b.table || !b.columns || !b.purpose) throw new CdcError('CONFIG_INVALID', 'a grant request needs table, columns and purpose');
          const department = b.department ?? principal.department ?? '';
          return send(201, await o.grants.request(principal, { department, table: b.table, spec: { columns: b.columns, ...(b.filter ? { filter: b.filter } : {}) }, purpose: b.purpose, ...(b.expiresAt ? { expiresAt: new Date(b.expiresAt) } : {}) }));
        }
        if (req.method === 'POST' && decide) {
          const { reason } = (await body(req)) as { reason?: string };
          const id = Number(decide[1]);
          const action = decide[2] as 'approve' | 'reject' | 'revoke';
          return send(200, await o.grants[action](principal, id, reason ?? ''));
        }
        if (req.method === 'GET' && url.pathname === '/audit/verify') {
          if (!allowed(principal, 'audit.verify')) {
            await o.ledger.append({ actor: principal.name, role: principal.role, action: 'denied:audit.verify', subject: 'audit', details: {} });
            throw forbidden(principal, 'audit.verify');
          }
          return send(200, await o.ledger.verify());
        }
        return send(404, { code: 'NOT_FOUND', message: `${req.method} ${url.pathname} is not an operation of the control API`, action: 'See services/control/openapi.yaml.' });
      } catch (err) {
        if (isCdcError(err)) return send(err.code === 'FORBIDDEN' ? 403 : 400, { code: err.code, message: err.message, action: err.action });
        o.logger.error({ err }, 'control API request failed');
        return send(500, { code: 'INTERNAL', message: (err as Error).message });
      }
    })();
  });
  return new Promise((resolve) => server.listen(o.port, '127.0.0.1', () => resolve(server)));
}

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  try {
    return chunks.length === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new CdcError('CONFIG_INVALID', 'the request body is not JSON');
  }
}
