import { request as httpRequest } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { CdcError } from '../errors.js';
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
}

export function registryEndpoint(settings: RegistrySettings): RegistryEndpoint {
  const url = settings.url.replace(/\/$/, '');
  const auth = settings.username ? { username: settings.username, password: settings.password ?? '' } : undefined;
  const agent = settings.ca ? new Agent({ ca: readPem(settings.ca, 'schemaRegistry.ca'), keepAlive: true }) : undefined;
  return { url, ...(auth ? { auth } : {}), ...(agent ? { agent } : {}) };
}

/** GET `<url><path>` as JSON with the endpoint's auth and CA; failures are REGISTRY_UNREACHABLE, never quoting credentials. */
export function getRegistryJson(endpoint: RegistryEndpoint, path: string, timeoutMs = 10_000): Promise<unknown> {
  const target = new URL(endpoint.url + path);
  const where = redactUrl(target.toString());
  const headers: Record<string, string> = { accept: 'application/vnd.schemaregistry.v1+json, application/json' };
  if (endpoint.auth) headers.authorization = `Basic ${Buffer.from(`${endpoint.auth.username}:${endpoint.auth.password}`).toString('base64')}`;
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(target, { headers, timeout: timeoutMs, ...(endpoint.agent && target.protocol === 'https:' ? { agent: endpoint.agent } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (cause) => reject(new CdcError('REGISTRY_UNREACHABLE', `registry ${where}: ${cause.message}`, { cause })));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          reject(new CdcError('REGISTRY_UNREACHABLE', `registry ${where} answered HTTP ${status}${status === 401 || status === 403 ? ' (check schemaRegistry.username and password)' : ''}`, { details: { status } }));
          return;
        }
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (cause) {
          reject(new CdcError('REGISTRY_UNREACHABLE', `registry ${where} answered with invalid JSON`, { cause }));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (cause) => reject(new CdcError('REGISTRY_UNREACHABLE', `registry ${where} is not reachable: ${cause.message}`, { cause })));
    req.end();
  });
}
