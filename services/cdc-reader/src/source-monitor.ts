import type { Connection } from 'mysql2/promise';
import { CdcError, type BinlogPosition, type Logger } from '@cityshare/shared';
import { binlogFiles, type BinlogFiles } from './source-check.js';
import type { ReaderMetrics } from './reader-metrics.js';
import { pointOf } from './snapshot/watermark-window.js';

/** Refuses a checkpoint whose binlog file the source no longer has. */
export function assertNotPurged(checkpoint: BinlogPosition, binlogs: BinlogFiles): void {
  if (!binlogs.files.includes(checkpoint.file)) {
    throw new CdcError(
      'BINLOG_PURGED',
      `the checkpoint needs ${checkpoint.file}, but the oldest binlog on the source is ${binlogs.files[0] ?? '(none)'}; changes in between are lost to the binlog. Restart with READER_ON_PURGED=resnapshot to re-snapshot every table, and keep binlogs longer (expire_logs_days / binlog_expire_logs_seconds)`,
      { details: { needed: checkpoint.file, oldest: binlogs.files[0] } },
    );
  }
}

/**
 * Watches the source from a control connection: lag is zero when the acknowledged
 * position has reached the binlog end (an idle source is not "behind"), and the margin
 * between the checkpoint's binlog and the oldest retained one warns before a purge.
 */
export class SourceMonitor {
  private timer: NodeJS.Timeout | undefined;
  private warned = false;

  constructor(
    private readonly conn: Connection,
    private readonly source: string,
    private readonly acked: () => BinlogPosition | undefined,
    private readonly metrics: ReaderMetrics,
    private readonly logger: Logger,
  ) {}

  start(intervalMs = 2_000): void {
    this.timer = setInterval(() => void this.check(), intervalMs);
  }

  async check(): Promise<void> {
    const acked = this.acked();
    if (!acked) return;
    try {
      const binlogs = await binlogFiles(this.conn);
      const labels = { source: this.source };
      if (pointOf(acked) >= pointOf(binlogs.end)) this.metrics.lagSeconds.set(labels, 0);
      const margin = binlogs.files.indexOf(acked.file);
      this.metrics.retentionMargin.set(labels, margin);
      if (margin === 0 && binlogs.files.length > 1 && !this.warned) {
        this.warned = true;
        this.logger.warn({ needed: acked.file }, 'the checkpoint needs the oldest binlog on the source; it is next to be purged');
      } else if (margin > 0) {
        this.warned = false;
      }
    } catch (err) {
      this.logger.warn({ err }, 'source monitor query failed');
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
