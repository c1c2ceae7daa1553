import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type Agent } from 'node:https';

export interface HttpJsonAnswer {
  status: number;
  /** The body as text, and parsed when it is JSON (undefined when it is not). */
  text: string;
  json: unknown;
}

/**
 * One HTTP(S) request answered in JSON, for the project's small API clients (control API,
 * policy fetch, schema registry): resolves with any status; rejects only with the transport's
 * error (refused, reset, timed out), which each caller turns into its own code.
 */
export function httpJson(url: URL, o: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: Buffer; ca?: Buffer; agent?: Agent; timeoutMs: number }): Promise<HttpJsonAnswer> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, {
      method: o.method ?? 'GET',
      headers: { ...o.headers, ...(o.body ? { 'content-length': String(o.body.length) } : {}) },
      timeout: o.timeoutMs,
      ...(o.ca ? { ca: o.ca } : {}),
      ...(o.agent && url.protocol === 'https:' ? { agent: o.agent } : {}),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
    });
    // A transport failure like a socket error: each caller codes it (CONTROL_UNREACHABLE, REGISTRY_UNREACHABLE).
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(o.body);
  });
}
