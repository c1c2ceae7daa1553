import {
  CdcError,
  FileKeyring,
  createKafka,
  createLogger,
  createMetricsRegistry,
  kafkaSecurityError,
  loadPipeline,
  loadServiceEnv,
  policySyncOf,
  runService,
} from '@cityshare/shared';
import { readerEnv } from './config.js';
import { LeaderLease } from './leader-lease.js';
import { Reader } from './reader.js';
import { createReaderMetrics } from './reader-metrics.js';

const logger = createLogger('cdc-reader');

await runService(logger, async (run) => {
  const env = loadServiceEnv(readerEnv);
  logger.level = env.LOG_LEVEL;
  // On a host without the control plane's files, the policy comes over the network into CITYSHARE_PIPELINE.
  const policySync = policySyncOf(env, logger, (up) => run.dependency('control', up));
  await policySync?.start();
  run.defer(() => policySync?.stop());
  const loaded = loadPipeline(env.CITYSHARE_PIPELINE);
  const { config, keyringPath } = loaded;
  const source = env.READER_SOURCE ? config.sources.find((s) => s.name === env.READER_SOURCE) : config.sources.length === 1 ? config.sources[0] : undefined;
  if (!source) {
    throw new CdcError('CONFIG_INVALID', env.READER_SOURCE ? `no source named ${env.READER_SOURCE} in the pipeline file` : 'the pipeline file has several sources: set READER_SOURCE');
  }
  const log = logger.child({ source: source.name });
  const registry = createMetricsRegistry('cdc-reader');
  const metrics = createReaderMetrics(registry);
  const reader = new Reader({
    config,
    watch: loaded,
    source,
    env,
    keys: FileKeyring.loadFor(keyringPath, 'cdc-reader', log),
    kafka: createKafka(config.kafka, `cityshare-reader-${source.name}`, logger),
    logger: log,
    metrics,
    onFatal: (err) => run.fail(err),
    onKafkaContact: (up) => run.dependency('kafka', up),
    onRestart: (why) => run.restart(why),
  });
  // Cleanups run in reverse: the reader stops (drains, last checkpoint) before the lease is let go.
  let lease: LeaderLease | undefined;
  run.defer(() => lease?.release());
  run.defer(() => reader.stop());
  const health = await run.serve({ port: env.METRICS_PORT, host: env.METRICS_HOST, registry, ready: () => reader.ready() });
  log.info({ port: health.port }, 'health and metrics listening');

  metrics.active.set({ source: source.name }, 0);
  if (env.READER_LEASE_REDIS_URL) {
    lease = new LeaderLease(env.READER_LEASE_REDIS_URL, `cityshare:${config.kafka.topicPrefix}:reader:${source.name}:lease`, env.READER_LEASE_TTL_MS, log);
    log.info('standby: waiting for the lease');
    await lease.acquire();
    lease.keep((reason) => {
      // Another instance may be active now: stop reading at once, without a last checkpoint.
      log.fatal({ reason }, 'lease lost: stopping');
      process.exit(1);
    });
  }
  metrics.active.set({ source: source.name }, 1);
  // A refused principal or certificate is reported as such, naming who and what.
  await reader.start().catch((err: unknown) => {
    throw kafkaSecurityError(err, config.kafka);
  });
  log.info('streaming');
});
