import { FileKeyring, createKafka, createMetricsRegistry, createSchemaRegistry, defineService, registryEndpoint } from '@cityshare/shared';
import { transformerEnv } from './config.js';
import { Transformer } from './transformer.js';
import { createTransformerMetrics } from './transformer-metrics.js';

/** The transformer applies each department's grants to the raw topics and writes its share topics. */
await defineService({
  name: 'transformer',
  env: transformerEnv,
  async setup({ env, logger, run, hooks, loadPolicy }) {
    const loaded = await loadPolicy();
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
      ...hooks,
    });
    run.defer(() => transformer.stop());
    return { metrics: registry, ready: () => transformer.ready(), live: () => transformer.alive || "a department stream's Kafka consumer stopped", start: () => transformer.start() };
  },
});
