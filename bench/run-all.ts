/**
 * The whole benchmark suite: cdc-reader (snapshot runs, binlog runs), transformer (1, 3 and
 * 10 departments), end to end (saturation burst and a fixed rate) and, unless --no-peer,
 * the Debezium peer (bench/peer/debezium.ts) on the same machine, in both its configuration
 * profiles (`defaults` and `tuned`, bench/peer/debezium-profiles.ts; runs alternate between
 * them), ours/Debezium taken against the better profile per figure; each figure the median
 * of --runs runs. Checks the DESIGN.md performance targets and writes
 *   bench/results/latest.json  every figure, per-run raw figures, machine and versions
 *   bench/results/latest.md    the table: figure, ours, Debezium, ratio, target, verdict
 *   bench/results/latency.png  latency over time at the fixed rate, ours and Debezium
 *
 *   npm run bench -- [--runs 3] [--quick] [--no-peer] [--peer-runs N (per profile)] [--peer-profiles defaults,tuned(,tuned-avro)]
 *                    [--only reader,transformer,e2e,peer]
 *                    [--snapshot-rows N] [--reader-rows N] [--transformer-rows N] [--departments 1,3,10]
 *                    [--e2e-rows N] [--rate 5000] [--seconds 20] [--peer-rows N]
 * Default sizes fit the whole suite in under 30 minutes on the project's 2-core machine;
 * --quick is a smoke run of a few minutes (1 run, small sizes).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { writeLatencyChart, type ChartLine } from './chart.js';
import { measureE2e, type E2eResult } from './e2e-bench.js';
import type { CpuPerRow } from './latency.js';
import { measureReader, type ReaderFigures } from './reader-bench.js';
import { bestOfPeers, checkTargets, machineInfo, markdown, medianCpu, medianStageWaits, peerRatios, type PeerSummary, type Quantiles, type SuiteFigures } from './report.js';
import { median } from './support.js';
import type { PeerFigures } from './peer/debezium.js';
import { PROFILE_SUMMARY, SUITE_PEER_PROFILES, parsePeerProfiles, type PeerProfile } from './peer/debezium-profiles.js';
import { measureTransformer, type TransformerFigures } from './transformer-bench.js';

/** `readerRows`: row changes of the backlog for reader_rows_per_s, as the reader bench's binlog runs. */
type RunPeer = (o: { rows: number; rate: number; seconds: number; readerRows?: number; profile?: PeerProfile }) => Promise<PeerFigures>;

const { values: a } = parseArgs({
  options: {
    runs: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'no-peer': { type: 'boolean', default: false },
    'peer-runs': { type: 'string' },
    'peer-profiles': { type: 'string' },
    only: { type: 'string' },
    'snapshot-rows': { type: 'string' },
    'reader-rows': { type: 'string' },
    'transformer-rows': { type: 'string' },
    departments: { type: 'string' },
    'e2e-rows': { type: 'string' },
    rate: { type: 'string' },
    seconds: { type: 'string' },
    'peer-rows': { type: 'string' },
  },
});

// The default sizes take about 15 minutes on 2 cores (measured 2026-11-25: reader 4.7 min with
// three 3M-row snapshots, transformer 3.5 min, e2e 2.7 min, Debezium peer 4 min per profile;
// --peer-profiles tuned halves the peer's share); the suite prints the time of every step.
// --quick takes 3-4 minutes.
const defaults = a.quick
  ? { runs: 1, snapshot: 100_000, reader: 30_000, transformer: 10_000, e2e: 15_000, rate: 5000, seconds: 10 }
  : { runs: 3, snapshot: 3_000_000, reader: 200_000, transformer: 20_000, e2e: 60_000, rate: 5000, seconds: 20 };
const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
const sizes = {
  runs: num(a.runs, defaults.runs),
  snapshot_rows: num(a['snapshot-rows'], defaults.snapshot),
  reader_rows: num(a['reader-rows'], defaults.reader),
  transformer_rows: num(a['transformer-rows'], defaults.transformer),
  departments: (a.departments ?? '1,3,10').split(',').map(Number),
  e2e_rows: num(a['e2e-rows'], defaults.e2e),
  rate: num(a.rate, defaults.rate),
  seconds: num(a.seconds, defaults.seconds),
  peer_rows: num(a['peer-rows'], num(a['e2e-rows'], defaults.e2e)),
  peer_runs: 0,
};
sizes.peer_runs = num(a['peer-runs'], sizes.runs);
const peerProfiles = a['peer-profiles'] === undefined ? [...SUITE_PEER_PROFILES] : parsePeerProfiles(a['peer-profiles'], '--peer-profiles');
const steps = new Set((a.only ?? 'reader,transformer,e2e,peer').split(','));
if (a['no-peer']) steps.delete('peer');

