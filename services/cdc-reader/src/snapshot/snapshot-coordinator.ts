import type { Connection } from 'mysql2/promise';
import { CdcError, type BinlogPosition, type Logger } from '@cityshare/shared';
import type { RowsChange } from '../binlog-listener.js';
import { canonicalKey } from '../event-builder.js';
import type { ReaderMetrics } from '../reader-metrics.js';
import type { RepairSignal } from '../reader-signal.js';
import type { TableCatalog } from '../table-catalog.js';
import { KeyRepairs } from './key-repair.js';
import { Snapshotter, type SnapshotState } from './snapshotter.js';
import { pointOf, type WatermarkWindow, type WindowHost } from './watermark-window.js';

/** What the coordinator needs of the stream it interleaves chunks with. */
export interface SnapshotStream {
  /** The resume point after the last transaction the stream has fully processed; undefined before it has one. */
  position(): BinlogPosition | undefined;
  /**
   * Queues a window's rows in stream order: as snapshot or repair events (none when the
   * stream changed every key of it), then a boundary at `at` that makes snapshot progress
   * `state`, when given, durable once everything before it is acknowledged.
   */
  emitChunk(rows: RowsChange | null, at: BinlogPosition, state: SnapshotState | undefined): void;
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
  window: WatermarkWindow<unknown>;
  /** The change its reconciled rows make at H (null: none). */
  change: () => RowsChange | null;
  /** Set once its rows are read: the snapshot progress its boundary carries, and the wait it ends when queued. */
  queued?: { state: SnapshotState | undefined; done: () => void };
}

/**
 * Runs snapshots and key repairs alongside streaming (Debezium's snapshot/streaming
 * coordination, DBLog's watermarks): the snapshotter reads a chunk, or a repair the rows of
 * named keys, between two watermarks while the stream goes on; every row change the stream
 * passes is shown to the open windows first, so keys the stream changed are dropped from
 * them; once the stream has passed a window's high watermark, its rows are queued, ahead of
 * the next change, with the snapshot progress a chunk completes. Re-snapshot requests
 * (signals) queue tables for the next run; repair signals run one at a time.
 */
export class SnapshotCoordinator {
  private readonly snapshotter: Snapshotter;
  private readonly repairs: KeyRepairs;
  /** Windows opened and not yet queued, in the order they were opened. */
  private windows: OpenWindow[] = [];
  private running: Promise<void> | undefined;
  private tick: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly deps: SnapshotCoordinatorDeps) {
    const host: WindowHost = {
      openWindow: (window, toChange) => {
        this.windows.push({ window, change: () => toChange(window.reconcile(), window.highPosition!) });
      },
      emitted: (window, state) =>
        new Promise<void>((resolve) => {
          const open = this.windows.find((w) => w.window === window);
          // An invariant, not an input: only a window opened and not yet queued is emitted.
          if (!open) throw new Error('snapshot window not open');
          open.queued = { state, done: resolve };
          this.passedStreamPosition();
        }),
      abandon: (window) => {
        this.windows = this.windows.filter((w) => w.window !== window);
      },
      waitForRoom: () => deps.stream.waitForRoom(),
    };
    this.snapshotter = new Snapshotter(deps.conn, deps.catalog, structuredClone(deps.state), host, deps.options, deps.logger, deps.metrics);
    this.repairs = new KeyRepairs({ conn: deps.conn, catalog: deps.catalog, host, options: deps.options, logger: deps.logger, onFatal: deps.onFatal });
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
    if (this.windows.length === 0) return;
    const point = pointOf({ file: change.file, pos: change.eventPos });
    const keys = change.rows.flatMap((r) => [r.before, r.after].filter((x) => x !== null).map((img) => canonicalKey(change.schema, img)));
    const table = `${change.schema.db}.${change.schema.table}`;
    for (const open of this.windows) open.window.observe(table, point, keys);
    this.emitIfReached(point);
  }

  /** The stream has processed everything up to `position` (a commit, a heartbeat). */
  reached(position: BinlogPosition): void {
    if (this.windows.length > 0) this.emitIfReached(pointOf(position));
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

  /**
   * Delivers named rows of a table again to one department (a repair signal); resolves once
   * its events are queued, or it was refused (logged), or the reader stops.
   */
  repair(signal: RepairSignal, granted: (department: string) => boolean): Promise<void> {
    return this.repairs.run(signal, granted);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.tick);
    this.snapshotter.stop();
    this.repairs.stop();
  }

  private passedStreamPosition(): void {
    const at = this.deps.stream.position();
    if (at) this.reached(at);
  }

  /** Queues each window read whose high watermark the stream has reached. */
  private emitIfReached(streamPoint: string): void {
    for (const open of [...this.windows]) {
      if (!open.queued || !open.window.reachedBy(streamPoint)) continue;
      this.windows.splice(this.windows.indexOf(open), 1);
      this.deps.stream.emitChunk(open.change(), this.deps.stream.position()!, open.queued.state);
      open.queued.done();
    }
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
