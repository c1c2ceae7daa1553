import type { Connection } from 'mysql2/promise';
import { CdcError, isCdcError, type BinlogPosition, type Logger, type TableSchema } from '@cityshare/shared';
import type { RowsChange } from '../binlog-listener.js';
import { canonicalKey } from '../event-builder.js';
import type { RepairSignal } from '../reader-signal.js';
import { binlogEnd } from '../source-check.js';
import type { TableCatalog } from '../table-catalog.js';
import { ChunkReader } from './chunk-reader.js';
import { keyImage, planRepair, type RepairKey, type RepairPlan } from './repair-plan.js';
import { schemaMoved, type RawRow } from './snapshotter.js';
import { WatermarkWindow, pointOf, type WindowHost } from './watermark-window.js';

export interface KeyRepairsDeps {
  /** The reader's query connection (time zone UTC), shared with snapshots. */
  conn: Connection;
  catalog: TableCatalog;
  host: WindowHost;
  options: { chunkSize: number; source: string };
  logger: Logger;
  /** A repair's read failed for another reason than its table's schema moving: the reader cannot go on. */
  onFatal: (err: CdcError) => void;
}

/** A key read in a repair's window: its row when the source has one, else its key columns (a delete). */
interface RepairItem {
  key: RepairKey;
  row: RawRow | null;
}

/** What one repair did, for its log line: counts only, never a key. */
interface RepairCounts {
  /** Rows found and delivered as they are (op r). */
  read: number;
  /** Keys of `deletes` the source has no row for, delivered as deletes. */
  deleted: number;
  /** Department rows deleted by their share key. */
  shareKeyDeletes: number;
  /** Keys of `keys` the source has no row for (nothing to deliver; the verifier asks for their delete). */
  absent: number;
  /** Keys the stream changed inside a window: their newer events deliver them. */
  changedMeanwhile: number;
}

/**
 * A targeted re-snapshot of named keys for one department (`cdc repair`): the rows of the
 * keys are read between two binlog watermarks, like a snapshot chunk, at most a chunk of keys
 * per window; keys the stream changes inside a window are dropped (their newer events are
 * delivered anyway), and the rest are queued when the stream passes the high watermark: rows
 * found as `r` events, keys to delete the source has no row for as `d` events with a before
 * image of the key (other columns null), share keys as `d` events carrying the key sealed.
 * Every event carries `source.repair` (the transformer projects it for that department only)
 * and a version after every other at its high watermark (position.ts repairVersion), so the
 * department's version guard applies it over what it holds while a newer change still wins.
 * Repairs run one at a time.
 */
export class KeyRepairs {
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private lastStamp = 0;
  private readonly stopping: Promise<void>;
  private resolveStopping!: () => void;

  constructor(private readonly deps: KeyRepairsDeps) {
    this.stopping = new Promise((resolve) => (this.resolveStopping = resolve));
  }

  /** Runs a repair after the ones before it; resolves once its events are queued, or it was refused (logged), or the reader stops. */
  run(signal: RepairSignal, granted: (department: string) => boolean): Promise<void> {
    this.chain = this.chain.then(() => this.repair(signal, granted)).catch((err: Error) => {
      this.deps.onFatal(isCdcError(err) ? err : new CdcError('SOURCE_UNREACHABLE', `repair ${signal.request} failed: ${err.message}`, { cause: err }));
    });
    return this.chain;
  }

  stop(): void {
    this.stopped = true;
    this.resolveStopping();
  }