const suiteStart = Date.now();
const elapsed = () => `${((Date.now() - suiteStart) / 60_000).toFixed(1)} min`;
const log = (line: string) => console.log(`[${elapsed()}] ${line}`);
const errors: string[] = [];
const notes: string[] = [];
const stepSeconds: Record<string, number> = {};

async function step<T>(name: string, fn: () => Promise<T>): Promise<T | null> {
  const started = Date.now();
  log(`== ${name}`);
  try {
    return await fn();
  } catch (err) {
    const message = `${name}: ${(err as Error).stack ?? String(err)}`;
    console.error(message);
    errors.push(`${name}: ${(err as Error).message}`);
    return null;
  } finally {
    stepSeconds[name] = Math.round((Date.now() - started) / 1000);
    log(`== ${name} took ${stepSeconds[name]} s`);
  }
}

async function loadPeer(): Promise<RunPeer | string> {
  const url = new URL('./peer/debezium.ts', import.meta.url);
  if (!existsSync(url)) return 'bench/peer/debezium.ts is not there';
  const mod = (await import(url.href)) as { runDebeziumPeer?: RunPeer };
  return typeof mod.runDebeziumPeer === 'function' ? mod.runDebeziumPeer : 'bench/peer/debezium.ts exports no runDebeziumPeer';
}

log(`sizes: ${JSON.stringify(sizes)}; steps: ${[...steps].join(', ')}${steps.has('peer') ? `; peer profiles: ${peerProfiles.join(', ')}` : ''}`);
const machine = await machineInfo();

const reader: ReaderFigures | null = steps.has('reader')
  ? await step('reader', () => measureReader({ snapshotRows: sizes.snapshot_rows, burstRows: sizes.reader_rows, runs: sizes.runs }, log))
  : null;

const transformer: TransformerFigures | null = steps.has('transformer')
  ? await step('transformer', () => measureTransformer({ rows: sizes.transformer_rows, departments: sizes.departments, runs: sizes.runs }, log))
  : null;

const e2eRuns: E2eResult[] = [];
if (steps.has('e2e')) {
  for (let r = 1; r <= sizes.runs; r++) {
    const res = await step(`e2e run ${r}`, () => measureE2e({ rows: sizes.e2e_rows, rate: sizes.rate, seconds: sizes.seconds }, log));
    if (res) e2eRuns.push(res);
  }
}

const peerRuns: PeerFigures[] = [];
let peerSkipped: string | undefined;
if (steps.has('peer')) {
  const peer = await loadPeer().catch((err: Error) => `bench/peer/debezium.ts failed to load: ${err.message}`);
  if (typeof peer === 'string') {
    peerSkipped = peer;
    log(`peer: skipped (${peer})`);
  } else {
    // Profiles alternate run by run, so a slower hour of this shared machine weighs on both alike.
    for (let r = 1; r <= sizes.peer_runs; r++) {
      for (const profile of peerProfiles) {
        const res = await step(`Debezium peer (${profile}) run ${r}`, () => peer({ rows: sizes.peer_rows, rate: sizes.rate, seconds: sizes.seconds, readerRows: sizes.reader_rows, profile }));
        if (res) peerRuns.push(res);
      }
    }
  }
} else {
  peerSkipped = a['no-peer'] ? '--no-peer' : 'not in --only';
}

// Medians over the runs.
const medianOf = (values: number[]) => (values.length ? Math.round(median(values)) : null);
const quantiles = (list: Quantiles[]): Quantiles | null =>
  list.length ? { p50: medianOf(list.map((q) => q.p50))!, p95: medianOf(list.map((q) => q.p95))!, p99: medianOf(list.map((q) => q.p99))! } : null;
