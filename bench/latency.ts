/**
 * Per-row latency, MariaDB commit to department PostgreSQL row, measured the same way for
 * our pipeline and for a peer (bench/peer/): the load side records when each inserted
 * row's transaction committed; the probe of bench/peer/latency-probe.ts polls each target
 * table for those ids and takes the time the poll that first returned a row was issued as
 * its arrival (an upper bound by at most one poll interval, 50 ms by default).
 *
 * `measureLatency` runs a load and one LatencyProbe per target table, and returns the
 * figures over the rows of all tables. Quantiles over several tables need the per-row
 * observations, which LatencyProbe keeps in a private field: they are read from it when
 * it is there (`probeSamples`), else each figure is the worst of the tables' figures.
 */
import { stack } from '../scripts/support/stack.js';
import { LatencyProbe, type LatencyReport } from './peer/latency-probe.js';
import { cpuPerRow, cpuSnapshot, formatCpu } from './cpu.js';
import { quantileOf, sleep } from './support.js';
import type { LoadDriver, LoadTotals, Workload } from './workload.js';

/** Load side: where it reports the commit of inserted rows (ids firstId .. firstId+count-1 of a source table). */
export interface CommitRecorder {
  record(table: string, firstId: number, count: number, atMs: number): void;
}

export interface ProbeTable {
  /** Source table name as the load side records it (e.g. "citizens"). */
  source: string;
  /** Quoted, schema-qualified PostgreSQL table, e.g. `"t1234_dept_health"."citizens"`. */
  target: string;
  /** Integer key column in the target table; "id" unless told. */
  idColumn?: string;
}

export interface LatencySample {
  /** Seconds from `originMs` to the row's commit. */
  t_s: number;
  latency_ms: number;
}

export interface LatencyFigures {
  rows: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
  /** Per row in commit order when the probe's observations could be read; else per-second means. */
  series: LatencySample[];
  /** Mean latency per second of commit time (as the probe reports it; the peer's series is the same). */
  per_second: Array<{ t_s: number; latency_ms: number; max_ms: number; rows: number }>;
  /** Rows recorded on the load side that had not arrived when the probe stopped (0 normally). */
  missing: number;
  polls: number;
  mean_poll_ms: number;
  /** Figures per target table, as the probe reported them. */
  tables: Record<string, Omit<LatencyReport, 'series'>>;
}

export interface MeasureLatencyOptions {
  tables: ProbeTable[];
  /** Runs the load, reporting inserted rows to `commits`; the probes wait for it, then for every row. */
  load: (commits: CommitRecorder) => Promise<void>;
  /** t_s = 0 of the series; the start of `load` unless given. */
  originMs?: number;
  /** Poll interval of each probe, ms (the probe's default, 50, unless given). */
  pollMs?: number;
  /** After the load has finished: how long to wait for the last rows. */
  timeoutMs?: number;
  postgresUrl?: string;
}

/** Per-row observations of a LatencyProbe, if its (private) field can be read. */
function probeSamples(probe: LatencyProbe): Array<{ committedAt: number; latency: number }> | undefined {
  const observed = (probe as unknown as { observed?: unknown }).observed;
  return Array.isArray(observed) ? (observed as Array<{ committedAt: number; latency: number }>) : undefined;
}