  private async repair(signal: RepairSignal, granted: (department: string) => boolean): Promise<void> {
    const { logger, catalog } = this.deps;
    const about = { request: signal.request, department: signal.department, table: signal.table, requestedBy: signal.requestedBy };
    const [db, name] = signal.table.split('.') as [string, string];
    let plan: RepairPlan;
    try {
      plan = planRepair(signal, catalog.get(db, name), granted);
    } catch (err) {
      if (!isCdcError(err)) throw err;
      logger.warn({ code: err.code, ...about }, err.message);
      return;
    }
    const counts: RepairCounts = { read: 0, deleted: 0, shareKeyDeletes: 0, absent: 0, changedMeanwhile: 0 };
    const size = this.deps.options.chunkSize;
    const windows = Math.max(1, Math.ceil(plan.keys.length / size));
    for (let w = 0; w < windows && !this.stopped; w++) {
      // Share keys need no read: they go with the last window.
      const shareKeys = w === windows - 1 ? plan.shareKeys : [];
      const problem = await this.window(plan, plan.keys.slice(w * size, (w + 1) * size), shareKeys, counts);
      if (problem) {
        logger.warn({ code: problem.code, ...about, ...counts }, `repair stopped: ${problem.message}`);
        return;
      }
    }
    if (!this.stopped) logger.info({ ...about, keys: plan.keys.length, shareKeys: plan.shareKeys.length, ...counts }, 'repair queued for delivery');
  }

  /** One window: reads `keys` between two watermarks and waits until its events are queued. Returns why it could not, if so. */
  private async window(plan: RepairPlan, keys: RepairKey[], shareKeys: string[], counts: RepairCounts): Promise<CdcError | undefined> {
    const { conn, catalog, host, options } = this.deps;
    const [db, name] = plan.table.split('.') as [string, string];
    const reader = new ChunkReader(conn);
    for (;;) {
      await Promise.race([host.waitForRoom(), this.stopping]);
      if (this.stopped) return undefined;
      // Read with the table's columns of now (DDL since the signal); its key must still be the one the keys name.
      const problem = await catalog.reload(conn, options.source, db, name);
      if (problem) return problem;
      const schema = catalog.get(db, name)!;
      if (plan.primaryKey.join() !== schema.primaryKey.join()) {
        return new CdcError('SIGNAL_REFUSED', `the primary key of ${plan.table} changed since the repair was asked for`);
      }
      const window = new WatermarkWindow<RepairItem>(plan.table, pointOf(await binlogEnd(conn)));
      host.openWindow(window, (items, high) => this.changeOf(plan, schema, items, shareKeys, high, counts));
      let rows: RawRow[];
      try {
        rows = await reader.readKeys(schema, keys.map((k) => k.values));
      } catch (err) {
        host.abandon(window);
        if (schemaMoved(err)) continue;
        throw err;
      }
      const high = await binlogEnd(conn);
      // Kept by canonical key: a loosely compared value may have brought a neighbour along.
      const found = new Map(rows.map((row) => [canonicalKey(schema, row), row]));
      const items: RepairItem[] = [];
      for (const key of keys) {
        const row = found.get(key.key) ?? null;
        if (row || plan.deletes.has(key.key)) items.push({ key, row });
        else counts.absent++;
      }
      window.close(high, items.map((item) => ({ key: item.key.key, row: item })));
      counts.changedMeanwhile += items.length;
      await Promise.race([host.emitted(window), this.stopping]);
      return undefined;
    }
  }

  /** The repair's change of a window, at its high watermark: reconciled rows, deletes, share-key deletes. */
  private changeOf(plan: RepairPlan, schema: TableSchema, items: RepairItem[], shareKeys: string[], high: BinlogPosition, counts: RepairCounts): RowsChange | null {
    counts.changedMeanwhile -= items.length;
    const rows: RowsChange['rows'] = items.map((item) => item.row ? { before: null, after: item.row } : { before: keyImage(schema, item.key.values), after: null });
    for (const item of items) {
      if (item.row) counts.read++;
      else counts.deleted++;
    }
    for (const shareKey of shareKeys) rows.push({ before: keyImage(schema, {}), after: null, shareKey });
    counts.shareKeyDeletes += shareKeys.length;
    if (rows.length === 0) return null;
    // Two repairs at one position (an idle source) still order: the later one's stamp is greater.
    this.lastStamp = Math.max(Date.now(), this.lastStamp + 1);
    return {
      kind: 'repair',
      schema,
      rows,
      file: high.file,
      eventPos: high.pos,
      gtid: null,
      tsMs: Date.now(),
      txOffset: 0,
      repair: { department: plan.department, request: plan.request, stamp: this.lastStamp },
    };
  }
}
