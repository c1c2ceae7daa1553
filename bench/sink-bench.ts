/**
 * Sink benchmark on the local stack: one department's share topics are filled once (a
 * snapshot of citizens and bus-card taps, then the smart-city mix of bench/workload.ts
 * through the binlog: inserts, a bulk update and single corrections of citizens, citizens
 * removed, taps purged), by the reader and the transformer, which are then stopped. The
 * department is granted both tables as bench/soak.ts grants them (name and phone masked,
 * ID card encrypted: a bytea column; card number tokenized; the rest in clear, timestamps
 * included). Then ONLY the sink runs, into the department's PostgreSQL, from the beginning
 * of the share topics: share records delivered per second, from the first row applied to the
 * last (cityshare_sink_end_to_end_latency_seconds_count counts each change once its batch is
 * committed), and the sink's peak RSS (VmHWM).
 *
 * A fast wrong result does not count: after each pass the department must hold exactly what
 * the source holds (bench/department-digest.ts: rows and a digest of keys and clear columns
 * per table), and the verifier service's first round (reader and transformer started again
 * for it, with nothing left to do) must find no row missing, extra or different, protected
 * columns included. Otherwise the bench fails.
 *
 * Every pass after the first starts the sink again from the beginning of the same share
 * topics, into an emptied schema (the department's consumer group deleted).
 *   npm run bench:sink -- [--rows 200000] [--runs 1] [--profile DIR]
 * --profile writes the sink's CPU profile (node --cpu-prof) of each pass into DIR.
 * Writes bench/results/latest.json (merged with other benches' fields).
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import { adminKafka } from '../scripts/support/kafka-security.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { checkDepartment, checkedDepartment, describeCheck, type DepartmentCheck } from './department-digest.js';
import { LoadDriver, Workload, benchTables, loadTables, preload, preloadFor } from './workload.js';
import { MemorySampler, benchServerId, deleteRunTopics, isMain, median, metric, peakRssMiB, sustainedRate, waitFor, writeResults } from './support.js';

export interface SinkOptions {
  /** Share records in the topics: about 40% citizens and 10% taps by snapshot, 50% the mix. */
  rows: number;
  /** Sink passes over the same filled topics. */
  runs: number;
  /** A folder for the sink's CPU profile of each pass. */
  profileDir?: string | undefined;
}

export interface SinkPass {
  run: number;
  rows_per_s: number;
  seconds: number;
  peak_rss_mib: number;
  peak_memory_mib: Record<string, number>;
  applied: number;
  stale: number;
  department: DepartmentCheck[];
  verifier: { compared: number; divergent: number; unsettled: number };
}

export interface SinkFigures {
  share_records: number;
  /** Median over the passes. */
  sink_rows_per_s: number;
  passes: SinkPass[];
  rss_mib: number;
  /** The goal of issue 22: sink into PostgreSQL alone >= 40,000 rows/s, < 256 MiB. */
  target_met: boolean;
}

const SINK_DELIVERED = 'cityshare_sink_end_to_end_latency_seconds_count';