/** Runs `load` and measures when each row it recorded arrives in PostgreSQL; see the file comment. */
export async function measureLatency(o: MeasureLatencyOptions): Promise<LatencyFigures> {
  const probes = new Map<string, LatencyProbe>();
  for (const t of o.tables) {
    probes.set(t.source, new LatencyProbe({ connectionString: o.postgresUrl ?? stack.postgresUrl, table: t.target, ...(t.idColumn ? { idColumn: t.idColumn } : {}), ...(o.pollMs ? { intervalMs: o.pollMs } : {}) }));
  }
  const reports = new Map<string, LatencyReport>();
  const origin = o.originMs ?? Date.now();
  let firstCommit = Infinity;
  try {
    for (const p of probes.values()) await p.start();
    await o.load({
      record(table, firstId, count, atMs) {
        const probe = probes.get(table);
        if (!probe) throw new Error(`latency probe: no target table for ${table}`);
        probe.expect(firstId, firstId + count - 1, atMs);
        firstCommit = Math.min(firstCommit, atMs);
      },
    });
    for (const p of probes.values()) await p.waitForAll(o.timeoutMs ?? 600_000);
  } finally {
    for (const [table, p] of probes) reports.set(table, await p.stop());
  }

  const raw = [...probes.values()].map(probeSamples);
  const all = reports.size > 0 ? [...reports.values()] : [];
  const perSecond = new Map<number, { sum: number; max: number; rows: number }>();
  let series: LatencySample[] = [];
  let figures: Pick<LatencyFigures, 'rows' | 'p50' | 'p95' | 'p99' | 'max' | 'mean'>;
  if (raw.every((r) => r !== undefined)) {
    const samples = raw.flatMap((r) => r!);
    series = samples.map((s) => ({ t_s: (s.committedAt - origin) / 1000, latency_ms: s.latency })).sort((a, b) => a.t_s - b.t_s);
    const sorted = series.map((s) => s.latency_ms).sort((a, b) => a - b);
    figures = {
      rows: sorted.length,
      p50: quantileOf(sorted, 0.5),
      p95: quantileOf(sorted, 0.95),
      p99: quantileOf(sorted, 0.99),
      max: sorted.at(-1) ?? NaN,
      mean: sorted.length ? Math.round(sorted.reduce((a, b) => a + b, 0) / sorted.length) : NaN,
    };
    for (const s of samples) {
      const t = Math.floor((s.committedAt - firstCommit) / 1000);
      const b = perSecond.get(t) ?? { sum: 0, max: 0, rows: 0 };
      b.sum += s.latency;
      b.max = Math.max(b.max, s.latency);
      b.rows++;
      perSecond.set(t, b);
    }
  } else {
    const worst = (k: 'p50_ms' | 'p95_ms' | 'p99_ms' | 'max_ms') => Math.max(...all.filter((r) => r.count > 0).map((r) => r[k]));
    const rows = all.reduce((a, r) => a + r.count, 0);
    figures = { rows, p50: worst('p50_ms'), p95: worst('p95_ms'), p99: worst('p99_ms'), max: worst('max_ms'), mean: Math.round(all.reduce((a, r) => a + r.mean_ms * r.count, 0) / Math.max(1, rows)) };
    for (const r of all) {
      for (const s of r.series) {
        const b = perSecond.get(s.t_s) ?? { sum: 0, max: 0, rows: 0 };
        b.sum += s.mean_ms * s.count;
        b.max = Math.max(b.max, s.max_ms);
        b.rows += s.count;
        perSecond.set(s.t_s, b);
      }
    }
  }
  const per_second = [...perSecond.entries()].sort((a, b) => a[0] - b[0]).map(([t_s, b]) => ({ t_s, latency_ms: Math.round(b.sum / b.rows), max_ms: b.max, rows: b.rows }));
  if (series.length === 0) series = per_second.map((p) => ({ t_s: p.t_s + 0.5, latency_ms: p.latency_ms }));
  const polls = all.reduce((a, r) => a + r.polls, 0);
  return {
    ...figures,
    series,
    per_second,
    missing: all.reduce((a, r) => a + r.missing, 0),
    polls,
    mean_poll_ms: Math.round((all.reduce((a, r) => a + r.mean_poll_ms * r.polls, 0) / Math.max(1, polls)) * 10) / 10,
    tables: Object.fromEntries([...reports].map(([table, { series: _series, ...rest }]) => [table, rest])),
  };
}

/** Per-window quantiles of a latency series (for the JSON results and the chart). */
export function windowed(series: LatencySample[], windowS = 0.5): Array<{ t_s: number; latency_ms: number; p99_ms: number; rows: number }> {
  const windows = new Map<number, number[]>();
  for (const s of series) {
    const w = Math.floor(s.t_s / windowS);
    let list = windows.get(w);
    if (!list) windows.set(w, (list = []));
    list.push(s.latency_ms);
  }
  return [...windows.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([w, list]) => {
      const sorted = list.sort((a, b) => a - b);
      return { t_s: Number(((w + 0.5) * windowS).toFixed(3)), latency_ms: quantileOf(sorted, 0.5), p99_ms: quantileOf(sorted, 0.99), rows: sorted.length };
    });
}

