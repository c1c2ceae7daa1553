import type { Connection } from 'mysql2/promise';
import { CdcError, type BinlogPosition, type Logger, type TableSchema } from '@cityshare/shared';
import type { RowsChange } from '../binlog-listener.js';
import { canonicalKey } from '../event-builder.js';
import type { ReaderMetrics } from '../reader-metrics.js';
import type { TableCatalog } from '../table-catalog.js';
import { Snapshotter, type RawRow, type SnapshotState } from './snapshotter.js';
import { pointOf, type WatermarkWindow } from './watermark-window.js';

/** What the coordinator needs of the stream it interleaves chunks with. */
export interface SnapshotStream {
  /** The resume point after the last transaction the stream has fully processed; undefined before it has one. */
  position(): BinlogPosition | undefined;
  /**
   * Queues a chunk in stream order: its rows as snapshot events (none when the stream
   * changed every key of it), then a boundary at `at` that makes `state` durable once
   * everything before it is acknowledged.
   */
  emitChunk(rows: RowsChange | null, at: BinlogPosition, state: SnapshotState): void;
  /** Resolves once the stream's queue has room for another chunk. */
  waitForRoom(): Promise<void>;
}

export interface SnapshotCoordinatorDeps {
  /** The reader's query connection to the source (time zone UTC): chunks are read on it. */
  conn: Connection;
  catalog: TableCatalog;
  /** Snapshot progress from the checkpoint. */
  state: SnapshotState;
  stream: SnapshotStream;
  options: { chunkSize: number; source: string };
  logger: Logger;
  metrics: ReaderMetrics;
  /** A snapshot failed: the reader cannot go on. */
  onFatal: (err: CdcError) => void;
}

interface OpenWindow {
  window: WatermarkWindow<RawRow>;
  schema: TableSchema;
  state?: SnapshotState;
  /** Set once the chunk is read: resolves the snapshotter's wait when the chunk is queued. */
  emitted?: () => void;
}

/**
 * Runs snapshots alongside streaming (Debezium's snapshot/streaming coordination, DBLog's
 * watermarks): the snapshotter reads a chunk between two watermarks while the stream goes
 * on; every row change the stream passes is shown to the open window first, so keys the
 * stream changed are dropped from the chunk; once the stream has passed the high
 * watermark, the chunk is queued, ahead of the next change, with the snapshot progress it
 * completes. Re-snapshot requests (signals) queue tables for the next run.
 */
export class SnapshotCoordinator {
  private readonly snapshotter: Snapshotter;
  private open: OpenWindow | undefined;
  private running: Promise<void> | undefined;
  private tick: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly deps: SnapshotCoordinatorDeps) {
    this.snapshotter = new Snapshotter(
      deps.conn,
      deps.catalog,
      structuredClone(deps.state),
      {
        openWindow: (window, schema) => {
          this.open = { window, schema };
        },
        emitted: (window, state) =>
          new Promise<void>((resolve) => {
            // An invariant, not an input: the snapshotter emits only the window it opened last.
            if (this.open?.window !== window) throw new Error('snapshot window mismatch');
            this.open.state = state;
            this.open.emitted = resolve;
            this.passedStreamPosition();
          }),
        waitForRoom: () => deps.stream.waitForRoom(),
      },
      deps.options,
      deps.logger,
      deps.metrics,
    );
  }

  /** Snapshots the tables still pending. */
  start(): void {
    // An idle source sends no events; the stream's own resume point tells when it passed H.
    this.tick = setInterval(() => this.passedStreamPosition(), 100);
    this.run();
  }

  /**
   * The stream is about to publish `change`: its keys are dropped from the open chunk, and
   * a change past H lets the chunk go first, so it precedes the change in every partition.
   */
  beforeRows(change: RowsChange): void {
    const open = this.open;
    if (!open) return;
    const point = pointOf({ file: change.file, pos: change.eventPos });
    const keys = change.rows.flatMap((r) => [r.before, r.after].filter((x) => x !== null).map((img) => canonicalKey(change.schema, img)));
    open.window.observe(`${change.schema.db}.${change.schema.table}`, point, keys);
    this.emitIfReached(point);
  }

  /** The stream has processed everything up to `position` (a commit, a heartbeat). */
  reached(position: BinlogPosition): void {
    this.emitIfReached(pointOf(position));
  }

  /** Snapshots registered tables again from their first key (a signal); tables not registered are refused. */
  request(tables: string[]): void {
    for (const table of tables) {
      try {
        this.snapshotter.request(table);
        this.deps.logger.info({ table }, 're-snapshot requested');
      } catch (err) {
        this.deps.logger.warn({ table, err: (err as Error).message }, 're-snapshot refused');
      }
    }
    this.run();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.tick);
    this.snapshotter.stop();
  }

  private passedStreamPosition(): void {
    const at = this.deps.stream.position();
    if (at) this.reached(at);
  }

  /** Queues the open chunk once the stream has reached its high watermark. */
  private emitIfReached(streamPoint: string): void {
    const open = this.open;
    if (!open?.emitted || !open.window.reachedBy(streamPoint)) return;
    this.open = undefined;
    const rows = open.window.reconcile();
    const high = open.window.highPosition!;
    const change: RowsChange | null = rows.length === 0 ? null : {
      kind: 'snapshot',
      schema: open.schema,
      rows: rows.map((after) => ({ before: null, after })),
      file: high.file,
      eventPos: high.pos,
      gtid: null,
      tsMs: Date.now(),
      txOffset: 0,
    };
    this.deps.stream.emitChunk(change, this.deps.stream.position()!, open.state!);
    open.emitted();
  }

  private run(): void {
    // Once stopped, a table left pending waits for the next start (running it again would return at once, forever).
    if (this.stopped || this.running || this.snapshotter.pending().length === 0) return;
    this.running = this.snapshotter.run().then(
      () => {
        this.running = undefined;
        if (!this.stopped) this.deps.logger.info('snapshot complete');
        this.run();
      },
      (err: Error) => this.deps.onFatal(err instanceof CdcError ? err : new CdcError('SOURCE_UNREACHABLE', `snapshot failed: ${err.message}`, { cause: err })),
    );
  }
}
