import type { Gauge, Registry } from 'prom-client';
import { CdcError, isCdcError, type ErrorCode } from './errors.js';
import type { Logger } from './logger.js';
import { LoopLag } from './loop-lag.js';
import { createDependencyGauge, startHealthServer, type HealthServer } from './metrics.js';

/** What a service's main gets from the runtime for one run. */
export interface ServiceRun {
  /**
   * Serves /metrics, /healthz and /readyz on `port`. The server outlives the run: while the
   * service waits to start again it answers /readyz 503 with the reason. `ready` answers
   * true, or why not (a string, or false). /healthz is 503 while the event loop was lately
   * blocked for more than 5 s, or while `live` says why only a restart can help.
   */
  serve(options: { port: number; host?: string; registry: Registry; ready: () => boolean | string; live?: () => boolean | string }): Promise<{ port: number }>;
  /** Undoes what the run opened; cleanups run in reverse order when the run stops (shutdown or restart). */
  defer(cleanup: () => unknown): void;
  /** A dependency found unreachable (or back) while the run goes on and its client retries by itself: `cityshare_dependency_up`. */
  dependency(name: string, up: boolean): void;
  /** A fault after start: a retriable one stops the run and starts it again after a backoff; any other exits with 1. */
  fail(err: CdcError): void;
  /** Stops the run and starts it again at once, logging why (e.g. settings it reads only at start changed). */
  restart(why: string): void;
}

/** What `run.restart` hands the loop instead of a fault. */
class Restart {
  constructor(readonly why: string) {}
}

/** What each retriable code says is down, for `cityshare_dependency_up{dependency}`. */
export const DEPENDENCY_OF: Partial<Record<ErrorCode, string>> = {
  SOURCE_UNREACHABLE: 'source',
  KAFKA_UNREACHABLE: 'kafka',
  REGISTRY_UNREACHABLE: 'registry',
  TARGET_UNREACHABLE: 'target',
  CONTROL_UNREACHABLE: 'control',
};