const rss: Record<string, number> = {};
const peak = (name: string, v: number | undefined) => {
  if (v !== undefined && Number.isFinite(v)) rss[name] = Math.max(rss[name] ?? 0, v);
};
peak('cdc_reader', reader?.rss_mib);
peak('transformer', transformer?.rss_mib);
for (const r of e2eRuns) for (const [k, v] of Object.entries(r.rss_mib)) peak(k, v);

/** Medians over one profile's runs (peak RSS: the highest). */
function peerSummary(runs: PeerFigures[]): PeerSummary {
  const opt = (k: 'reader_rows_per_s' | 'snapshot_rows_per_s') => {
    const v = runs.map((p) => p[k]).filter((x): x is number => typeof x === 'number');
    return v.length ? { [k]: medianOf(v)! } : {};
  };
  const peerRss: Record<string, number> = {};
  for (const p of runs) for (const [k, v] of Object.entries(p.rss_mib)) peerRss[k] = Math.max(peerRss[k] ?? 0, v);
  return {
    e2e_rows_per_s: medianOf(runs.map((p) => p.e2e_rows_per_s))!,
    e2e_latency_ms: quantiles(runs.map((p) => p.e2e_latency_ms))!,
    ...(runs.every((p) => p.e2e_saturation_latency_ms) ? { e2e_saturation_latency_ms: quantiles(runs.map((p) => p.e2e_saturation_latency_ms!))! } : {}),
    ...opt('reader_rows_per_s'),
    ...opt('snapshot_rows_per_s'),
    rss_mib: peerRss,
    versions: runs[0]!.versions,
  };
}
const runsOf = (profile: PeerProfile) => peerRuns.filter((p) => p.profile === profile);
const debeziumProfiles: Record<string, PeerSummary> = {};
for (const profile of peerProfiles) if (runsOf(profile).length) debeziumProfiles[profile] = peerSummary(runsOf(profile));
// What ours is compared with: per figure the better profile.
const debezium: PeerSummary | null = bestOfPeers(debeziumProfiles);

const figures: SuiteFigures = {
  reader_rows_per_s: reader?.reader_rows_per_s ?? null,
  snapshot_rows_per_s: reader?.snapshot_rows_per_s ?? null,
  snapshot_rows: reader?.snapshot_rows ?? null,
  transformer_records_per_s: transformer?.transformer_records_per_s ?? null,
  e2e_rows_per_s: medianOf(e2eRuns.map((r) => r.e2e_rows_per_s)),
  e2e_latency_ms: quantiles(e2eRuns.map((r) => r.e2e_latency_ms)),
  e2e_saturation_latency_ms: quantiles(e2eRuns.map((r) => r.burst.latency_ms)),
  e2e_offered_rows_per_s: medianOf(e2eRuns.map((r) => r.steady.offered_rows_per_s)),
  e2e_rate: sizes.rate,
  rss_mib: rss,
  peer: { debezium, debezium_profiles: debeziumProfiles },
  cpu_us_per_row: cpuOfSystems(),
  stage_waits: medianStageWaits(e2eRuns.flatMap((r) => (r.stage_waits ? [r.stage_waits] : []))) ?? undefined,
};

/** CPU per row change of ours and of each peer profile that ran (median of the runs). */
function cpuOfSystems(): Record<string, CpuPerRow> {
  const systems: Array<[string, CpuPerRow[]]> = [['ours', e2eRuns.map((r) => r.cpu_us_per_row)], ...peerProfiles.map((p): [string, CpuPerRow[]] => [`Debezium ${p}`, runsOf(p).flatMap((r) => (r.cpu_us_per_row ? [r.cpu_us_per_row] : []))])];
  const out: Record<string, CpuPerRow> = {};
  for (const [name, runs] of systems) {
    const cpu = medianCpu(runs);
    if (cpu) out[name] = cpu;
  }
  return out;
}

