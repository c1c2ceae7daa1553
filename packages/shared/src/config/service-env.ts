import { z } from 'zod';
import type { Logger } from 'pino';
import { CdcError } from '../errors.js';
import { PolicySync } from './policy-source.js';

/**
 * Per-service settings come from the environment, declared with zod like the pipeline
 * file; a service fails fast listing every bad variable.
 */
export function loadServiceEnv<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv = process.env): z.infer<T> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new CdcError('CONFIG_INVALID', `service environment has ${problems.length} problem(s):\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  }
  return parsed.data;
}

/**
 * Default port of each service's /metrics, /healthz and /readyz: fixed, so Prometheus finds
 * them where `deploy/prometheus/prometheus.yml` scrapes. Several instances of one service on
 * one host (a sink per department) each set METRICS_PORT.
 */
export const METRICS_PORTS = { 'cdc-reader': 9464, transformer: 9465, sink: 9466, control: 9467, verifier: 9468 } as const;
export type ServiceKind = keyof typeof METRICS_PORTS;

/** Variables every service reads; `service` picks the default metrics port. */
export const commonServiceEnv = (service: ServiceKind) => ({
  CITYSHARE_PIPELINE: z.string().default('pipeline.yaml').describe('path of the pipeline file'),
  CITYSHARE_KEYRING: z.string().optional().describe("this service's own keyring file, holding only the key lists it needs (`cdc keys split` writes one per service); replaces the pipeline file's keyring.file for this service"),
  CITYSHARE_POLICY_PUBLIC_KEYS: z.string().optional().describe("the control plane's policy public keys (`<key id>:<base64>`, comma-separated; `cdc policy public-key` prints them): set, the pipeline file must carry a valid signature by one of them, or it is refused (POLICY_SIGNATURE_INVALID)"),
  CITYSHARE_POLICY_URL: z.string().url().optional().describe("reader, transformer, sink: the control API's GET /policy (e.g. https://control:8090/policy; https unless on loopback): set, the service fetches the signed policy from the control plane at start and every CITYSHARE_POLICY_REFRESH_MS into its local copy CITYSHARE_PIPELINE, for hosts that do not share the control plane's disk; needs CITYSHARE_POLICY_PUBLIC_KEYS and CITYSHARE_POLICY_TOKEN_FILE"),
  CITYSHARE_POLICY_TOKEN_FILE: z.string().optional().describe('file holding a control API token of role `service` (its SHA-256 in CONTROL_TOKENS), for CITYSHARE_POLICY_URL'),
  CITYSHARE_POLICY_CA: z.string().optional().describe("PEM of the private CA that signed the control API's certificate, for CITYSHARE_POLICY_URL over HTTPS"),
  CITYSHARE_POLICY_REFRESH_MS: z.coerce.number().int().min(500).default(5000).describe('how often the policy is fetched from CITYSHARE_POLICY_URL (a revoke reaches the service within this plus its reload)'),
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(METRICS_PORTS[service]).describe(`port of /metrics, /healthz, /readyz (default ${METRICS_PORTS[service]}; 0 picks a free one, logged at start)`),
  METRICS_HOST: z.string().min(1).default('127.0.0.1').describe('address /metrics, /healthz and /readyz listen on: 127.0.0.1 (this host only), or 0.0.0.0 for a Prometheus or an orchestrator on another host'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').describe('least severe level written to stdout (JSON lines); row values never appear at any level'),
});

/** The PolicySync a service's environment asks for (CITYSHARE_POLICY_URL), or none: the policy is the local file. */
export function policySyncOf(env: { CITYSHARE_PIPELINE: string; CITYSHARE_POLICY_URL?: string | undefined; CITYSHARE_POLICY_TOKEN_FILE?: string | undefined; CITYSHARE_POLICY_CA?: string | undefined; CITYSHARE_POLICY_REFRESH_MS: number; CITYSHARE_POLICY_PUBLIC_KEYS?: string | undefined }, logger: Logger, onReachable?: (up: boolean) => void): PolicySync | undefined {
  if (!env.CITYSHARE_POLICY_URL) return undefined;
  if (!env.CITYSHARE_POLICY_TOKEN_FILE) throw new CdcError('CONFIG_INVALID', 'CITYSHARE_POLICY_URL is set but CITYSHARE_POLICY_TOKEN_FILE is not: give the service a file holding its control API token (role service)');
  return new PolicySync({ url: env.CITYSHARE_POLICY_URL, tokenFile: env.CITYSHARE_POLICY_TOKEN_FILE, ...(env.CITYSHARE_POLICY_CA ? { ca: env.CITYSHARE_POLICY_CA } : {}), refreshMs: env.CITYSHARE_POLICY_REFRESH_MS, file: env.CITYSHARE_PIPELINE, publicKeys: env.CITYSHARE_POLICY_PUBLIC_KEYS }, logger, onReachable);
}
