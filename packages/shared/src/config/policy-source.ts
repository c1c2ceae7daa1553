import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { CdcError, isCdcError } from '../errors.js';
import { httpJson } from '../http-json.js';
import { POLICY_PUBLIC_KEYS_ENV, checkPolicySignature, policyIssuedAt } from './policy-signature.js';

/** Where a service on a host without the control plane's files gets the policy it runs. */
export interface PolicySource {
  /** The control API's GET /policy, e.g. https://control.city.local:8090/policy. */
  url: string;
  /** A file holding a token of role `service`. */
  tokenFile: string;
  /** PEM of a private CA that signed the control API's certificate. */
  ca?: string;
  refreshMs: number;
  /** The local copy the service runs (CITYSHARE_PIPELINE): written only with a policy that verifies. */
  file: string;
  publicKeys: string | undefined;
}

/** One GET of the control API's policy: the signed text and its digest. */
async function fetchPolicy(source: PolicySource): Promise<{ text: string; sha256: string }> {
  const token = readFileSync(source.tokenFile, 'utf8').trim();
  const res = await httpJson(new URL(source.url), { headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, timeoutMs: 10_000, ...(source.ca ? { ca: readFileSync(source.ca) } : {}) }).catch((cause: Error) => {
    throw new CdcError('CONTROL_UNREACHABLE', `the control plane at ${source.url} is not reachable: ${cause.message}`, { cause });
  });
  const answer = (res.json ?? {}) as { code?: string; message?: string; text?: unknown; sha256?: unknown };
  if (res.status !== 200) {
    const code = res.status === 401 || res.status === 403 ? 'UNAUTHENTICATED' : 'CONTROL_UNREACHABLE';
    throw new CdcError(code, `the control plane at ${source.url} answered ${res.status}${answer.code ? ` ${answer.code}: ${answer.message}` : ''}`);
  }
  if (typeof answer.text !== 'string') throw new CdcError('CONTROL_UNREACHABLE', `${source.url} answered 200 without a policy (is it the control API's /policy?)`);
  return { text: answer.text, sha256: String(answer.sha256) };
}

/**
 * The policy over the network, for services on hosts that do not share the control plane's
 * disk: fetched from the control API (GET /policy, a token of role `service`) at start and
 * every `refreshMs`, verified against the trusted policy public keys (required: a policy
 * that does not verify is never written), and written atomically to the service's local
 * copy, which the service loads and reloads as it does any pipeline file. While the control
 * plane is unreachable the local copy stays in force (reported once, `onReachable(false)`);
 * with no local copy yet the start waits (CONTROL_UNREACHABLE, retried with backoff).
 */
export class PolicySync {
  private timer: NodeJS.Timeout | undefined;
  private reachable = true;

  constructor(
    private readonly source: PolicySource,
    private readonly logger: Logger,
    private readonly onReachable: (up: boolean) => void = () => undefined,
  ) {
    const url = new URL(source.url);
    if (url.protocol !== 'https:' && !['127.0.0.1', '::1', '[::1]', 'localhost'].includes(url.hostname)) {
      throw new CdcError('CONFIG_INVALID', `CITYSHARE_POLICY_URL ${source.url} is not https: the service's token and the policy would cross the network in clear; use https (CITYSHARE_POLICY_CA for a private CA)`);
    }
    if (!source.publicKeys) throw new CdcError('CONFIG_INVALID', `CITYSHARE_POLICY_URL is set but ${POLICY_PUBLIC_KEYS_ENV} is not: a policy fetched over the network is run only when it verifies (\`cdc policy public-key --keyring <control keyring>\` prints the value)`);
  }

  /** Fetches once; without a local copy to fall back on, a failure is thrown. Then refreshes in the background. */
  async start(): Promise<void> {
    try {
      await this.refresh();
    } catch (err) {
      if (!existsSync(this.source.file) || !isCdcError(err, 'CONTROL_UNREACHABLE')) throw err;
    }
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), this.source.refreshMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async refresh(): Promise<void> {
    let fetched: { text: string; sha256: string };
    try {
      fetched = await fetchPolicy(this.source);
    } catch (err) {
      if (this.reachable && isCdcError(err)) this.logger.error({ code: err.code, action: err.action }, `${err.message}; the local copy of the policy stays in force`);
      this.reachable = false;
      this.onReachable(false);
      throw err;
    }
    if (!this.reachable) this.logger.info({ url: this.source.url }, 'the control plane answers again');
    this.reachable = true;
    this.onReachable(true);
    const current = existsSync(this.source.file) ? readFileSync(this.source.file, 'utf8') : undefined;
    if (current === fetched.text) return;
    try {
      checkPolicySignature(fetched.text, this.source.url, this.source.publicKeys);
      // A genuinely signed but older policy (a replay, or a control plane restored from an old
      // backup) would bring back what was revoked since: only a newer one replaces the copy.
      const issued = policyIssuedAt(fetched.text) ?? '';
      const inForce = current === undefined ? undefined : policyIssuedAt(current);
      if (inForce !== undefined && !(issued > inForce)) {
        throw new CdcError('POLICY_SIGNATURE_INVALID', `the policy from ${this.source.url} was issued ${issued || 'at no stated time'}, not after the one in force (${inForce}): an older policy replayed`, { details: { issued, inForce } });
      }
    } catch (err) {
      if (isCdcError(err)) this.logger.error({ code: err.code, action: err.action }, `${err.message}; not written, the local copy stays in force`);
      throw err;
    }
    writeFileSync(`${this.source.file}.tmp`, fetched.text, { mode: 0o644 });
    renameSync(`${this.source.file}.tmp`, this.source.file);
    this.logger.info({ sha256: fetched.sha256, file: this.source.file }, 'policy fetched from the control plane');
  }
}
