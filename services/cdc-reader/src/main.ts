import { FileKeyring, createKafka, createMetricsRegistry, defineService, namedOrOnly } from '@cityshare/shared';
import { readerEnv } from './config.js';
import { LeaderLease } from './leader-lease.js';
import { Reader } from './reader.js';
import { createReaderMetrics } from './reader-metrics.js';

/** The reader captures one source's binlog into its raw topics; a standby waits for the lease. */
await defineService({
  name: 'cdc-reader',
  env: readerEnv,
  async setup({ env, logger, run, hooks, loadPolicy }) {
    const loaded = await loadPolicy();
    const { config, keyringPath } = loaded;
    const source = namedOrOnly(config.sources, env.READER_SOURCE, 'source', 'READER_SOURCE');
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
      ...hooks,
    });
    // Cleanups run in reverse: the reader stops (drains, last checkpoint) before the lease is let go.
    let lease: LeaderLease | undefined;
    run.defer(() => lease?.release());
    run.defer(() => reader.stop());
    metrics.active.set({ source: source.name }, 0);
    const start = async () => {
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
      await reader.start();
      log.info('streaming');
    };
    return { metrics: registry, ready: () => reader.ready(), start };
  },
});
