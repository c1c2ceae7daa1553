import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { STAGE_WAIT_BUCKETS, createForgedRecordsCounter } from '@cityshare/shared';

export function createTransformerMetrics(registry: Registry) {
  return {
    recordsIn: new Counter({ name: 'cityshare_transformer_records_in_total', help: 'Raw change events consumed, per department stream', labelNames: ['table', 'department'] as const, registers: [registry] }),
    recordsOut: new Counter({ name: 'cityshare_transformer_records_out_total', help: 'Share records produced', labelNames: ['department', 'table'] as const, registers: [registry] }),
    frameReads: new Counter({ name: 'cityshare_transformer_frame_reads_total', help: 'Raw messages department streams consumed: read here (decoded, authenticated, opened) or shared (read already for another department)', labelNames: ['outcome'] as const, registers: [registry] }),
    dlq: new Counter({ name: 'cityshare_transformer_dlq_total', help: 'Records sent to the dead-letter topic', labelNames: ['reason', 'department'] as const, registers: [registry] }),
    commits: new Counter({ name: 'cityshare_transformer_transactions_total', help: 'Kafka transactions by outcome', labelNames: ['outcome'] as const, registers: [registry] }),
    batchWait: new Histogram({
      name: 'cityshare_transformer_batch_wait_seconds',
      help: 'How long the oldest raw message of a batch waited between the reader producing it and its department stream starting on it (Kafka record timestamps: the reader\'s clock)',
      labelNames: ['department'] as const,
      buckets: STAGE_WAIT_BUCKETS,
      registers: [registry],
    }),
    transactionSeconds: new Histogram({
      name: 'cityshare_transformer_transaction_seconds',
      help: "Time a department stream waits on one batch's Kafka transaction (share records, offsets, commit); its sum against the wall clock is the share of time the stream waits on the brokers",
      labelNames: ['department'] as const,
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    policyReloads: new Counter({ name: 'cityshare_transformer_policy_reloads_total', help: 'Pipeline file or keyring changes: applied, or rejected (invalid; the running policy stays)', labelNames: ['outcome'] as const, registers: [registry] }),
    policyLoaded: new Gauge({ name: 'cityshare_transformer_policy_loaded_timestamp_seconds', help: 'When the grants and keys in force were loaded', registers: [registry] }),
    pausedTables: new Gauge({ name: 'cityshare_transformer_paused_tables', help: '1 while a table is paused because a department contract was refused as incompatible', labelNames: ['table', 'department'] as const, registers: [registry] }),
    lag: new Gauge({ name: 'cityshare_transformer_consumer_lag_messages', help: 'Raw-topic messages (frames) a department stream has not transformed yet, per partition, after its last batch', labelNames: ['department', 'topic', 'partition'] as const, registers: [registry] }),
    forged: createForgedRecordsCounter(registry),
    registrations: new Counter({ name: 'cityshare_transformer_schema_registrations_total', help: 'Schemas registered or confirmed', registers: [registry] }),
    reregistrations: new Counter({ name: 'cityshare_transformer_schema_reregistrations_total', help: 'Contracts the registry had lost (unknown id, or another schema under it), registered again', labelNames: ['topic'] as const, registers: [registry] }),
  };
}

export type TransformerMetrics = ReturnType<typeof createTransformerMetrics>;
