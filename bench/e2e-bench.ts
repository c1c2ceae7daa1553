/**
 * End-to-end benchmark on the local stack: MariaDB commit to the health department's
 * PostgreSQL row, through reader, transformer (two departments: health, granted citizens
 * and bus-card taps, and the Haidian district office, citizens of its district) and the
 * health sink, under the smart-city mix of bench/workload.ts.
 *
 * Preloaded rows go through the pipeline first (snapshot; also warms it up). Then:
 * - saturation: a burst of `rows` row changes committed as fast as the source takes them;
 *   rows/s from the first commit until the sink has delivered every change;
 * - fixed rate: `rate` row changes/s for `seconds` s.
 * Latency is per row, for every inserted row (60% of the mix), from the commit time the
 * load side recorded to the poll of PostgreSQL that first saw the row (the probe of
 * bench/peer/latency-probe.ts through bench/latency.ts), so it is measured the same way
 * as for the Debezium peer. Each service's peak RSS (VmHWM).
 *   npm run bench:e2e -- [--rows 100000] [--rate 5000] [--seconds 30]
 * Writes bench/results/latest.json (merged with other benches' fields).
 */
import { parseArgs } from 'node:util';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';
import { burstSummary, measureE2ePhases, type CpuPerRow, steadySummary, windowed, type BurstSummary, type LatencySample, type StageWaits, type SteadySummary } from './latency.js';
import { LoadDriver, Workload, benchTables, loadTables, preload, preloadFor } from './workload.js';
import { benchServerId, deleteRunTopics, histogramTotals, isMain, metric, peakRssMiB, waitFor, writeResults } from './support.js';

export interface E2eOptions {
  /** Row changes of the saturation burst. */
  rows: number;
  /** Offered row changes per second of the fixed-rate phase. */
  rate: number;
  seconds: number;
}

export interface Quantiles {
  p50: number;
  p95: number;
  p99: number;
}

export interface E2eFigures {
  /** Saturation: burst row changes / (first commit to last delivery). */
  e2e_rows_per_s: number;
  burst: BurstSummary;
  /** At the fixed rate. */
  e2e_latency_ms: Quantiles;
  steady: SteadySummary;
  /** Per second of commit time in the fixed-rate phase: mean latency (as the probe reports it for the peer too) and max. */
  latency_series: Array<{ t_s: number; latency_ms: number; max_ms: number; rows: number }>;
  /** Per 0.5 s of the fixed-rate phase: p50 (latency_ms) and p99 of the rows committed in it. */
  latency_windows: Array<{ t_s: number; latency_ms: number; p99_ms: number; rows: number }>;
  rss_mib: { cdc_reader: number; transformer: number; sink: number };
  /** CPU microseconds per row change of each process taking part, at saturation and at the fixed rate (bench/cpu.ts). */
  cpu_us_per_row: CpuPerRow;
  /** Mean wait of each stage per batch at the fixed rate (its histograms). */
  stage_waits?: StageWaits;
  preloaded: { citizens: number; taps: number };
}

/** Per-row latency series of the fixed-rate phase; kept out of the returned figures (large). */
export type E2eResult = E2eFigures & { series: LatencySample[] };

const SINK_DELIVERED = 'cityshare_sink_end_to_end_latency_seconds_count';

