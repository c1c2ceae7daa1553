import { FileKeyring, createKafka, createMetricsRegistry, defineService, namedOrOnly, registryEndpoint } from '@cityshare/shared';
import { sinkEnv } from './config.js';
import { createTarget, definitionOf, pipelineTargets } from './targets/registry.js';
import { ShareConsumer } from './share-consumer.js';
import { createSinkMetrics } from './sink-metrics.js';

// Outlives the runs the runtime restarts while the target is away: the outage is logged once.
const outage = { down: false };

/** A sink delivers one department's share topics to its target. */
await defineService({
  name: 'sink',
  env: sinkEnv,
  async setup({ env, logger, run, hooks, loadPolicy }) {
    // Targets checked in full, as the registry declares them (the reader and transformer only need their kind).
    const loaded = await loadPolicy(pipelineTargets);
    const { config, keyringPath } = loaded;
    const department = namedOrOnly(config.departments, env.SINK_DEPARTMENT, 'department', 'SINK_DEPARTMENT');
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
    const consumer = new ShareConsumer({
      config,
      watch: loaded,
      department,
      kafka: createKafka(config.kafka, `cityshare-sink-${department.name}`, logger),
      registryEndpoint: registryEndpoint(config.schemaRegistry),
      sink,
      keys,
      logger: log,
      metrics,
      partitionsConcurrently: env.SINK_PARTITIONS_CONCURRENTLY,
      ...hooks,
    });
    run.defer(() => consumer.stop());
    return { metrics: registry, ready: () => consumer.ready(), live: () => consumer.alive || 'its Kafka consumer stopped', start: () => consumer.start() };
  },
});
