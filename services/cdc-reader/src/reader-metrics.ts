import { Counter, Gauge, type Registry } from 'prom-client';

/** The reader's metrics; labels are bounded (source, table, op), never values or keys. */
export function createReaderMetrics(registry: Registry) {
  return {
    events: new Counter({
      name: 'cityshare_reader_events_total',
      help: 'Change events read from the binlog and queued for Kafka',
      labelNames: ['source', 'table', 'op'] as const,
      registers: [registry],
    }),
    queueBytes: new Gauge({
      name: 'cityshare_reader_queue_bytes',
      help: 'Bytes of change events waiting for Kafka acknowledgement',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    paused: new Gauge({
      name: 'cityshare_reader_binlog_paused',
      help: '1 while the binlog stream is paused by backpressure',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    lagSeconds: new Gauge({
      name: 'cityshare_reader_lag_seconds',
      help: 'Seconds between the source commit and Kafka acknowledgement of the newest acknowledged transaction',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    lastCommitSeconds: new Gauge({
      name: 'cityshare_reader_last_commit_timestamp_seconds',
      help: 'Source commit time of the newest acknowledged transaction',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    snapshotRows: new Counter({
      name: 'cityshare_reader_snapshot_rows_total',
      help: 'Rows read by snapshots',
      labelNames: ['source', 'table'] as const,
      registers: [registry],
    }),
    snapshotChunks: new Counter({
      name: 'cityshare_reader_snapshot_chunks_total',
      help: 'Snapshot chunks emitted',
      labelNames: ['source', 'table'] as const,
      registers: [registry],
    }),
    snapshotRemaining: new Gauge({
      name: 'cityshare_reader_snapshot_remaining_rows',
      help: 'Estimated rows left to snapshot (from table statistics)',
      labelNames: ['source', 'table'] as const,
      registers: [registry],
    }),
    retentionMargin: new Gauge({
      name: 'cityshare_reader_binlog_retention_margin_files',
      help: 'Binlog files retained on the source older than the one the checkpoint needs; 0 means it is next to be purged',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    active: new Gauge({
      name: 'cityshare_reader_active',
      help: '1 while this instance is the active reader of the source, 0 while it is a standby',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    checkpoints: new Counter({
      name: 'cityshare_reader_checkpoints_total',
      help: 'Checkpoints written',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
  };
}

export type ReaderMetrics = ReturnType<typeof createReaderMetrics>;
