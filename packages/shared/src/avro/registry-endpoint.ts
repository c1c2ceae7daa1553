import { Agent } from 'node:https';
import { CdcError } from '../errors.js';
import { httpJson } from '../http-json.js';
import { redactUrl } from '../redact.js';
import { readPem } from '../tls.js';

/** How to reach the schema registry: the settings of pipeline.yaml's schemaRegistry. */
export interface RegistrySettings {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  /** CA file of an https:// registry not signed by a system CA. */
  ca?: string | undefined;
}

/**
 * The registry as every caller reaches it: one URL, the same basic auth on every call, and
 * an HTTPS agent trusting the configured CA (its file read once, here).
 */
export interface RegistryEndpoint {
  readonly url: string;
  readonly auth?: { username: string; password: string };
  readonly agent?: Agent;
  /** How long one call may wait for the registry's answer (default REGISTRY_TIMEOUT_MS). */
  readonly timeoutMs?: number;
}

/** One registry call unanswered this long fails as REGISTRY_UNREACHABLE (and is retried by its caller). */
export const REGISTRY_TIMEOUT_MS = 10_000;

export function registryEndpoint(settings: RegistrySettings): RegistryEndpoint {
  const url = settings.url.replace(/\/$/, '');
  const auth = settings.username ? { username: settings.username, password: settings.password ?? '' } : undefined;
  const agent = settings.ca ? new Agent({ ca: readPem(settings.ca, 'schemaRegistry.ca'), keepAlive: true }) : undefined;
  return { url, ...(auth ? { auth } : {}), ...(agent ? { agent } : {}) };
}

/** GET `<url><path>` as JSON with the endpoint's auth and CA; failures are REGISTRY_UNREACHABLE, never quoting credentials. */
export async function getRegistryJson(endpoint: RegistryEndpoint, path: string, timeoutMs = endpoint.timeoutMs ?? REGISTRY_TIMEOUT_MS): Promise<unknown> {
  const target = new URL(endpoint.url + path);
  const where = redactUrl(target.toString());
  const headers: Record<string, string> = { accept: 'application/vnd.schemaregistry.v1+json, application/json' };
  if (endpoint.auth) headers.authorization = `Basic ${Buffer.from(`${endpoint.auth.username}:${endpoint.auth.password}`).toString('base64')}`;
  const res = await httpJson(target, { headers, timeoutMs, ...(endpoint.agent ? { agent: endpoint.agent } : {}) }).catch((cause: Error) => {
    throw new CdcError('REGISTRY_UNREACHABLE', `registry ${where} is not reachable: ${cause.message}`, { cause });
  });
  if (res.status < 200 || res.status >= 300) {
    throw new CdcError('REGISTRY_UNREACHABLE', `registry ${where} answered HTTP ${res.status}${res.status === 401 || res.status === 403 ? ' (check schemaRegistry.username and password)' : ''}`, { details: { status: res.status } });
  }
  if (res.json === undefined) throw new CdcError('REGISTRY_UNREACHABLE', `registry ${where} answered with invalid JSON`);
  return res.json;
}
