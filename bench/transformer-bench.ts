/**
 * Transformer benchmark on the local stack: the raw topics are filled once (a snapshot of
 * citizens and bus-card taps, then the smart-city mix of bench/workload.ts through the
 * binlog), then a transformer works through that backlog with 1, 3 and 10 departments,
 * each department granted both tables (citizens: name and birth date masked, phone
 * tokenized, ID card envelope-encrypted, the rest passed; taps: card number tokenized,
 * the rest passed), Avro-encoded, registry-checked and written in Kafka transactions.
 * Every pass uses new department names, so it starts again from the beginning of the raw
 * topics. Reports raw events/s, share records/s (from the first record out to the last)
 * and the transformer's peak RSS.
 *   npm run bench:transformer -- [--rows 100000] [--departments 1,3,10] [--runs 1]
 * Writes bench/results/latest.json (merged with other benches' fields).
 */
import { parseArgs } from 'node:util';
import { FileKeyring, keyNames } from '@cityshare/shared';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';
import { LoadDriver, Workload, benchTables, loadTables, preload, preloadFor } from './workload.js';
import { processCpuSeconds } from './cpu.js';
import { benchServerId, deleteRunTopics, MemorySampler, isMain, median, metric, peakRssMiB, sustainedRate, waitFor, writeResults } from './support.js';

export interface TransformerOptions {
  /** Raw change events in the backlog: about 40% citizens and 10% taps by snapshot, 50% the mix. */
  rows: number;
  departments: number[];
  /** Passes per department count (the backlog is filled once). */
  runs: number;
}

export interface TransformerPass {
  run: number;
  departments: number;
  events_per_s: number;
  records_per_s: number;
  seconds: number;
  peak_rss_mib: number;
  peak_memory_mib: Record<string, number>;
  /** Per cent of the raw messages department streams consumed that another stream had read already (prepared-frames.ts). */
  frames_shared: number;
  /** Per cent of the pass each department stream spent waiting on its Kafka transactions (cityshare_transformer_transaction_seconds), on average. */
  waiting_on_transactions: number;
  /** Share records per Kafka transaction, on average. */
  records_per_transaction: number;
  /** CPU microseconds (all threads of the transformer process) per share record, from its readiness to its last record: steadier than records/s on a shared machine. */
  cpu_us_per_record: number;
}

export interface TransformerFigures {
  raw_events: number;
  /** Median records/s per department count, keyed d1, d3, d10. */
  transformer_records_per_s: Record<string, number>;
  passes: TransformerPass[];
  rss_mib: number;
}

