import { z } from 'zod';
import { CdcError } from '../errors.js';

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
export const METRICS_PORTS = { 'cdc-reader': 9464, transformer: 9465, sink: 9466, control: 9467 } as const;
export type ServiceKind = keyof typeof METRICS_PORTS;

/** Variables every service reads; `service` picks the default metrics port. */
export const commonServiceEnv = (service: ServiceKind) => ({
  CITYSHARE_PIPELINE: z.string().default('pipeline.yaml').describe('path of the pipeline file'),
  CITYSHARE_KEYRING: z.string().optional().describe("this service's own keyring file, holding only the key lists it needs (`cdc keys split` writes one per service); replaces the pipeline file's keyring.file for this service"),
  CITYSHARE_POLICY_PUBLIC_KEYS: z.string().optional().describe("the control plane's policy public keys (`<key id>:<base64>`, comma-separated; `cdc policy public-key` prints them): set, the pipeline file must carry a valid signature by one of them, or it is refused (POLICY_SIGNATURE_INVALID)"),
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(METRICS_PORTS[service]).describe(`port of /metrics, /healthz, /readyz (default ${METRICS_PORTS[service]}; 0 picks a free one, logged at start)`),
  METRICS_HOST: z.string().min(1).default('127.0.0.1').describe('address /metrics, /healthz and /readyz listen on: 127.0.0.1 (this host only), or 0.0.0.0 for a Prometheus or an orchestrator on another host'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').describe('least severe level written to stdout (JSON lines); row values never appear at any level'),
});
