import { rowVersion, type BinlogPosition } from '@cityshare/shared';
import type { RowsChange } from '../binlog-listener.js';
import type { SnapshotState } from './snapshotter.js';

/** A binlog point as a sortable string (see position.ts). */
export function pointOf(p: { file: string; pos: number }): string {
  return rowVersion({ file: p.file, eventPos: p.pos, row: 0 });
}

/**
 * DBLog-style watermark window for one snapshot chunk. The chunk is read between a low
 * watermark L and a high watermark H (binlog end positions before and after the SELECT).
 * Keys that the binlog changes after L are dropped from the chunk, because those events
 * carry a newer state and are delivered anyway; the rest of the chunk is consistent at
 * H and is emitted when the stream reaches H, so it lands in each partition before any
 * change after H. No lock is taken on the source.
 */
export class WatermarkWindow<R> {
  private readonly changed = new Set<string>();
  private high: string | undefined;
  /** H as a binlog position: the position snapshot rows of this chunk are consistent at. */
  highPosition: BinlogPosition | undefined;
  private chunk: Array<{ key: string; row: R }> = [];

  constructor(
    readonly table: string,
    private readonly low: string,
  ) {}

  /** Called for every row change the stream processes, in stream order. */
  observe(table: string, eventPoint: string, keys: string[]): void {
    if (table !== this.table || eventPoint <= this.low) return;
    for (const k of keys) this.changed.add(k);
  }

  /** The chunk has been read; `high` is the binlog end after the read. */
  close(high: BinlogPosition, chunk: Array<{ key: string; row: R }>): void {
    this.high = pointOf(high);
    this.highPosition = high;
    this.chunk = chunk;
  }

  get highPoint(): string | undefined {
    return this.high;
  }

  /** True once the stream has processed everything up to H. */
  reachedBy(streamPoint: string): boolean {
    return this.high !== undefined && streamPoint >= this.high;
  }

  /** Chunk rows whose keys the stream did not change inside the window. */
  reconcile(): R[] {
    return this.chunk.filter((c) => !this.changed.has(c.key)).map((c) => c.row);
  }
}

/**
 * What reads rows in windows beside the stream (the snapshotter, key repairs) needs of the
 * snapshot coordinator, which sees every change the stream publishes.
 */
export interface WindowHost {
  /**
   * Registers a window before its rows are read, so the stream's changes are observed;
   * `toChange` makes, of its reconciled rows, the change queued once the stream passes H
   * (null: nothing to queue).
   */
  openWindow<R>(window: WatermarkWindow<R>, toChange: (rows: R[], high: BinlogPosition) => RowsChange | null): void;
  /** Resolves once the window, closed, has been queued at H, with a boundary carrying snapshot progress `state` when given. */
  emitted(window: WatermarkWindow<unknown>, state?: SnapshotState): Promise<void>;
  /** A window whose read failed: observed no longer, never queued. */
  abandon(window: WatermarkWindow<unknown>): void;
  /** Resolves once the stream's queue has room for another chunk. */
  waitForRoom(): Promise<void>;
}
