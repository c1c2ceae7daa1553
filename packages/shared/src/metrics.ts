import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { CdcError } from './errors.js';

/** Prefix of the process metrics (prom-client's default metrics: RSS, CPU, event-loop lag, GC, heap). */
export const PROCESS_METRICS_PREFIX = 'cityshare_';

/**
 * One registry per service, with process metrics (RSS, event-loop lag, GC). Every series
 * carries `service` and the given labels (a sink's `department`, so alerts can tell which
 * department lost its sink).
 */
export function createMetricsRegistry(service: string, labels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service, ...labels });
  collectDefaultMetrics({ register: registry, prefix: PROCESS_METRICS_PREFIX });
  return registry;
}

/** Whether each dependency was reachable at the service's last try; the runtime (service-runner.ts) adds it to every service's registry. */
export function createDependencyGauge(registry: Registry): Gauge<'dependency'> {
  return new Gauge({
    name: 'cityshare_dependency_up',
    help: 'Whether the dependency the service needs was reachable at its last try (1) or the service waits for it (0)',
    labelNames: ['dependency'] as const,
    registers: [registry],
  });
}

/** Buckets of the stages' batch waits (seconds): where the time between source commit and target goes. */
export const STAGE_WAIT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60];

/**
 * How long the oldest record of a fetched batch waited since its producer wrote it (its Kafka
 * timestamp, the producer's clock), in seconds; 0 if that clock is ahead of ours.
 */
export function batchWaitSeconds(firstTimestamp: string): number {
  return Math.max(0, Date.now() - Number(firstTimestamp)) / 1000;
}

/** Internal topics whose records the pipeline authenticates (record-mac.ts, raw-frame.ts). */
export type AuthenticatedTopicKind = 'raw' | 'checkpoints' | 'table-schemas' | 'signals' | 'deliveries';

/** Records refused because the pipeline key does not authenticate them; the same name in every service that reads such a topic. */
export function createForgedRecordsCounter(registry: Registry): Counter<'topic_kind'> {
  return new Counter({
    name: 'cityshare_forged_records_total',
    help: 'Records on internal topics refused because the pipeline key does not authenticate them (RECORD_FORGED); never acted on',
    labelNames: ['topic_kind'] as const,
    registers: [registry],
  });
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

/** Serves /metrics, /healthz (alive: restart me if not) and /readyz (connected and serving). */
export async function startHealthServer(options: {
  port: number;
  /** Address to listen on; 127.0.0.1 when absent. */
  host?: string;
  registry: Pick<Registry, 'metrics' | 'contentType'>;
  /** true, or why the service cannot do its work now (answered with 503). */
  ready: () => boolean | string;
  /** true, or why the process is wedged and only a restart helps (answered with 503); alive when absent. */
  live?: () => boolean | string;
}): Promise<HealthServer> {
  const answer = (res: ServerResponse, state: boolean | string, ok: string, bad: string) =>
    res.writeHead(state === true ? 200 : 503, { 'content-type': 'text/plain' }).end(state === true ? `${ok}\n` : `${bad}${typeof state === 'string' ? `: ${state}` : ''}\n`);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      options.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(body),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    } else if (path === '/healthz') {
      answer(res, options.live?.() ?? true, 'ok', 'unhealthy');
    } else if (path === '/readyz') {
      answer(res, options.ready(), 'ready', 'not ready');
    } else {
      res.writeHead(404).end();
    }
  });
  // Idle connections stay open longer than scrapers and clients keep them (Node's 5 s would
  // close a socket a client is reusing at that very moment: "other side closed").
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new CdcError('CONFIG_INVALID', `metrics port ${host}:${options.port} cannot be used (${err.code ?? err.message}): ${err.code === 'EADDRINUSE' ? 'another process listens there; give each service on this host its own METRICS_PORT' : 'set METRICS_HOST to an address of this host'}`, { cause: err })));
    server.listen(options.port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
