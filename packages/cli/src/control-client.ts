import { existsSync, readFileSync } from 'node:fs';
import { CdcError, httpJson } from '@cityshare/shared';

/** How to reach the control API: its URL, a bearer token, and for HTTPS with a private CA its certificate. */
export interface ControlOptions {
  api: string;
  token?: string;
  ca?: string;
}

/** An answer of the API that is not a success, with the exit code the CLI ends with. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: { code?: string; message?: string; action?: string; problems?: string[]; correlationId?: string },
  ) {
    super(body.message ?? `control API answered ${status}`);
  }

  /** By the error's code when the API sent one (exitCodeOf), else by the HTTP status. */
  get exitCode(): number {
    const byCode = this.body.code ? exitCodeOf(this.body.code) : 1;
    if (byCode !== 1) return byCode;
    if (this.status === 400) return 3;
    if (this.status === 401 || this.status === 403) return 4;
    if (this.status === 404) return 5;
    return 1;
  }
}

/**
 * The CLI's exit codes (docs/control-plane.md, "CLI exit codes"): 0 done; 1 failed (unreachable,
 * unexpected); 2 the audit ledger does not verify; 3 invalid input or usage (every problem
 * listed); 4 not authenticated or not allowed; 5 not found.
 */
export function exitCodeOf(code: string): number {
  switch (code) {
    case 'AUDIT_LEDGER_TAMPERED':
      return 2;
    case 'CONFIG_INVALID':
    case 'TABLE_WITHOUT_KEY':
    case 'STATE_CONFLICT':
    case 'REQUEST_TOO_LARGE':
    case 'USAGE':
      return 3;
    case 'UNAUTHENTICATED':
    case 'FORBIDDEN':
    case 'AUTH_THROTTLED':
    case 'KAFKA_AUTH_FAILED':
    case 'KAFKA_NOT_AUTHORIZED':
    case 'GRANT_REVOKED':
      return 4;
    case 'CONFIG_NOT_FOUND':
    case 'TABLE_NOT_FOUND':
    case 'KEY_NOT_FOUND':
    case 'UNKNOWN_ID':
    case 'NOT_FOUND':
      return 5;
    default:
      return 1;
  }
}

/** A file named on the command line, read; a missing one is CONFIG_NOT_FOUND (exit 5) naming it. */
export function readInputFile(file: string, what: string): string {
  if (!existsSync(file)) throw new CdcError('CONFIG_NOT_FOUND', `${what} ${file} does not exist`, { details: { path: file } });
  return readFileSync(file, 'utf8');
}

/** One call of the control API; resolves with the JSON body of a 2xx answer. */
export async function callControl<T = unknown>(o: ControlOptions, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  if (!o.token) throw new CdcError('CONFIG_INVALID', 'no token for the control API: pass --token or set CDC_TOKEN');
  const url = new URL(path, o.api.endsWith('/') ? o.api : `${o.api}/`);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const res = await httpJson(url, {
    method,
    headers: { authorization: `Bearer ${o.token}`, accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}) },
    ...(payload ? { body: payload } : {}),
    ...(o.ca ? { ca: readFileSync(o.ca) } : {}),
    timeoutMs: 30_000,
  }).catch((cause: Error) => {
    throw new CdcError('CONTROL_UNREACHABLE', `control API at ${o.api} not reachable: ${cause.message}`, { cause });
  });
  const json = res.json ?? (res.text ? { message: res.text } : {});
  if (res.status >= 300) throw new ApiError(res.status, json as ApiError['body']);
  return json as T;
}

/** Prints rows as an aligned table (first row is the header). */
export function printTable(rows: string[][]): void {
  if (rows.length <= 1) {
    process.stdout.write('(none)\n');
    return;
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
}
