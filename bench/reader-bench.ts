/**
 * cdc-reader benchmark on the local stack: snapshot rows/s of a large `citizens` table, then
 * binlog-to-raw-topic rows/s of the smart-city mix (bench/workload.ts: wide citizens and
 * narrow bus-card taps; inserts, updates, deletes; large and small transactions), with the
 * reader's peak RSS (VmHWM).
 *
 * The snapshot rate is taken from the first rows read to the last acknowledged by Kafka
 * (process start-up left out; the seconds from process start are recorded too); runs after
 * the first are ad-hoc re-snapshots of the same table, and the figure is their median. Binlog
 * runs measure the reader alone: the reader is stopped, the mix is committed (a
 * backlog in the binlog), the reader is started again from its checkpoint and its rate is
 * taken from the first metrics sample in which it moved to the end of the backlog (events
 * read and acknowledged by Kafka), so neither the load generator nor process start-up
 * limits the figure.
 *   npm run bench:reader -- [--rows 1000000] [--burst 300000] [--runs 1]
 * Writes bench/results/latest.json (merged with other benches' fields).
 */
import { parseArgs } from 'node:util';
import { signalRecord } from '../services/cdc-reader/src/signal-listener.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { adminKafka } from '../scripts/support/kafka-security.js';
import { LoadDriver, Workload, benchTables, loadTables, preload, preloadFor } from './workload.js';
import { benchServerId, deleteRunTopics, MemorySampler, isMain, median, metric, peakRssMiB, sustainedRate, waitFor, writeResults } from './support.js';

export interface ReaderOptions {
  /** Citizens in the snapshotted table. */
  snapshotRows: number;
  /** Row changes of the mix per binlog run. */
  burstRows: number;
  /** Snapshot runs (the first at start, then ad-hoc re-snapshots) and binlog runs. */
  runs: number;
}

export interface ReaderRun {
  rows: number;
  transactions: number;
  generate_seconds: number;
  seconds: number;
  rows_per_s: number;
  rss_mib: number;
}

export interface ReaderFigures {
  snapshot_rows: number;
  /** From the first rows read to the last acknowledged by Kafka. */
  snapshot_seconds: number;
  snapshot_seconds_from_process_start: number;
  /** Median of the runs: the first snapshot at start, then ad-hoc re-snapshots. */
  snapshot_rows_per_s: number;
  snapshot_runs_rows_per_s: number[];
  snapshot_rss_mib: number;
  /** Median over the binlog runs. */
  reader_rows_per_s: number;
  runs: ReaderRun[];
  /** Peak RSS of every reader process of the benchmark. */
  rss_mib: number;
  peak_memory_mib: Record<string, number>;
}

