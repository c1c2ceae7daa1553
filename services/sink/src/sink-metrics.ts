import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { STAGE_WAIT_BUCKETS } from '@cityshare/shared';

export function createSinkMetrics(registry: Registry) {
  return {
    applied: new Counter({ name: 'cityshare_sink_rows_applied_total', help: 'Row changes written to the target', labelNames: ['department', 'target'] as const, registers: [registry] }),
    stale: new Counter({ name: 'cityshare_sink_version_guard_skips_total', help: 'Row changes skipped because the target already held a newer or equal version', labelNames: ['department', 'target'] as const, registers: [registry] }),
    retries: new Counter({ name: 'cityshare_sink_retries_total', help: 'Deliveries tried again after the target failed (webhook)', labelNames: ['department', 'target'] as const, registers: [registry] }),
    lag: new Gauge({ name: 'cityshare_sink_consumer_lag_messages', help: 'Share-topic messages not yet delivered, per partition, after the last batch', labelNames: ['department', 'topic', 'partition'] as const, registers: [registry] }),
    exported: new Counter({ name: 'cityshare_sink_exported_rows_total', help: 'Rows written to scheduled export files', labelNames: ['department', 'target'] as const, registers: [registry] }),
    webhookPurged: new Counter({ name: 'cityshare_sink_webhook_purged_total', help: 'Webhook batches of a grant no longer in force: removed from Redis (waiting, delayed, retrying, dead-lettered) or never queued', labelNames: ['department', 'target'] as const, registers: [registry] }),
    dlq: new Counter({ name: 'cityshare_sink_dlq_total', help: 'Row changes the target refused, sent to the department dead-letter topic', labelNames: ['department', 'target'] as const, registers: [registry] }),
    schemaUnknown: new Counter({ name: 'cityshare_sink_schema_unknown_total', help: 'Times a share partition was paused because its next record names a writer schema the registry does not know (SCHEMA_UNKNOWN)', labelNames: ['department', 'topic'] as const, registers: [registry] }),
    partitionsPaused: new Gauge({ name: 'cityshare_sink_partitions_paused', help: 'Share partitions paused now, waiting for the writer schema of their next record to be back in the registry', labelNames: ['department'] as const, registers: [registry] }),
    batchWait: new Histogram({
      name: 'cityshare_sink_batch_wait_seconds',
      help: 'How long the oldest share record of a batch waited between the transformer producing it and the sink starting to deliver it: its transaction\'s commit, then the fetch (Kafka record timestamps: the transformer\'s clock)',
      labelNames: ['department', 'target'] as const,
      buckets: STAGE_WAIT_BUCKETS,
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'cityshare_sink_end_to_end_latency_seconds',
      help: 'Source commit to target confirmation',
      labelNames: ['department', 'target'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers: [registry],
    }),
  };
}

export type SinkMetrics = ReturnType<typeof createSinkMetrics>;
