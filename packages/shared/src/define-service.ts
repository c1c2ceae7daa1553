import type { Registry } from 'prom-client';
import type { z } from 'zod';
import type { CdcError } from './errors.js';
import { loadPipeline, type LoadedPipeline } from './config/load-pipeline.js';
import type { AnyTarget, PipelineTargets, TargetSettings } from './config/pipeline-targets.js';
import { loadServiceEnv, policySyncOf, type commonServiceEnv, type ServiceKind } from './config/service-env.js';
import { kafkaSecurityError } from './kafka/security.js';
import { createLogger, type Logger } from './logger.js';
import { runService, type RunServiceOptions, type ServiceRun } from './service-runner.js';

/** The settings every service reads (commonServiceEnv), as parsed. */
type CommonEnv = z.output<z.ZodObject<ReturnType<typeof commonServiceEnv>>>;

/** What a long-running component reports to the runtime; pass it to the component as is. */
export interface ComponentHooks {
  /** A fault after start: retriable ones restart the run after a backoff, others exit 1. */
  onFatal: (err: CdcError) => void;
  /** The brokers stopped answering (false) or answer again (true): `cityshare_dependency_up{dependency="kafka"}`. */
  onKafkaContact: (up: boolean) => void;
  /** Settings read only at start changed: the run starts again at once. */
  onRestart: (why: string) => void;
}

/** What a service's `setup` gets, once per run. */
export interface ServiceContext<Env> {
  env: Env;
  logger: Logger;
  run: ServiceRun;
  hooks: ComponentHooks;
  /**
   * This run's policy: fetched from the control plane (CITYSHARE_POLICY_URL) into the local
   * copy CITYSHARE_PIPELINE first when the environment says so, kept in step for the run,
   * then loaded and verified. Kafka errors at start are then reported against its `kafka`
   * settings (a refused principal or certificate named as such). Targets are checked as
   * `targets` knows them (the sink's registry); without it, only their kind.
   */
  loadPolicy<T extends TargetSettings = AnyTarget>(targets?: PipelineTargets<T>): Promise<LoadedPipeline<T>>;
}

/** What `setup` built for the run; the runtime serves its health and metrics, then starts it. */
export interface ServiceParts {
  metrics: Registry;
  /** true when the service does its work; otherwise why not (/readyz 503). */
  ready(): boolean | string;
  /** true while the process can go on; otherwise why only a restart helps (/healthz 503). */
  live?(): boolean | string;
  /** The work itself, started once health and metrics serve. */
  start?(): Promise<void>;
  /** Fields of the line logged once the service serves (e.g. the API's port). */
  serving?: () => Record<string, unknown>;
}

export interface ServiceSpec<S extends z.ZodType<CommonEnv>> extends RunServiceOptions {
  name: ServiceKind;
  env: S;
  /** Builds the run's parts; what it opens it hands to `run.defer` to close. */
  setup(ctx: ServiceContext<z.output<S>>): Promise<ServiceParts>;
}

/**
 * A service's whole boot, the same for every service: environment (zod, every problem listed),
 * log level, policy (over the network when asked), health and metrics on the service's port,
 * start, and stop on a signal — kept running by `runService` through the outages a restart
 * rides out. A service's main.ts is one `defineService` call that wires its parts.
 */
export function defineService<S extends z.ZodType<CommonEnv>>(spec: ServiceSpec<S>): Promise<void> {
  const logger = createLogger(spec.name);
  return runService(logger, async (run) => {
    const env = loadServiceEnv(spec.env);
    logger.level = env.LOG_LEVEL;
    let kafkaSettings: LoadedPipeline['config']['kafka'] | undefined;
    const parts = await spec.setup({
      env,
      logger,
      run,
      hooks: {
        onFatal: (err) => run.fail(err),
        onKafkaContact: (up) => run.dependency('kafka', up),
        onRestart: (why) => run.restart(why),
      },
      async loadPolicy<T extends TargetSettings = AnyTarget>(targets?: PipelineTargets<T>) {
        const policySync = policySyncOf(env, logger, (up) => run.dependency('control', up));
        await policySync?.start();
        run.defer(() => policySync?.stop());
        const loaded = targets ? loadPipeline(env.CITYSHARE_PIPELINE, process.env, targets) : (loadPipeline(env.CITYSHARE_PIPELINE) as LoadedPipeline<T>);
        kafkaSettings = loaded.config.kafka;
        return loaded;
      },
    });
    const health = await run.serve({ port: env.METRICS_PORT, host: env.METRICS_HOST, registry: parts.metrics, ready: () => parts.ready(), ...(parts.live ? { live: () => parts.live!() } : {}) });
    logger.info({ port: health.port }, 'health and metrics listening');
    await parts.start?.().catch((err: unknown) => {
      throw kafkaSettings ? kafkaSecurityError(err, kafkaSettings) : err;
    });
    if (parts.serving) logger.info(parts.serving(), 'serving');
  }, spec);
}
