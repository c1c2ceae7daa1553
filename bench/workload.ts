/**
 * Smart-city load for the benchmarks: wide `citizens` rows (8 columns, 5 personal or
 * secret) and narrow bus-card tap events (`bus_card_taps`, 6 columns), as inserts, updates
 * and deletes, in large transactions (a batch job's UPDATE, a retention purge) and many
 * small ones (gates sending a few taps, single registrations, corrections and removals).
 *
 * Every statement runs in autocommit, so one statement is one transaction; several small
 * ones travel in one round trip (multi-statement query) to keep the load generator ahead
 * of the pipeline. The commit time recorded for an inserted row (CommitRecorder) is the time its
 * round trip returned: at most that round trip (a few ms) after the real commit.
 */
import { createPool, type Pool, type ResultSetHeader } from 'mysql2/promise';
import { CITIZEN_CLASSES, type PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';
import type { CommitRecorder } from './latency.js';
import { fillCitizens, sleep } from './support.js';

/** Column classes of the narrow event table, as the bench pipelines register it. */
export const TAP_CLASSES = { id: 'public', card_no: 'personal', route: 'public', stop_name: 'public', tapped_at: 'internal', fare: 'internal' };

/** Shares of the row changes in the mix, with the size of their transactions. */
export const MIX = {
  /** Bus-card taps from gates, transactions of `TAP_TXN_ROWS` rows. */
  tapInserts: 0.45,
  /** New citizens, transactions of `REGISTRATION_TXN_ROWS` rows. */
  citizenInserts: 0.15,
  /** A batch job: one UPDATE of a range of citizens per chunk of the mix (a large transaction). */
  citizenBulkUpdate: 0.25,
  /** Corrections: one citizen per transaction. */
  citizenUpdates: 0.03,
  /** Retention: one DELETE of the oldest taps per chunk (a large transaction). */
  tapPurge: 0.1,
  /** Removals: one citizen per transaction. */
  citizenDeletes: 0.02,
} as const;
const TAP_TXN_ROWS = 15;
const REGISTRATION_TXN_ROWS = 5;
/** Rows per chunk of the mix in a burst: its large transactions are 2,500 (update) and 1,000 (purge) rows. */
export const BURST_CHUNK_ROWS = 10_000;

export type LoadTable = 'citizens' | 'taps';

export interface Statement {
  sql: string;
  /** Rows it changes as planned. */
  rows: number;
  large: boolean;
  inserted?: { table: LoadTable; firstId: number; count: number };
}

export interface LoadTotals {
  /** Rows changed, as MariaDB counted them (affectedRows). */
  rows: number;
  transactions: number;
  inserted: number;
  seconds: number;
}

/** Source tables of a run: `citizens` in its civil database, `bus_card_taps` in its transport database. */
export function loadTables(run: PipelineRun): { citizens: string; taps: string } {
  return { citizens: `\`${run.civilDb}\`.citizens`, taps: `\`${run.transportDb}\`.bus_card_taps` };
}

/** Source tables registered in a bench pipeline file (wide citizens, narrow taps). */
export function benchTables(run: PipelineRun): unknown[] {
  return [
    { name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES },
    { name: `${run.transportDb}.bus_card_taps`, columns: TAP_CLASSES },
  ];
}

/** INSERT … SELECT of `count` sample taps with ids from `from`, from MariaDB's sequence engine. */
export const fillTaps = (table: string, from: number, count: number) =>
  `INSERT INTO ${table} (id, card_no, route, stop_name, tapped_at, fare)
   SELECT seq, CONCAT('3101', LPAD(seq MOD 100000000, 8, '0')), CONCAT(1 + seq MOD 300, '路'), ELT(1 + seq MOD 4, '中关村', '西直门', '国贸', '天安门东'),
          '2024-01-01 00:00:00.000000' + INTERVAL seq SECOND, 2.00 + (seq MOD 3)
   FROM ${table.split('.')[0]}.seq_${from}_to_${from + count - 1}`;

/** Loads `citizens` and `taps` rows (ids from 1) in chunks of a million. */
export async function preload(run: PipelineRun, counts: { citizens: number; taps: number }): Promise<void> {
  const t = loadTables(run);
  for (let i = 1; i <= counts.citizens; i += 1_000_000) await run.source.query(fillCitizens(t.citizens, i, Math.min(1_000_000, counts.citizens - i + 1)));
  for (let i = 1; i <= counts.taps; i += 1_000_000) await run.source.query(fillTaps(t.taps, i, Math.min(1_000_000, counts.taps - i + 1)));
}

/** Rows to preload so that `changes` row changes of the mix find rows to update and delete. */
export function preloadFor(changes: number): { citizens: number; taps: number } {
  return {
    citizens: Math.ceil(changes * MIX.citizenDeletes) + Math.ceil(Math.min(changes, BURST_CHUNK_ROWS) * MIX.citizenBulkUpdate) * 2 + 100,
    taps: Math.ceil(changes * MIX.tapPurge) + 100,
  };
}

const ROUTES = ['1路', '52路', '300路快', '特8路', '运通101'];
const STOPS = ['中关村', '西直门', '国贸', '天安门东', '五道口', '望京西'];
const DISTRICTS = ['东城', '海淀', '朝阳', '浦东'];

/**
 * Plans the mix statement by statement. Inserts take fresh ids above the preloaded ones;
 * updates and deletes only touch preloaded rows (deletes from the top of the citizens and
 * the bottom of the taps, updates cycling below), so an inserted row, whose arrival the
 * latency probe waits for, is never deleted.
 */
export class Workload {
  private nextCitizen: number;
  private nextTap: number;
  /** Highest preloaded citizen not deleted yet. */
  private citizenTop: number;
  private updateCursor = 1;
  private purgeCursor = 1;
  private generation = 0;
  private deficit = { citizenInserts: 0, tapInserts: 0, citizenBulkUpdate: 0, citizenUpdates: 0, tapPurge: 0, citizenDeletes: 0 };

  constructor(
    private readonly tables: { citizens: string; taps: string },
    private readonly preloaded: { citizens: number; taps: number },
  ) {
    this.nextCitizen = preloaded.citizens + 1;
    this.nextTap = preloaded.taps + 1;
    this.citizenTop = preloaded.citizens;
  }

  /** Statements for about `rows` row changes, small ones interleaved, the large ones at a third and two thirds. */
  plan(rows: number): Statement[] {
    const n = {} as Record<keyof typeof MIX, number>;
    for (const k of Object.keys(MIX) as Array<keyof typeof MIX>) {
      // Carry fractions over so a steady rate split in small chunks keeps the shares.
      const exact = rows * MIX[k] + this.deficit[k];
      n[k] = Math.floor(exact);
      this.deficit[k] = exact - n[k];
    }
    const { citizens, taps } = this.tables;
    const small: Statement[][] = [[], [], [], []];
    const large: Statement[] = [];

    for (let left = n.citizenDeletes; left > 0; left--) {
      if (this.citizenTop <= 1) throw new Error('benchmark workload: not enough preloaded citizens to delete; preload more');
      small[0]!.push({ sql: `DELETE FROM ${citizens} WHERE id = ${this.citizenTop--}`, rows: 1, large: false });
    }
    if (n.tapPurge > 0) {
      const from = this.purgeCursor;
      const to = from + n.tapPurge - 1;
      if (to > this.preloaded.taps) throw new Error('benchmark workload: not enough preloaded taps to purge; preload more');
      this.purgeCursor = to + 1;
      large.push({ sql: `DELETE FROM ${taps} WHERE id BETWEEN ${from} AND ${to}`, rows: n.tapPurge, large: true });
    }
    if (n.citizenBulkUpdate > 0) {
      const [from, to] = this.updateRange(n.citizenBulkUpdate);
      large.push({
        sql: `UPDATE ${citizens} SET address = CONCAT('北京市朝阳区建国路', id, '号', ${++this.generation}), phone = CONCAT('139', LPAD(id MOD 100000000, 8, '0')) WHERE id BETWEEN ${from} AND ${to}`,
        rows: n.citizenBulkUpdate,
        large: true,
      });
    }
    for (let left = n.citizenUpdates; left > 0; left--) {
      const [id] = this.updateRange(1);
      small[1]!.push({ sql: `UPDATE ${citizens} SET address = CONCAT('北京市海淀区学院路', id, '号', ${++this.generation}), district = '${DISTRICTS[this.generation % 4]}' WHERE id = ${id}`, rows: 1, large: false });
    }
    for (let left = n.citizenInserts; left > 0; left -= REGISTRATION_TXN_ROWS) {
      const count = Math.min(REGISTRATION_TXN_ROWS, left);
      const first = this.nextCitizen;
      this.nextCitizen += count;
      const values = Array.from({ length: count }, (_, i) => {
        const id = first + i;
        return `(${id}, '市民${id}', '11010119900101${String(id % 10000).padStart(4, '0')}', '138${String(id % 100000000).padStart(8, '0')}', '1990-01-01', '${DISTRICTS[id % 4]}', '北京市东城区王府井大街${id}号', NOW(6))`;
      });
      small[2]!.push({ sql: `INSERT INTO ${citizens} VALUES ${values.join(', ')}`, rows: count, large: false, inserted: { table: 'citizens', firstId: first, count } });
    }
    for (let left = n.tapInserts; left > 0; left -= TAP_TXN_ROWS) {
      const count = Math.min(TAP_TXN_ROWS, left);
      const first = this.nextTap;
      this.nextTap += count;
      const values = Array.from({ length: count }, (_, i) => {
        const id = first + i;
        return `(${id}, '3101${String(id % 100000000).padStart(8, '0')}', '${ROUTES[id % ROUTES.length]}', '${STOPS[id % STOPS.length]}', NOW(6), ${2 + (id % 3)}.00)`;
      });
      small[3]!.push({ sql: `INSERT INTO ${taps} (id, card_no, route, stop_name, tapped_at, fare) VALUES ${values.join(', ')}`, rows: count, large: false, inserted: { table: 'taps', firstId: first, count } });
    }

    // Interleave the small statements by kind, in proportion to their counts.
    const total = small.reduce((a, s) => a + s.length, 0);
    const out: Statement[] = [];
    const taken = small.map(() => 0);
    for (let i = 0; i < total; i++) {
      let best = -1;
      let bestLag = -Infinity;
      small.forEach((s, k) => {
        const lag = ((i + 1) * s.length) / total - taken[k]!;
        if (taken[k]! < s.length && lag > bestLag) {
          best = k;
          bestLag = lag;
        }
      });
      out.push(small[best]![taken[best]!++]!);
    }
    large.forEach((s, i) => out.splice(Math.floor((out.length * (i + 1)) / (large.length + 1)), 0, s));
    return out;
  }

  /** Preloaded citizens still there (below the deletion front), cycling. */
  private updateRange(count: number): [number, number] {
    if (count > this.citizenTop) throw new Error('benchmark workload: not enough preloaded citizens to update; preload more');
    if (this.updateCursor + count - 1 > this.citizenTop) this.updateCursor = 1;
    const from = this.updateCursor;
    this.updateCursor += count;
    return [from, from + count - 1];
  }
}

/** A pool of source connections that runs planned statements, several small ones per round trip. */
export class LoadDriver {
  private constructor(
    private readonly pool: Pool,
    readonly connections: number,
  ) {}

  static open(connections = 3): LoadDriver {
    const pool = createPool({ ...stack.source, charset: 'utf8mb4', multipleStatements: true, connectionLimit: connections, waitForConnections: true });
    return new LoadDriver(pool, connections);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /**
   * Runs the statements as fast as the source takes them: round trips of up to
   * `statementsPerTrip` small statements or one large one, `connections` in flight.
   */
  async run(statements: Statement[], commits?: CommitRecorder, statementsPerTrip = 40): Promise<LoadTotals> {
    const started = Date.now();
    const totals: LoadTotals = { rows: 0, transactions: 0, inserted: 0, seconds: 0 };
    const trips = toTrips(statements, statementsPerTrip);
    let next = 0;
    const worker = async () => {
      while (next < trips.length) await this.trip(trips[next++]!, totals, commits);
    };
    await Promise.all(Array.from({ length: this.connections }, worker));
    totals.seconds = (Date.now() - started) / 1000;
    return totals;
  }

  /** A burst of `rows` row changes of the mix, planned chunk by chunk as it runs. */
  async burst(workload: Workload, rows: number, commits?: CommitRecorder): Promise<LoadTotals> {
    const started = Date.now();
    const totals: LoadTotals = { rows: 0, transactions: 0, inserted: 0, seconds: 0 };
    for (let done = 0; done < rows; done += BURST_CHUNK_ROWS) {
      const t = await this.run(workload.plan(Math.min(BURST_CHUNK_ROWS, rows - done)), commits);
      totals.rows += t.rows;
      totals.transactions += t.transactions;
      totals.inserted += t.inserted;
    }
    totals.seconds = (Date.now() - started) / 1000;
    return totals;
  }

  /**
   * The mix at a fixed offered rate: each second's plan (so its large transactions are
   * `rate` × their share) is sent in ticks of 100 ms, each tick's round trips started on
   * time whether or not earlier ones have returned.
   */
  async steady(workload: Workload, rate: number, seconds: number, commits?: CommitRecorder): Promise<LoadTotals & { offered_rows_per_s: number; late_ticks: number }> {
    const totals: LoadTotals = { rows: 0, transactions: 0, inserted: 0, seconds: 0 };
    const tickMs = 100;
    const ticksPerSecond = 1000 / tickMs;
    const started = Date.now();
    const inFlight: Promise<void>[] = [];
    let late = 0;
    for (let s = 0; s < seconds; s++) {
      const plan = workload.plan(rate);
      // Split the second's statements over its ticks by rows.
      const perTick = rate / ticksPerSecond;
      const ticks: Statement[][] = Array.from({ length: ticksPerSecond }, () => []);
      let acc = 0;
      for (const st of plan) {
        ticks[Math.min(ticksPerSecond - 1, Math.floor(acc / perTick))]!.push(st);
        acc += st.rows;
      }
      for (let k = 0; k < ticksPerSecond; k++) {
        const due = started + (s * ticksPerSecond + k) * tickMs;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        else if (wait < -tickMs) late++;
        const trips = toTrips(ticks[k]!, Math.ceil(ticks[k]!.length / this.connections) || 1);
        for (const trip of trips) inFlight.push(this.trip(trip, totals, commits));
      }
    }
    await Promise.all(inFlight);
    totals.seconds = (Date.now() - started) / 1000;
    return { ...totals, offered_rows_per_s: Math.round(totals.rows / Math.max(totals.seconds, seconds)), late_ticks: late };
  }

  private async trip(trip: Statement[], totals: LoadTotals, commits?: CommitRecorder): Promise<void> {
    const [result] = await this.pool.query(trip.map((s) => s.sql).join(';\n'));
    const at = Date.now();
    const headers = (Array.isArray(result) ? result : [result]) as ResultSetHeader[];
    for (const h of headers) totals.rows += h.affectedRows;
    totals.transactions += trip.length;
    for (const s of trip) {
      if (!s.inserted) continue;
      totals.inserted += s.inserted.count;
      commits?.record(s.inserted.table, s.inserted.firstId, s.inserted.count, at);
    }
  }
}

/** Consecutive small statements grouped up to `per` per round trip; a large one alone. */
function toTrips(statements: Statement[], per: number): Statement[][] {
  const trips: Statement[][] = [];
  let current: Statement[] = [];
  for (const s of statements) {
    if (s.large) {
      if (current.length) {
        trips.push(current);
        current = [];
      }
      trips.push([s]);
      continue;
    }
    current.push(s);
    if (current.length >= per) {
      trips.push(current);
      current = [];
    }
  }
  if (current.length) trips.push(current);
  return trips;
}