// The chart: the run with the median p99 at the fixed rate, of ours and of the peer.
const medianRun = <T>(list: T[], p99: (x: T) => number): T | undefined => [...list].sort((x, y) => p99(x) - p99(y))[(list.length - 1) >> 1];
const oursChart = medianRun(e2eRuns, (r) => r.e2e_latency_ms.p99);
const peerCharts = peerProfiles.map((profile) => ({ profile, run: medianRun(runsOf(profile), (p) => p.e2e_latency_ms.p99) }));
const centre = (series: Array<{ t_s: number; latency_ms: number }>) => (series.every((s) => Number.isInteger(s.t_s)) ? series.map((s) => ({ ...s, t_s: s.t_s + 0.5 })) : series);
// Both series are measureLatency's per_second (bench/latency.ts): per second of commit time,
// the mean latency of the rows committed in it (solid) and their maximum (dashed).
const maxOf = (series: PeerFigures['latency_series']) => (series.every((s) => typeof s.max_ms === 'number') ? series.map((s) => ({ t_s: s.t_s, latency_ms: s.max_ms! })) : []);
const lines: ChartLine[] = [
  { label: 'cityshare, mean per second', color: '#1f6fb4', points: centre(oursChart?.latency_series ?? []) },
  { label: 'cityshare, max per second', color: '#1f6fb4', dash: '7 4', points: centre(maxOf(oursChart?.latency_series ?? [])) },
];
const PROFILE_COLOURS: Record<PeerProfile, string> = { defaults: '#e8710a', tuned: '#8e44ad', 'tuned-avro': '#2e8b57' };
if (!peerSkipped || peerRuns.length) {
  for (const { profile, run } of peerCharts) {
    lines.push(
      { label: `Debezium ${profile}, mean per second`, color: PROFILE_COLOURS[profile], points: centre(run?.latency_series ?? []) },
      { label: `Debezium ${profile}, max per second`, color: PROFILE_COLOURS[profile], dash: '7 4', points: centre(maxOf(run?.latency_series ?? [])) },
    );
  }
}

notes.push(
  'Load: the smart-city mix of bench/workload.ts — 45% bus-card tap inserts (narrow rows, transactions of 15), 15% citizen inserts (wide rows, 5 per transaction), 25% citizen updates in one large transaction per chunk, 3% single-citizen updates, 10% tap deletes in one large purge per chunk, 2% single-citizen deletes.',
  `Reader: snapshot of ${sizes.snapshot_rows.toLocaleString('en')} citizens, median of ${sizes.runs} runs (the first at the reader's start, then ad-hoc re-snapshots; first rows read to last acknowledged); binlog runs of ${sizes.reader_rows.toLocaleString('en')} row changes committed while the reader is stopped, rate from its first to its last event.`,
  `Transformer: a backlog of ${sizes.transformer_rows.toLocaleString('en')} raw change events (snapshot and mix), each department granted both tables; records/s from the first record out to the last.`,
  `End to end: reader, transformer (health and Haidian departments) and the health sink; saturation = a burst of ${sizes.e2e_rows.toLocaleString('en')} row changes, first commit to the sink having delivered all; latency per inserted row at ${sizes.rate.toLocaleString('en')} row changes/s for ${sizes.seconds} s, by the probe of bench/peer/latency-probe.ts (poll of PostgreSQL, same method for the peer).`,
  'Peak RSS (VmHWM): the highest of every process of the service over all benchmarks.',
);
if (peerSkipped) notes.push(`Debezium peer not run: ${peerSkipped}.`);
else {
  const stopped = peerRuns.length > 0 && peerRuns.every((p) => p.reader?.source_connector === 'stopped');
  const checked = peerRuns.filter((p) => p.target_check);
  notes.push(
    `Debezium peer profiles (bench/peer/debezium-profiles.ts, bench/peer/README.md), ${sizes.peer_runs} run(s) each, alternating: ${peerProfiles.map((p) => `${p} — ${PROFILE_SUMMARY[p]}`).join('; ')}. ours/Debezium is taken against the better profile per figure (rows/s the higher, latency and RSS the lower).`,
    ...(checked.length ? [`Debezium peer, content: after the fixed-rate phase every column of every row of both department tables ${checked.every((p) => p.target_check!.content_equal) ? 'equalled' : '**did not equal**'} MariaDB's in ${checked.length} of ${peerRuns.length} runs checked (${[...new Set(checked.map((p) => p.profile))].join(', ')}).`] : []),
    `Debezium peer (bench/peer/debezium.ts): the same mix, preload, LoadDriver and measureLatency as ours, on the same MariaDB, Kafka and PostgreSQL, both tables captured by the MariaDB source connector and written by the JDBC sink into the department schema; preloaded rows through Debezium first (snapshot, not timed); saturation = a burst of ${sizes.peer_rows.toLocaleString('en')} row changes, from its start until PostgreSQL's content equals MariaDB's (polled every 500 ms, as ours polls its sink's delivered count); latency at the same rate and seconds, per inserted row of both tables, by the same probe.`,
    `Debezium peer, binlog rate: a backlog of ${sizes.reader_rows.toLocaleString('en')} row changes of the mix committed with the source connector ${stopped ? 'stopped' : 'stopped or paused'} through the Connect REST API and the sink paused, then resumed; rows/s from the first 100 ms sample in which Debezium's topics grew to the last (as ours from the reader's restart${stopped ? '' : '; a paused connector has already read up to its queue (8,192 events) of the backlog, which favours it'}). Differences: the Kafka Connect worker stays up (our reader process is restarted); Debezium's count is messages on its topics, converted to row changes (a delete is a change event plus, except in the tuned profiles, a tombstone); our reader runs on a ${sizes.snapshot_rows.toLocaleString('en')}-row citizens table, the peer on its e2e preload.`,
  );
}