export interface RunServiceOptions {
  /** First wait before a restart; doubles up to `maxBackoffMs`, ±20 % jitter. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Runs a service's main and keeps it running. A CdcError that a restart cannot fix (invalid
 * configuration, purged binlog, forged input, refused credentials) is logged with its code
 * and what to do, and the process exits 1. A retriable one (source, broker, registry, target
 * unreachable) — at start or later through `run.fail` — stops the run (its deferred
 * cleanups), waits with capped exponential backoff and jitter, and starts it again, for as
 * long as it takes: logged once per change of error, not per try, with
 * `cityshare_dependency_up{dependency}` at 0 and /readyz 503 meanwhile. SIGINT/SIGTERM stop
 * the run and exit 0.
 */
export async function runService(logger: Logger, main: (run: ServiceRun) => Promise<void>, options: RunServiceOptions = {}): Promise<void> {
  const initial = options.initialBackoffMs ?? 1000;
  const cap = options.maxBackoffMs ?? 30_000;
  let cleanups: Array<() => unknown> = [];
  let health: HealthServer | undefined;
  let registry: Registry | undefined;
  let ready: () => boolean | string = () => 'starting';
  let live: () => boolean | string = () => true;
  const loopLag = new LoopLag({ limitMs: 5_000 });
  let dependencyUp: Gauge<'dependency'> | undefined;
  /** Last known state of each dependency, across runs (each run makes a new registry). */
  const dependencies = new Map(Object.values(DEPENDENCY_OF).map((d) => [d, true]));
  const setDependency = (dependency: string, up: boolean) => {
    dependencies.set(dependency, up);
    dependencyUp?.set({ dependency }, up ? 1 : 0);
  };
  let stopping = false;
  let lastProblem = '';
  let failed: ((err: CdcError | Restart) => void) | undefined;

  const cleanUp = async () => {
    const pending = cleanups.reverse();
    cleanups = [];
    for (const cleanup of pending) {
      try {
        await cleanup();
      } catch (err) {
        logger.warn({ err }, 'cleanup failed');
      }
    }
  };
  const exit = async (code: number) => {
    stopping = true;
    await cleanUp();
    await health?.close();
    loopLag.stop();
    process.exit(code);
  };
  process.once('SIGINT', () => void (logger.info({ signal: 'SIGINT' }, 'stopping'), exit(0)));
  process.once('SIGTERM', () => void (logger.info({ signal: 'SIGTERM' }, 'stopping'), exit(0)));

  const run: ServiceRun = {
    async serve(o) {
      registry = o.registry;
      ready = o.ready;
      live = o.live ?? (() => true);
      if (!dependencyUp || !o.registry.getSingleMetric('cityshare_dependency_up')) {
        // Each run has a registry of its own: the new gauge starts from what the runtime knows.
        dependencyUp = createDependencyGauge(o.registry);
        for (const [dependency, up] of dependencies) dependencyUp.set({ dependency }, up ? 1 : 0);
      }
      if (!health) loopLag.start();
      health ??= await startHealthServer({
        port: o.port,
        ...(o.host ? { host: o.host } : {}),
        registry: { metrics: () => registry!.metrics(), contentType: o.registry.contentType },
        ready: () => ready(),
        live: () => {
          const loop = loopLag.check();
          return loop === true ? live() : loop;
        },
      });
      return { port: health.port };
    },
    defer(cleanup) {
      cleanups.push(cleanup);
    },
    dependency(name, up) {
      setDependency(name, up);
    },
    fail(err) {
      failed?.(err);
    },
    restart(why) {
      failed?.(new Restart(why));
    },
  };

  let attempt = 0;
  for (;;) {
    const startedAt = Date.now();
    let started: Promise<unknown> = Promise.resolve();
    const fault = await new Promise<unknown>((resolve) => {
      failed = resolve;
      started = main(run).then(() => {
        if (lastProblem) logger.info({ attempts: attempt }, 'started again: the dependency is back');
        lastProblem = '';
        for (const dependency of dependencies.keys()) setDependency(dependency, true);
      }, resolve);
    });
    failed = undefined;
    if (stopping) return;
    if (fault instanceof Restart) {
      logger.info({ why: fault.why }, 'restarting');
      ready = () => 'restarting';
      // A start still under way finishes (or fails) first, so its cleanups are all there to run.
      await Promise.race([started.catch(() => undefined), new Promise((r) => setTimeout(r, 30_000))]);
      await cleanUp();
      continue;
    }
    // Anything uncoded is a bug (INTERNAL), logged with its stack.
    const err = asCdcError(fault);
    if (!err.retriable) {
      logger.fatal({ code: err.code, action: err.action, details: err.details, ...(isCdcError(fault) ? {} : { err: fault }) }, err.message);
      process.stderr.write(`\n${err.toString()}\n`);
      await exit(1);
      return;
    }
    // A run that stayed up a while starts the backoff afresh.
    if (Date.now() - startedAt > cap * 2) attempt = 0;
    const wait = Math.round(Math.min(cap, initial * 2 ** attempt) * (0.8 + Math.random() * 0.4));
    attempt++;
    // The state is the code: the driver's wording of one outage changes from try to try (lost, refused, timed out).
    const problem = err.code;
    if (problem !== lastProblem) logger.error({ code: err.code, action: err.action, details: err.details, retryInMs: wait }, `${err.message}; retrying with backoff`);
    else logger.debug({ code: err.code, attempt, retryInMs: wait }, 'still waiting');
    lastProblem = problem;
    const dependency = DEPENDENCY_OF[err.code];
    if (dependency) setDependency(dependency, false);
    ready = () => `waiting to start again (${err.code})`;
    live = () => true;
    await cleanUp();
    await new Promise((r) => setTimeout(r, wait));
    if (stopping) return;
  }
}

/** A CdcError as it is, anything else as INTERNAL (for `run.fail`). */
export function asCdcError(err: unknown): CdcError {
  return isCdcError(err) ? err : new CdcError('INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
}
