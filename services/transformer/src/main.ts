import {
  FileKeyring,
  createKafka,
  createLogger,
  createMetricsRegistry,
  createSchemaRegistry,
  kafkaSecurityError,
  registryEndpoint,
  loadPipeline,
  loadServiceEnv,
  policySyncOf,
  runService,
} from '@cityshare/shared';
import { transformerEnv } from './config.js';
import { Transformer } from './transformer.js';
import { createTransformerMetrics } from './transformer-metrics.js';

const logger = createLogger('transformer');

await runService(logger, async (run) => {
  const env = loadServiceEnv(transformerEnv);
  logger.level = env.LOG_LEVEL;
  // On a host without the control plane's files, the policy comes over the network into CITYSHARE_PIPELINE.
  const policySync = policySyncOf(env, logger, (up) => run.dependency('control', up));
  await policySync?.start();
  run.defer(() => policySync?.stop());
  const loaded = loadPipeline(env.CITYSHARE_PIPELINE);
  const { config, keyringPath } = loaded;
  const registry = createMetricsRegistry('transformer');
  const endpoint = registryEndpoint(config.schemaRegistry);
  const transformer = new Transformer({
    config,
    watch: loaded,
    env,
    keys: FileKeyring.loadFor(keyringPath, 'transformer', logger),
    kafka: createKafka(config.kafka, 'cityshare-transformer', logger),
    registry: createSchemaRegistry(endpoint),
    registryEndpoint: endpoint,
    logger,
    metrics: createTransformerMetrics(registry),
    onFatal: (err) => run.fail(err),
    onKafkaContact: (up) => run.dependency('kafka', up),
    onRestart: (why) => run.restart(why),
  });
  run.defer(() => transformer.stop());
  const health = await run.serve({ port: env.METRICS_PORT, host: env.METRICS_HOST, registry, ready: () => transformer.ready(), live: () => transformer.alive || 'a department stream\'s Kafka consumer stopped' });
  logger.info({ port: health.port }, 'health and metrics listening');
  await transformer.start().catch((err: unknown) => {
    throw kafkaSecurityError(err, config.kafka);
  });
});