const date = new Date().toISOString();
const elapsedS = Math.round((Date.now() - suiteStart) / 1000);
const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
const targets = checkTargets(figures);
const ratios = peerRatios(figures);
const { peer: _peer, ...ours } = figures;
const results = {
  date,
  command,
  runs: sizes.runs,
  quick: a.quick,
  elapsed_s: elapsedS,
  step_seconds: stepSeconds,
  machine,
  ...ours,
  snapshot_rss_mib: reader?.snapshot_rss_mib ?? null,
  peer: {
    debezium: debezium ? { ...debezium, runs: peerRuns.length } : null,
    debezium_profiles: Object.fromEntries(Object.entries(debeziumProfiles).map(([profile, summary]) => [profile, { ...summary, runs: runsOf(profile as PeerProfile).length, settings: runsOf(profile as PeerProfile)[0]!.settings }])),
    ...(peerSkipped ? { skipped: peerSkipped } : {}),
  },
  ratios_vs_debezium: ratios,
  targets,
  latency_series: { ours: oursChart?.latency_series ?? [], ...Object.fromEntries(peerCharts.map(({ profile, run }) => [`debezium_${profile}`, run?.latency_series ?? []])) },
  sizes,
  raw: {
    reader,
    transformer,
    e2e: e2eRuns.map(({ series: _series, ...r }) => r),
    peer: peerRuns.map(({ latency_series: _s, ...p }) => p),
  },
  notes,
  errors,
};

mkdirSync('bench/results', { recursive: true });
try {
  writeLatencyChart('bench/results/latency.png', lines, {
    title: `End-to-end latency at ${sizes.rate.toLocaleString('en')} row changes/s (${sizes.seconds} s)`,
    subtitle: `MariaDB commit to department PostgreSQL row, per inserted row; ${machine.cpus} cores, ${date.slice(0, 10)}; ${sizes.runs > 1 ? `of ${sizes.runs} runs, the one with the median p99` : 'one run'}`,
    xLabel: 'time since the start of the fixed-rate load (s, by commit time of the rows)',
    yLabel: 'latency (ms)',
    target: { ms: 1000, label: 'DESIGN target: p99 < 1,000 ms' },
  });
} catch (err) {
  errors.push(`chart: ${(err as Error).message}`);
  console.error(err);
}

writeFileSync('bench/results/latest.json', JSON.stringify(results, null, 2) + '\n');
writeFileSync('bench/results/latest.md', markdown({ date, machine, command, runs: sizes.runs, elapsedS, figures, notes, errors }));
console.log('\nours / Debezium:');
if (Object.keys(ratios).length === 0) console.log(`  (peer not run: ${peerSkipped ?? 'every peer run failed'})`);
for (const [k, v] of Object.entries(ratios)) console.log(`  ${k.padEnd(22)} ${v === null ? '—' : `${v.toFixed(2)}×`}`);
console.log('\nDESIGN.md targets:');
for (const t of targets) console.log(`  ${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'FAIL'}  ${t.target}: ${t.measured}`);
if (errors.length) console.log(`\nsteps that failed:\n  ${errors.join('\n  ')}`);
console.log(`\nwrote bench/results/latest.json, latest.md, latency.png; elapsed ${Math.floor(elapsedS / 60)} min ${elapsedS % 60} s`);
process.exitCode = errors.length ? 1 : 0;