export async function measureTransformer(o: TransformerOptions, log: (line: string) => void = console.log): Promise<TransformerFigures> {
  const run = new PipelineRun();
  await run.setUp();
  const driver = LoadDriver.open();
  const serverId = benchServerId();
  try {
    const readerEnv = { CITYSHARE_PIPELINE: run.writePipelineFile('transformer-bench-reader.yaml', { serverId, tables: benchTables(run) }) };
    const mixRows = Math.round(o.rows / 2);
    const need = preloadFor(mixRows);
    const snapshot = { citizens: Math.max(Math.round(o.rows * 0.4), need.citizens), taps: Math.max(Math.round(o.rows * 0.1), need.taps) };
    await preload(run, snapshot);
    const reader = await run.start('cdc-reader', readerEnv);
    await waitFor(async () => (await metric(reader, 'cityshare_reader_snapshot_rows_total')) >= snapshot.citizens + snapshot.taps && (await metric(reader, 'cityshare_reader_queue_bytes')) === 0, 1_800_000);
    const load = await driver.burst(new Workload(loadTables(run), snapshot), mixRows);
    await waitFor(async () => (await metric(reader, 'cityshare_reader_events_total')) >= load.rows && (await metric(reader, 'cityshare_reader_queue_bytes')) === 0, 1_800_000);
    const rawEvents = snapshot.citizens + snapshot.taps + load.rows;
    await reader.stop();
    log(`transformer: raw topics hold ${rawEvents.toLocaleString('en')} change events (${snapshot.citizens + snapshot.taps} by snapshot, ${load.rows} of the mix in ${load.transactions} transactions)`);

    const passes: TransformerPass[] = [];
    for (let r = 1; r <= o.runs; r++) {
      for (const departments of o.departments) {
        // Names unique per pass: new consumer groups, share topics and transactional ids.
        const names = Array.from({ length: departments }, (_, i) => `b${r}_${departments}_d${i + 1}`);
        FileKeyring.ensure(run.keyringFile, names.flatMap((n) => [keyNames.department(n), keyNames.ownTokens(n)]));
        const pipelineFile = run.writePipelineFile(`transformer-bench-${r}-${departments}.yaml`, {
          serverId,
          tables: benchTables(run),
          departments: names.map((name) => ({
            name,
            target: { kind: 'postgres', url: stack.postgresUrl, schema: `${run.id}_${name}` },
            grants: [
              {
                table: `cityhub.${run.civilDb}.citizens`,
                columns: { id: 'pass', name: { mask: 'name' }, phone: 'tokenize', id_card: 'encrypt', birth_date: { mask: 'date_to_year' }, district: 'pass', registered_at: 'pass' },
              },
              {
                table: `cityhub.${run.transportDb}.bus_card_taps`,
                columns: { id: 'pass', card_no: 'tokenize', route: 'pass', stop_name: 'pass', tapped_at: 'pass', fare: 'pass' },
              },
            ],
          })),
        });
        const memory = new MemorySampler();
        const transformer = await run.start('transformer', { CITYSHARE_PIPELINE: pipelineFile });
        const cpuAtStart = processCpuSeconds(transformer.pid!);
        const expected = rawEvents * departments;
        const rate = await sustainedRate(
          async () => (await memory.sample(transformer), await metric(transformer, 'cityshare_transformer_records_out_total')),
          async (v) => v >= expected,
          1_800_000,
        );
        const cpuSeconds = processCpuSeconds(transformer.pid!) - cpuAtStart;
        const frames = { read: await metric(transformer, 'cityshare_transformer_frame_reads_total{outcome="read"'), shared: await metric(transformer, 'cityshare_transformer_frame_reads_total{outcome="shared"') };
        const transactions = { seconds: await metric(transformer, 'cityshare_transformer_transaction_seconds_sum'), count: await metric(transformer, 'cityshare_transformer_transaction_seconds_count') };
        const pass: TransformerPass = {
          run: r,
          departments,
          frames_shared: frames.read + frames.shared > 0 ? Math.round((frames.shared / (frames.read + frames.shared)) * 1000) / 10 : 0,
          events_per_s: Math.round(rate.rate / departments),
          records_per_s: Math.round(rate.rate),
          seconds: rate.seconds,
          waiting_on_transactions: Math.round((transactions.seconds / (rate.seconds * departments)) * 1000) / 10,
          records_per_transaction: Math.round(expected / Math.max(1, transactions.count)),
          cpu_us_per_record: Math.round((cpuSeconds * 1e6) / expected),
          peak_rss_mib: peakRssMiB(transformer.pid!),
          peak_memory_mib: memory.peak,
        };
        await transformer.stop();
        passes.push(pass);
        log(`transformer: run ${r}, ${departments} department(s): ${pass.events_per_s.toLocaleString('en')} events/s, ${pass.records_per_s.toLocaleString('en')} share records/s (${pass.cpu_us_per_record} µs of CPU each), peak RSS ${pass.peak_rss_mib} MiB, ${pass.frames_shared}% of frames read once for several departments, ${pass.waiting_on_transactions}% of the time waiting on transactions (${pass.records_per_transaction} records each)`);
      }
    }
    return {
      raw_events: rawEvents,
      transformer_records_per_s: Object.fromEntries(o.departments.map((d) => [`d${d}`, Math.round(median(passes.filter((p) => p.departments === d).map((p) => p.records_per_s)))])),
      passes,
      rss_mib: Math.max(...passes.map((p) => p.peak_rss_mib)),
    };
  } finally {
    await driver.close();
    await run.tearDown();
    await deleteRunTopics(run.prefix);
    // The per-pass department schemas were never written to (no sink runs).
  }
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '100000' }, departments: { type: 'string', default: '1,3,10' }, runs: { type: 'string', default: '1' } } });
  const f = await measureTransformer({ rows: Number(args.rows), departments: args.departments.split(',').map(Number), runs: Number(args.runs) });
  writeResults({
    transformer_records_per_s: f.transformer_records_per_s,
    rss_mib: { transformer: f.rss_mib },
    transformer_bench: f,
  });
}
