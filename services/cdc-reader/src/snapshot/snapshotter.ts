import type { Connection } from 'mysql2/promise';
import { CdcError, type BinlogPosition, type Logger, type TableSchema } from '@cityshare/shared';
import { binlogEnd } from '../source-check.js';
import { canonicalKey } from '../event-builder.js';
import type { RowsChange } from '../binlog-listener.js';
import type { ReaderMetrics } from '../reader-metrics.js';
import type { TableCatalog } from '../table-catalog.js';
import { ChunkReader } from './chunk-reader.js';
import { WatermarkWindow, pointOf, type WindowHost } from './watermark-window.js';

export interface SnapshotTableState {
  /** Primary key of the last row emitted, in key-column order; null before the first chunk. */
  lastKey: unknown[] | null;
  done: boolean;
  rows: number;
}

/** Snapshot progress per `db.table`; stored in the reader's checkpoint. */
export type SnapshotState = Record<string, SnapshotTableState>;

export type RawRow = Record<string, unknown>;

/**
 * Lock-free, chunked, resumable snapshot of the registered tables while streaming
 * continues (see watermark-window.ts). Memory holds one chunk; progress survives a
 * crash through the checkpoint.
 */
export class Snapshotter {
  private stopped = false;

  constructor(
    private readonly conn: Connection,
    private readonly catalog: TableCatalog,
    private readonly state: SnapshotState,
    private readonly host: WindowHost,
    private readonly options: { chunkSize: number; source: string },
    private readonly logger: Logger,
    private readonly metrics: ReaderMetrics,
  ) {}

  /** Tables still to snapshot, in registration order. */
  pending(): string[] {
    return this.catalog.names().filter((t) => !this.state[t]?.done);
  }

  stop(): void {
    this.stopped = true;
  }

  /** Snapshots a registered table again from its first key (ad-hoc re-snapshot). */
  request(table: string): void {
    if (!this.catalog.names().includes(table)) throw new CdcError('TABLE_NOT_FOUND', `table ${table} is not registered with this source: register it before asking for its snapshot`);
    this.state[table] = { lastKey: null, done: false, rows: 0 };
  }

  /** Runs until no table is pending; tables requested meanwhile are picked up. */
  async run(): Promise<void> {
    while (!this.stopped && this.pending().length > 0) await this.runPending();
  }

  private async runPending(): Promise<void> {
    const reader = new ChunkReader(this.conn);
    for (const table of this.pending()) {
      if (this.stopped) return;
      const [db, name] = table.split('.') as [string, string];
      let schema = this.catalog.get(db, name)!;
      const entry = (this.state[table] ??= { lastKey: null, done: false, rows: 0 });
      if (schema.primaryKey.length === 0) {
        // Chunks need a key to reconcile with the stream; a keyless (append-only) table starts at the stream.
        this.logger.warn({ table }, 'append-only table without a key is not snapshotted; its delivery starts at the stream position');
        entry.done = true;
        continue;
      }
      const estimate = await reader.estimateRows(schema);
      const started = Date.now();
      const startRows = entry.rows;
      const labels = { source: this.options.source, table };
      this.logger.info({ table, estimatedRows: estimate, resumeAfterRows: entry.rows }, 'snapshot of table started');
      this.metrics.snapshotRunning.set(labels, 1);
      while (!entry.done && !this.stopped) {
        await this.host.waitForRoom();
        // The table may have changed since the last chunk (DDL while snapshotting): read
        // it with its columns of now; a DDL racing the SELECT makes it fail and retry.
        const problem = await this.catalog.reload(this.conn, this.options.source, db, name);
        if (problem?.code === 'TABLE_NOT_FOUND') {
          this.logger.warn({ table }, 'table dropped during its snapshot; its binlog events say the rest');
          entry.done = true;
          break;
        }
        if (problem) throw problem;
        schema = this.catalog.get(db, name)!;
        const low = await binlogEnd(this.conn);
        const window = new WatermarkWindow<RawRow>(table, pointOf(low));
        this.host.openWindow(window, chunkChange(schema));
        let rows: RawRow[];
        try {
          rows = await reader.readChunk(schema, entry.lastKey, this.options.chunkSize);
        } catch (err) {
          this.host.abandon(window);
          if (schemaMoved(err)) continue;
          throw err;
        }
        const high: BinlogPosition = await binlogEnd(this.conn);
        window.close(high, rows.map((row) => ({ key: canonicalKey(schema, row), row })));
        const last = rows[rows.length - 1];
        if (last) entry.lastKey = schema.primaryKey.map((k) => last[k]);
        entry.rows += rows.length;
        entry.done = rows.length < this.options.chunkSize;
        await this.host.emitted(window, structuredClone(this.state));
        this.metrics.snapshotRows.inc(labels, rows.length);
        this.metrics.snapshotChunks.inc(labels);
        const rate = (entry.rows - startRows) / Math.max(0.001, (Date.now() - started) / 1000);
        const remaining = Math.max(0, estimate - entry.rows);
        this.metrics.snapshotRemaining.set(labels, entry.done ? 0 : remaining);
        this.metrics.snapshotEta.set(labels, entry.done ? 0 : Math.round(remaining / Math.max(rate, 1)));
        this.logger.debug({ table, rows: entry.rows, estimatedRows: estimate, rowsPerSecond: Math.round(rate), etaSeconds: Math.round(remaining / Math.max(rate, 1)) }, 'snapshot progress');
      }
      if (entry.done) this.metrics.snapshotRunning.set(labels, 0);
      if (entry.done && !this.stopped) {
        this.logger.info({ table, rows: entry.rows, seconds: (Date.now() - started) / 1000 }, 'snapshot of table done');
      }
    }
  }
}

/** A snapshot chunk's rows, read at H, as the change queued there. */
function chunkChange(schema: TableSchema): (rows: RawRow[], high: BinlogPosition) => RowsChange | null {
  return (rows, high) => rows.length === 0 ? null : {
    kind: 'snapshot',
    schema,
    rows: rows.map((after) => ({ before: null, after })),
    file: high.file,
    eventPos: high.pos,
    gtid: null,
    tsMs: Date.now(),
    txOffset: 0,
  };
}

/** ER_BAD_FIELD_ERROR, ER_NO_SUCH_TABLE: the table's schema moved under the read; read it again with its columns of now. */
export function schemaMoved(err: unknown): boolean {
  const errno = (err as { errno?: number }).errno;
  return errno === 1054 || errno === 1146;
}