export async function measureSink(o: SinkOptions, log: (line: string) => void = console.log): Promise<SinkFigures> {
  const run = new PipelineRun();
  await run.setUp();
  const driver = LoadDriver.open();
  const running: ServiceProcess[] = [];
  const stopAll = async () => {
    await Promise.all(running.map((s) => s.stop()));
    running.length = 0;
  };
  try {
    const pipelineFile = run.writePipelineFile('sink-bench.yaml', {
      serverId: benchServerId(),
      tables: benchTables(run),
      departments: [checkedDepartment(run)],
    });
    const env = { CITYSHARE_PIPELINE: pipelineFile };

    // The backlog: snapshot, then the mix, through reader and transformer.
    const mixRows = Math.round(o.rows / 2);
    const need = preloadFor(mixRows);
    const snapshot = { citizens: Math.max(Math.round(o.rows * 0.4), need.citizens), taps: Math.max(Math.round(o.rows * 0.1), need.taps) };
    await preload(run, snapshot);
    const reader = await run.start('cdc-reader', env);
    const transformer = await run.start('transformer', env);
    running.push(reader, transformer);
    await waitFor(async () => (await metric(reader, 'cityshare_reader_snapshot_rows_total')) >= snapshot.citizens + snapshot.taps && (await metric(reader, 'cityshare_reader_queue_bytes')) === 0, 1_800_000);
    const load = await driver.burst(new Workload(loadTables(run), snapshot), mixRows);
    await waitFor(async () => (await metric(reader, 'cityshare_reader_events_total')) >= load.rows && (await metric(reader, 'cityshare_reader_queue_bytes')) === 0, 1_800_000);
    const rawEvents = snapshot.citizens + snapshot.taps + load.rows;
    // One department without a filter: one share record per raw change event.
    await waitFor(async () => (await metric(transformer, 'cityshare_transformer_records_out_total')) >= rawEvents, 1_800_000);
    await stopAll();
    log(`sink: share topics hold ${rawEvents.toLocaleString('en')} records (${snapshot.citizens + snapshot.taps} by snapshot, ${load.rows} of the mix in ${load.transactions} transactions)`);

    const passes: SinkPass[] = [];
    for (let r = 1; r <= o.runs; r++) {
      if (r > 1) await startAfresh(run);
      const memory = new MemorySampler();
      const sink = await withProfile(o.profileDir, () => run.start('sink', env));
      running.push(sink);
      const rate = await sustainedRate(
        async () => (await memory.sample(sink), await metric(sink, SINK_DELIVERED)),
        async (v) => v >= rawEvents,
        1_800_000,
      );
      const applied = await metric(sink, 'cityshare_sink_rows_applied_total');
      const stale = await metric(sink, 'cityshare_sink_version_guard_skips_total');
      const peak = peakRssMiB(sink.pid!);

      // Correct, or it does not count: the department against the source, then the verifier's round.
      const department = await checkDepartment(run, run.pg, run.pgSchema);
      for (const c of department) log(`sink: run ${r}: ${describeCheck(c)}`);
      const verifier = await verify(run, env, running);
      log(`sink: run ${r}: verifier compared ${verifier.compared.toLocaleString('en')} rows, ${verifier.divergent} divergent, ${verifier.unsettled} unsettled`);
      await stopAll();
      if (!department.every((c) => c.equal) || verifier.divergent + verifier.unsettled > 0) {
        throw new Error(`sink bench, run ${r}: the department does not hold what the source holds; the rate (${Math.round(rate.rate)} rows/s) does not count`);
      }

      const pass: SinkPass = { run: r, rows_per_s: Math.round(rate.rate), seconds: rate.seconds, peak_rss_mib: peak, peak_memory_mib: memory.peak, applied, stale, department, verifier };
      passes.push(pass);
      log(`sink: run ${r}: ${pass.rows_per_s.toLocaleString('en')} rows/s (${rawEvents.toLocaleString('en')} share records in ${pass.seconds.toFixed(1)} s; ${applied.toLocaleString('en')} applied, ${stale.toLocaleString('en')} stale), peak RSS ${peak} MiB`);
    }
    const rowsPerS = Math.round(median(passes.map((p) => p.rows_per_s)));
    const rss = Math.max(...passes.map((p) => p.peak_rss_mib));
    const met = rowsPerS >= 40_000 && rss < 256;
    log(`sink: median ${rowsPerS.toLocaleString('en')} rows/s, peak RSS ${rss} MiB; target (>= 40,000 rows/s, < 256 MiB): ${met ? 'met' : 'NOT met'}`);
    return { share_records: rawEvents, sink_rows_per_s: rowsPerS, passes, rss_mib: rss, target_met: met };
  } finally {
    await stopAll();
    await driver.close();
    await run.tearDown();
    await deleteRunTopics(run.prefix);
  }
}

/** The department emptied and its consumer group deleted: the next sink reads the share topics from their beginning. */
async function startAfresh(run: PipelineRun): Promise<void> {
  await run.pg.query(`DROP SCHEMA IF EXISTS "${run.pgSchema}" CASCADE`);
  const admin = adminKafka('sink-bench').admin();
  await admin.connect();
  try {
    await admin.deleteGroups([`${run.prefix}.sink.health`]);
  } finally {
    await admin.disconnect();
  }
}

/** Starts a service with node's --cpu-prof into `dir` when given (ServiceProcess reads CITYSHARE_CPU_PROF at start). */
async function withProfile<T>(dir: string | undefined, start: () => Promise<T>): Promise<T> {
  if (!dir) return start();
  process.env.CITYSHARE_CPU_PROF = resolve(dir);
  try {
    return await start();
  } finally {
    delete process.env.CITYSHARE_CPU_PROF;
  }
}

/**
 * The verifier service's first round over the department, with the reader and transformer
 * running again (the verifier waits for the pipeline to have delivered up to the source's
 * position; they have nothing left to do). Started services join `running`.
 */
async function verify(run: PipelineRun, env: NodeJS.ProcessEnv, running: ServiceProcess[]): Promise<{ compared: number; divergent: number; unsettled: number }> {
  running.push(await run.start('cdc-reader', env), await run.start('transformer', env));
  const verifier = await run.start('verifier', { ...env, VERIFY_INTERVAL_MS: '3600000' });
  running.push(verifier);
  const tablesDone = async () => (await verifier.metrics()).split('\n').filter((l) => l.startsWith('cityshare_verify_last_run_timestamp_seconds{') && Number(l.split(' ').pop()) > 0).length;
  const failures = () => metric(verifier, 'cityshare_verify_failures_total');
  await waitFor(async () => (await tablesDone()) >= 2 || (await failures()) > 0, 900_000);
  if ((await failures()) > 0) throw new Error(`sink bench: the verification failed; see ${verifier.logFile}`);
  return {
    compared: await metric(verifier, 'cityshare_verify_rows_compared_total'),
    divergent: await metric(verifier, 'cityshare_verify_divergent_rows'),
    unsettled: await metric(verifier, 'cityshare_verify_unsettled_rows'),
  };
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '200000' }, runs: { type: 'string', default: '1' }, profile: { type: 'string' } } });
  const f = await measureSink({ rows: Number(args.rows), runs: Number(args.runs), profileDir: args.profile });
  writeResults({
    sink_rows_per_s: f.sink_rows_per_s,
    rss_mib: { sink: f.rss_mib },
    sink_bench: f,
  });
}