export async function measureE2e(o: E2eOptions, log: (line: string) => void = console.log): Promise<E2eResult> {
  const run = new PipelineRun();
  await run.setUp();
  const driver = LoadDriver.open();
  const serverId = benchServerId();
  const services: ServiceProcess[] = [];
  try {
    const pipelineFile = run.writePipelineFile('e2e-bench.yaml', {
      serverId,
      tables: benchTables(run),
      departments: [
        {
          name: 'health',
          target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema },
          grants: [
            { table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', name: { mask: 'name' }, phone: { mask: 'phone' }, id_card: 'encrypt', birth_date: 'pass', district: 'pass' } },
            // Contact tracing: which card rode where and when; the card number only as a token.
            { table: `cityhub.${run.transportDb}.bus_card_taps`, columns: { id: 'pass', card_no: 'tokenize', route: 'pass', stop_name: 'pass', tapped_at: 'pass' } },
          ],
        },
        {
          name: 'haidian',
          target: { kind: 'postgres', url: stack.postgresUrl, schema: run.haidianPgSchema },
          grants: [{
            table: `cityhub.${run.civilDb}.citizens`,
            filter: 'district == "海淀"',
            columns: { id: 'pass', name: { mask: 'name' }, id_card: { tokenize: { domain: 'citizen' } }, phone: { mask: 'phone' }, birth_date: { mask: 'date_to_year' }, district: 'pass', address: { mask: 'address' } },
          }],
        },
      ],
    });
    const env = { CITYSHARE_PIPELINE: pipelineFile };
    const preloaded = preloadFor(o.rows + o.rate * o.seconds);
    preloaded.citizens = Math.max(preloaded.citizens, 20_000);
    await preload(run, preloaded);
    const reader = await run.start('cdc-reader', env);
    const transformer = await run.start('transformer', env);
    const sink = await run.start('sink', env);
    services.push(reader, transformer, sink);
    const delivered = () => metric(sink, SINK_DELIVERED);
    log(`e2e: ${(preloaded.citizens + preloaded.taps).toLocaleString('en')} preloaded rows through the pipeline (snapshot, warm-up)`);
    await waitFor(async () => (await delivered()) >= preloaded.citizens + preloaded.taps, 900_000);

    const workload = new Workload(loadTables(run), preloaded);

    const { burstLoad, burstSeconds, e2eRate, burstLatency, steadyLoad, steady, cpuPerRow, stageWaits } = await measureE2ePhases({
      driver, workload, pgSchema: run.pgSchema, rows: o.rows, rate: o.rate, seconds: o.seconds,
      log: (line) => log(`e2e: ${line}`),
      arrival: async () => {
        const base = await delivered();
        return (rows, timeoutMs) => waitFor(async () => (await delivered()) - base >= rows, timeoutMs);
      },
      stages: async () => ({
        'transformer batch wait': await histogramTotals(transformer, 'cityshare_transformer_batch_wait_seconds'),
        'transformer transaction': await histogramTotals(transformer, 'cityshare_transformer_transaction_seconds'),
        'sink batch wait': await histogramTotals(sink, 'cityshare_sink_batch_wait_seconds'),
      }),
    });

    const rss = { cdc_reader: peakRssMiB(reader.pid!), transformer: peakRssMiB(transformer.pid!), sink: peakRssMiB(sink.pid!) };
    log(`e2e: peak RSS MiB: ${JSON.stringify(rss)}`);
    return {
      e2e_rows_per_s: e2eRate,
      burst: burstSummary(burstLoad, burstSeconds, burstLatency),
      e2e_latency_ms: { p50: steady.p50, p95: steady.p95, p99: steady.p99 },
      steady: steadySummary(steadyLoad, steady),
      latency_series: steady.per_second,
      latency_windows: windowed(steady.series),
      rss_mib: rss,
      cpu_us_per_row: cpuPerRow,
      stage_waits: stageWaits,
      preloaded,
      series: steady.series,
    };
  } finally {
    await driver.close();
    await run.tearDown();
    await deleteRunTopics(run.prefix);
  }
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '100000' }, rate: { type: 'string', default: '5000' }, seconds: { type: 'string', default: '30' } } });
  const { series: _series, ...f } = await measureE2e({ rows: Number(args.rows), rate: Number(args.rate), seconds: Number(args.seconds) });
  writeResults({
    e2e_rows_per_s: f.e2e_rows_per_s,
    e2e_latency_ms: f.e2e_latency_ms,
    rss_mib: f.rss_mib,
    e2e_bench: f,
  });
}