/** A saturation burst as the e2e benchmarks (ours and the peer's) report it. */
export interface BurstSummary { rows: number; transactions: number; seconds: number; commit_seconds: number; latency_ms: { p50: number; p95: number; p99: number; max: number; rows: number } }

/** A fixed-rate phase as the e2e benchmarks (ours and the peer's) report it. */
export interface SteadySummary { offered_rows_per_s: number; rows: number; transactions: number; seconds: number; late_ticks: number; latency_rows: number; latency_missing: number; max_ms: number; mean_ms: number; probe_polls: number; probe_mean_poll_ms: number }

export function burstSummary(load: { rows: number; transactions: number; seconds: number }, seconds: number, l: LatencyFigures): BurstSummary {
  return { rows: load.rows, transactions: load.transactions, seconds, commit_seconds: load.seconds, latency_ms: { p50: l.p50, p95: l.p95, p99: l.p99, max: l.max, rows: l.rows } };
}

export function steadySummary(load: { offered_rows_per_s: number; rows: number; transactions: number; seconds: number; late_ticks: number }, l: LatencyFigures): SteadySummary {
  return {
    offered_rows_per_s: load.offered_rows_per_s, rows: load.rows, transactions: load.transactions, seconds: load.seconds, late_ticks: load.late_ticks,
    latency_rows: l.rows, latency_missing: l.missing, max_ms: l.max, mean_ms: l.mean, probe_polls: l.polls, probe_mean_poll_ms: l.mean_poll_ms,
  };
}

export type SteadyLoad = LoadTotals & { offered_rows_per_s: number; late_ticks: number };

/** The two end-to-end phases, run the same way for our pipeline and for a peer. */
export interface E2ePhasesOptions {
  driver: LoadDriver;
  workload: Workload;
  /** PostgreSQL schema the department's `citizens` and `bus_card_taps` land in. */
  pgSchema: string;
  /** Row changes of the burst. */
  rows: number;
  /** Row changes per second and seconds of the fixed-rate phase. */
  rate: number;
  seconds: number;
  log: (line: string) => void;
  /** Called before each load: returns a wait for the target to hold that load's `rows` changes. */
  arrival: () => Promise<(rows: number, timeoutMs: number) => Promise<void>>;
  /** Our pipeline's stage histograms (sum and count of each), read before and after the fixed rate; none for the peer. */
  stages?: () => Promise<StageTotals>;
}

export interface E2ePhases {
  burstLoad: LoadTotals;
  /** From the burst's start until the target held all of it. */
  burstSeconds: number;
  e2eRate: number;
  burstLatency: LatencyFigures;
  steadyLoad: SteadyLoad;
  steady: LatencyFigures;
  cpuPerRow: CpuPerRow;
  /** Mean of each stage's histogram over the fixed rate, ms, and how many a second (stages given). */
  stageWaits?: StageWaits;
}

export type StageTotals = Record<string, { sum: number; count: number }>;
export type StageWaits = Record<string, { mean_ms: number; per_s: number }>;

/** Each stage's mean (ms) and rate between two readings of its histogram's sum and count. */
export function stageWaits(before: StageTotals, after: StageTotals, seconds: number): StageWaits {
  const out: StageWaits = {};
  for (const [name, end] of Object.entries(after)) {
    const start = before[name] ?? { sum: 0, count: 0 };
    const count = end.count - start.count;
    out[name] = { mean_ms: count > 0 ? Math.round(((end.sum - start.sum) / count) * 1000) : 0, per_s: Math.round((count / seconds) * 10) / 10 };
  }
  return out;
}

/** CPU microseconds per row change of each process taking part (bench/cpu.ts), in each phase. */
export interface CpuPerRow {
  burst: Record<string, number>;
  steady: Record<string, number>;
}

/**
 * Saturation (the mix as fast as the source takes it, until the target has every change,
 * probed every 500 ms so the probe loads the target less under a backlog), a pause, then
 * the fixed rate; latency per inserted row in both.
 */