export async function measureReader(o: ReaderOptions, log: (line: string) => void = console.log): Promise<ReaderFigures> {
  const run = new PipelineRun();
  await run.setUp();
  const driver = LoadDriver.open();
  const serverId = benchServerId();
  let reader: ServiceProcess | undefined;
  try {
    const env = { CITYSHARE_PIPELINE: run.writePipelineFile('reader-bench.yaml', { serverId, tables: benchTables(run) }) };
    log(`reader: loading ${o.snapshotRows.toLocaleString('en')} citizens`);
    await preload(run, { citizens: o.snapshotRows, taps: 0 });

    const memory = new MemorySampler();
    const started = Date.now();
    reader = run.service('cdc-reader', env);
    await reader.start({ until: 'alive' });
    const r = reader;
    const snap = await sustainedRate(
      async () => (await memory.sample(r), await metric(r, 'cityshare_reader_snapshot_rows_total')),
      async (v) => v >= o.snapshotRows && (await metric(r, 'cityshare_reader_queue_bytes')) === 0,
      3_600_000,
    );
    const fromStart = (Date.now() - started) / 1000;
    log(`reader: snapshot 1 of ${o.snapshotRows.toLocaleString('en')} rows in ${snap.seconds.toFixed(1)} s = ${Math.round(snap.rate).toLocaleString('en')} rows/s (${fromStart.toFixed(1)} s from process start), peak RSS ${peakRssMiB(reader.pid!)} MiB`);
    // Further runs: the operator's ad-hoc re-snapshot of the table (the signal `cdc snapshot` sends), same reader.
    const snapshotRates = [snap.rate];
    const kafka = adminKafka('bench');
    const producer = kafka.producer();
    await producer.connect();
    try {
      for (let i = 2; i <= o.runs; i++) {
        const base = await metric(r, 'cityshare_reader_snapshot_rows_total');
        const { topic, message } = signalRecord(run.keys, run.prefix, { action: 'snapshot', source: 'cityhub', tables: [`${run.civilDb}.citizens`], requestedBy: 'bench' });
        await producer.send({ topic, acks: -1, messages: [message] });
        const again = await sustainedRate(
          async () => (await memory.sample(r), await metric(r, 'cityshare_reader_snapshot_rows_total')),
          async (v) => v - base >= o.snapshotRows && (await metric(r, 'cityshare_reader_snapshot_running')) === 0 && (await metric(r, 'cityshare_reader_queue_bytes')) === 0,
          3_600_000,
        );
        snapshotRates.push(again.rate);
        log(`reader: snapshot ${i} (ad-hoc re-snapshot) in ${again.seconds.toFixed(1)} s = ${Math.round(again.rate).toLocaleString('en')} rows/s`);
      }
    } finally {
      await producer.disconnect();
    }
    const snapshotRss = peakRssMiB(reader.pid!);

    // Taps to purge, committed while the reader runs (not measured).
    const need = preloadFor(o.burstRows * o.runs);
    const tables = loadTables(run);
    const before = await metric(reader, 'cityshare_reader_events_total');
    await preload(run, { citizens: 0, taps: need.taps });
    await waitFor(async () => (await metric(r, 'cityshare_reader_events_total')) - before >= need.taps && (await metric(r, 'cityshare_reader_queue_bytes')) === 0, 600_000);
    const workload = new Workload(tables, { citizens: o.snapshotRows, taps: need.taps });

    const runs: ReaderRun[] = [];
    let rss = snapshotRss;
    for (let i = 0; i < o.runs; i++) {
      await reader.stop();
      const load = await driver.burst(workload, o.burstRows);
      log(`reader: run ${i + 1}: ${load.rows.toLocaleString('en')} row changes in ${load.transactions.toLocaleString('en')} transactions committed in ${load.seconds.toFixed(1)} s with the reader stopped`);
      // Metrics are served before the reader is ready (streaming): sampling starts while it connects.
      reader = run.service('cdc-reader', env);
      // Its counter starts at 0 and nothing streams before its health endpoint answers (polled
      // every 50 ms): events already counted at the first sample are timed from then.
      const polledFrom = Date.now();
      await reader.start({ until: 'alive' });
      const current = reader;
      const rate = await sustainedRate(
        async () => (await memory.sample(current), await metric(current, 'cityshare_reader_events_total')),
        async (v) => v >= load.rows && (await metric(current, 'cityshare_reader_queue_bytes')) === 0,
        1_800_000,
        100,
        { t: Math.max(polledFrom, Date.now() - 50), v: 0 },
      );
      const runRss = peakRssMiB(reader.pid!);
      rss = Math.max(rss, runRss);
      runs.push({ rows: load.rows, transactions: load.transactions, generate_seconds: load.seconds, seconds: rate.seconds, rows_per_s: Math.round(rate.rate), rss_mib: runRss });
      log(`reader: run ${i + 1}: binlog -> raw topic ${Math.round(rate.rate).toLocaleString('en')} rows/s (${(rate.last - rate.first).toLocaleString('en')} rows in ${rate.seconds.toFixed(1)} s), peak RSS ${runRss} MiB`);
    }
    return {
      snapshot_rows: o.snapshotRows,
      snapshot_seconds: snap.seconds,
      snapshot_seconds_from_process_start: fromStart,
      snapshot_rows_per_s: Math.round(median(snapshotRates)),
      snapshot_runs_rows_per_s: snapshotRates.map(Math.round),
      snapshot_rss_mib: snapshotRss,
      reader_rows_per_s: Math.round(median(runs.map((x) => x.rows_per_s))),
      runs,
      rss_mib: rss,
      peak_memory_mib: memory.peak,
    };
  } finally {
    await driver.close();
    await run.tearDown();
    await deleteRunTopics(run.prefix);
  }
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, burst: { type: 'string', default: '300000' }, runs: { type: 'string', default: '1' } } });
  const f = await measureReader({ snapshotRows: Number(args.rows), burstRows: Number(args.burst), runs: Number(args.runs) });
  console.log(`peak memory of the reader in MiB (sampled): ${JSON.stringify(f.peak_memory_mib)}`);
  writeResults({
    reader_rows_per_s: f.reader_rows_per_s,
    snapshot_rows_per_s: f.snapshot_rows_per_s,
    rss_mib: { cdc_reader: f.rss_mib },
    reader_bench: f,
  });
}
