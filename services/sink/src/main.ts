import {
  CdcError,
  FileKeyring,
  createKafka,
  createLogger,
  createMetricsRegistry,
  kafkaSecurityError,
  registryEndpoint,
  loadPipeline,
  loadServiceEnv,
  policySyncOf,
  runService,
} from '@cityshare/shared';
import { sinkEnv } from './config.js';
import { createTarget, definitionOf, pipelineTargets } from './targets/registry.js';
import { ShareConsumer } from './share-consumer.js';
import { createSinkMetrics } from './sink-metrics.js';

const logger = createLogger('sink');
// Outlives the runs the runtime restarts while the target is away: the outage is logged once.
const outage = { down: false };

await runService(logger, async (run) => {
  const env = loadServiceEnv(sinkEnv);
  logger.level = env.LOG_LEVEL;
  // On a host without the control plane's files, the policy comes over the network into CITYSHARE_PIPELINE.
  const policySync = policySyncOf(env, logger, (up) => run.dependency('control', up));
  await policySync?.start();
  run.defer(() => policySync?.stop());
  const loaded = loadPipeline(env.CITYSHARE_PIPELINE, process.env, pipelineTargets);
  const { config, keyringPath } = loaded;
  const department = env.SINK_DEPARTMENT
    ? config.departments.find((d) => d.name === env.SINK_DEPARTMENT)
    : config.departments.length === 1 ? config.departments[0] : undefined;
  if (!department) {
    throw new CdcError('CONFIG_INVALID', env.SINK_DEPARTMENT ? `no department named ${env.SINK_DEPARTMENT} in the pipeline file` : 'the pipeline file has several departments: set SINK_DEPARTMENT');
  }
  const log = logger.child({ department: department.name });
  const registry = createMetricsRegistry('sink', { department: department.name });
  const metrics = createSinkMetrics(registry);
  // Delivery records for the audit ledger are signed with the deliveries key (record-mac.ts); a
  // target that signs what it sends (webhooks, export pushes) needs its department's webhook key too.
  const targetSigns = definitionOf(department.target).capabilities.signs(department.target);
  const keys = FileKeyring.loadFor(keyringPath, 'sink', log, department.name, { targetSigns });
  const sink = createTarget(department, { prefix: config.kafka.topicPrefix, keys, logger: log, metrics, outage });
  run.defer(() => sink.close());
  await sink.connect();
  const endpoint = registryEndpoint(config.schemaRegistry);
  const consumer = new ShareConsumer({
    config,
    watch: loaded,
    department,
    kafka: createKafka(config.kafka, `cityshare-sink-${department.name}`, logger),
    registryEndpoint: endpoint,
    sink,
    keys,
    logger: log,
    metrics,
    onFatal: (err) => run.fail(err),
    onKafkaContact: (up) => run.dependency('kafka', up),
  });
  run.defer(() => consumer.stop());
  const health = await run.serve({ port: env.METRICS_PORT, host: env.METRICS_HOST, registry, ready: () => consumer.ready(), live: () => consumer.alive || 'its Kafka consumer stopped' });
  log.info({ port: health.port }, 'health and metrics listening');
  await consumer.start().catch((err: unknown) => {
    throw kafkaSecurityError(err, config.kafka);
  });
});
