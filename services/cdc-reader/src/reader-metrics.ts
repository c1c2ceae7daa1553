import { Counter, Gauge, type Registry } from 'prom-client';
import { createForgedRecordsCounter } from '@cityshare/shared';

/** The reader's metrics; labels are bounded (source, table, op), never values or keys. */
export function createReaderMetrics(registry: Registry) {
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Gauge({ name, help, labelNames, registers: [registry] });
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Counter({ name, help, labelNames, registers: [registry] });
  return {
    events: counter('cityshare_reader_events_total', 'Change events read from the binlog and queued for Kafka', ['source', 'table', 'op'] as const),
    queueBytes: gauge('cityshare_reader_queue_bytes', 'Bytes of change events waiting for Kafka acknowledgement', ['source'] as const),
    paused: gauge('cityshare_reader_binlog_paused', '1 while the binlog stream is paused by backpressure', ['source'] as const),
    lagSeconds: gauge('cityshare_reader_lag_seconds', 'Seconds between the source commit and Kafka acknowledgement of the newest acknowledged transaction', ['source'] as const),
    lastEventSeconds: gauge('cityshare_reader_last_event_timestamp_seconds', 'When the reader last read a row change or a heartbeat from the source (now minus this = seconds since last event)', ['source'] as const),
    binlogFile: gauge('cityshare_reader_binlog_file_sequence', 'Sequence number of the binlog file of the newest acknowledged position', ['source'] as const),
    binlogPosition: gauge('cityshare_reader_binlog_position_bytes', 'Byte offset in that binlog file of the newest acknowledged position', ['source'] as const),
    lastCommitSeconds: gauge('cityshare_reader_last_commit_timestamp_seconds', 'Source commit time of the newest acknowledged transaction', ['source'] as const),
    dlq: counter('cityshare_reader_dlq_total', 'Change events sent to <prefix>.dlq.reader.<source> instead of a raw topic', ['source', 'table', 'reason'] as const),
    snapshotRows: counter('cityshare_reader_snapshot_rows_total', 'Rows read by snapshots', ['source', 'table'] as const),
    snapshotChunks: counter('cityshare_reader_snapshot_chunks_total', 'Snapshot chunks emitted', ['source', 'table'] as const),
    snapshotRemaining: gauge('cityshare_reader_snapshot_remaining_rows', 'Estimated rows left to snapshot (from table statistics)', ['source', 'table'] as const),
    snapshotRunning: gauge('cityshare_reader_snapshot_running', '1 while a snapshot of the table is being read, 0 once it is done', ['source', 'table'] as const),
    repairRows: counter('cityshare_reader_repair_rows_total', 'Rows a repair (`cdc repair`) delivered again to one department: read at the source (op r) or deleted there (op d)', ['source', 'table', 'op'] as const),
    snapshotEta: gauge('cityshare_reader_snapshot_eta_seconds', 'Estimated seconds until the running snapshot of a table is done, at its rate so far', ['source', 'table'] as const),
    retentionMargin: gauge('cityshare_reader_binlog_retention_margin_files', 'Binlog files retained on the source older than the one the checkpoint needs; 0 means it is next to be purged', ['source'] as const),
    otherBinlogReaders: gauge('cityshare_reader_other_binlog_readers', 'Binlog connections of the reader account other than this reader, seen when it started streaming: above 0, a second reader of the source without a lease (every change published twice) or one still shutting down', ['source'] as const),
    active: gauge('cityshare_reader_active', '1 while this instance is the active reader of the source, 0 while it is a standby', ['source'] as const),
    schemaChanges: counter('cityshare_reader_schema_changes_total', 'DDL statements read from the binlog: of registered tables (published and logged) or of other tables (only counted)', ['source', 'registered'] as const),
    heartbeats: counter('cityshare_reader_heartbeats_total', 'Heartbeat events from the source while the stream was idle at the binlog end', ['source'] as const),
    checkpoints: counter('cityshare_reader_checkpoints_total', 'Checkpoints written', ['source'] as const),
    forged: createForgedRecordsCounter(registry),
  };
}

export type ReaderMetrics = ReturnType<typeof createReaderMetrics>;