export async function measureE2ePhases(o: E2ePhasesOptions): Promise<E2ePhases> {
  const tables: ProbeTable[] = [
    { source: 'citizens', target: `"${o.pgSchema}".citizens` },
    { source: 'taps', target: `"${o.pgSchema}".bus_card_taps` },
  ];
  o.log(`burst of ${o.rows.toLocaleString('en')} row changes`);
  let burstLoad: LoadTotals | undefined;
  let burstEnd = 0;
  const burstArrived = await o.arrival();
  // Before the clock starts: reading every process's counters takes a few milliseconds.
  const burstCpu = cpuSnapshot();
  const burstStart = Date.now();
  let burstCpuEnd = burstCpu;
  const burstLatency = await measureLatency({
    tables,
    pollMs: 500,
    load: async (commits) => {
      burstLoad = await o.driver.burst(o.workload, o.rows, commits);
      await burstArrived(burstLoad.rows, 1_800_000);
      burstEnd = Date.now();
      burstCpuEnd = cpuSnapshot();
    },
  });
  const burstSeconds = (burstEnd - burstStart) / 1000;
  const e2eRate = Math.round(burstLoad!.rows / burstSeconds);
  o.log(`burst: ${burstLoad!.rows.toLocaleString('en')} row changes (${burstLoad!.transactions.toLocaleString('en')} transactions, committed in ${burstLoad!.seconds.toFixed(1)} s) in PostgreSQL after ${burstSeconds.toFixed(1)} s = ${e2eRate.toLocaleString('en')} rows/s; latency p50 ${burstLatency.p50} ms, p95 ${burstLatency.p95} ms, p99 ${burstLatency.p99} ms`);
  const cpuBurst = cpuPerRow(burstCpu, burstCpuEnd, burstLoad!.rows);
  o.log(`burst: CPU µs per row change: ${formatCpu(cpuBurst)}`);
  await sleep(2000);

  o.log(`${o.rate.toLocaleString('en')} row changes/s for ${o.seconds} s`);
  let steadyLoad: SteadyLoad | undefined;
  const steadyArrived = await o.arrival();
  const steadyStages = await o.stages?.();
  const steadyCpu = cpuSnapshot();
  const steadyStart = Date.now();
  let steadyCpuEnd = steadyCpu;
  let steadyEnd = steadyStart;
  const steady = await measureLatency({
    tables,
    originMs: Date.now(),
    load: async (commits) => {
      steadyLoad = await o.driver.steady(o.workload, o.rate, o.seconds, commits);
      await steadyArrived(steadyLoad.rows, 900_000);
      steadyCpuEnd = cpuSnapshot();
      steadyEnd = Date.now();
    },
  });
  o.log(`fixed rate: ${steadyLoad!.offered_rows_per_s.toLocaleString('en')} rows/s offered (${steadyLoad!.late_ticks} late ticks); latency of ${steady.rows.toLocaleString('en')} inserted rows p50 ${steady.p50} ms, p95 ${steady.p95} ms, p99 ${steady.p99} ms, max ${steady.max} ms${steady.missing ? `; ${steady.missing} rows never arrived` : ''} (${steady.polls} polls of ${steady.mean_poll_ms} ms)`);
  const cpuSteady = cpuPerRow(steadyCpu, steadyCpuEnd, steadyLoad!.rows);
  o.log(`fixed rate: CPU µs per row change: ${formatCpu(cpuSteady)}`);
  const waits = steadyStages && o.stages ? stageWaits(steadyStages, await o.stages(), (steadyEnd - steadyStart) / 1000) : undefined;
  if (waits) o.log(`fixed rate: stages, mean per batch: ${Object.entries(waits).map(([name, w]) => `${name} ${w.mean_ms} ms (${w.per_s}/s)`).join(', ')}`);
  return { burstLoad: burstLoad!, burstSeconds, e2eRate, burstLatency, steadyLoad: steadyLoad!, steady, cpuPerRow: { burst: cpuBurst, steady: cpuSteady }, stageWaits: waits };
}
