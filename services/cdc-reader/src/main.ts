import {
  CdcError,
  FileKeyring,
  createKafka,
  createLogger,
  createMetricsRegistry,
  loadPipeline,
  loadServiceEnv,
  runService,
  startHealthServer,
} from '@cityshare/shared';
import { readerEnv } from './config.js';
import { Reader } from './reader.js';
import { createReaderMetrics } from './reader-metrics.js';

const logger = createLogger('cdc-reader');

await runService(logger, async () => {
  const env = loadServiceEnv(readerEnv);
  logger.level = env.LOG_LEVEL;
  const { config, keyringPath } = loadPipeline(env.CITYSHARE_PIPELINE);
  const source = env.READER_SOURCE ? config.sources.find((s) => s.name === env.READER_SOURCE) : config.sources.length === 1 ? config.sources[0] : undefined;
  if (!source) {
    throw new CdcError('CONFIG_INVALID', env.READER_SOURCE ? `no source named ${env.READER_SOURCE} in the pipeline file` : 'the pipeline file has several sources: set READER_SOURCE');
  }
  const registry = createMetricsRegistry('cdc-reader');
  const reader = new Reader({
    config,
    source,
    env,
    keys: FileKeyring.load(keyringPath),
    kafka: createKafka(config.kafka, `cityshare-reader-${source.name}`, logger),
    logger: logger.child({ source: source.name }),
    metrics: createReaderMetrics(registry),
    onFatal: (err) => {
      logger.fatal({ code: err.code, action: err.action }, err.message);
      process.exitCode = 1;
      void reader.stop().finally(() => process.exit(1));
    },
  });
  const health = await startHealthServer({ port: env.METRICS_PORT, registry, ready: () => reader.ready });
  logger.info({ port: health.port }, 'health and metrics listening');
  await reader.start();
  logger.info('streaming');
  return async () => {
    await reader.stop();
    await health.close();
  };
});
