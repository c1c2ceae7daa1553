/**
 * cdc-reader benchmark on the local stack: snapshot rows/s of a large table and
 * binlog-to-raw-topic rows/s of a burst, with the reader's peak RSS (VmHWM).
 *   npm run bench:reader -- [--rows 1000000] [--burst 500000]
 * Writes bench/results/latest.json (merged with other benches' fields).
 */
import { parseArgs } from 'node:util';
import { PipelineRun } from '../test/support/pipeline-run.js';
import { MemorySampler, fillCitizens, metric, peakRssMiB, waitFor, writeResults } from './support.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, burst: { type: 'string', default: '500000' } } });
const ROWS = Number(args.rows);
const BURST = Math.min(Number(args.burst), ROWS); // the burst updates existing rows

async function main(): Promise<void> {
  const run = new PipelineRun();
  await run.setUp();
  const table = `\`${run.civilDb}\`.citizens`;
  try {
    console.log(`loading ${ROWS} citizens`);
    for (let i = 1; i <= ROWS; i += 1_000_000) await run.source.query(fillCitizens(table, i, Math.min(1_000_000, ROWS - i + 1)));

    const memory = new MemorySampler();
    const started = Date.now();
    const reader = await run.start('cdc-reader');
    await waitFor(async () => (await memory.sample(reader), await metric(reader, 'cityshare_reader_snapshot_rows_total')) >= ROWS && (await metric(reader, 'cityshare_reader_queue_bytes')) === 0, 1_800_000);
    const snapshotSeconds = (Date.now() - started) / 1000;
    const snapshotRss = peakRssMiB(reader.pid!);
    console.log(`snapshot: ${ROWS} rows in ${snapshotSeconds.toFixed(1)} s = ${Math.round(ROWS / snapshotSeconds)} rows/s, peak RSS ${snapshotRss} MiB`);

    const before = await metric(reader, 'cityshare_reader_events_total');
    const burstStart = Date.now();
    // Transactions of 100,000 updated rows each (full before and after images).
    for (let i = 0; i < BURST; i += 100_000) {
      await run.source.query(`UPDATE ${table} SET district = '西城', phone = CONCAT('139', LPAD(id, 8, '0')) WHERE id BETWEEN ${i + 1} AND ${Math.min(i + 100_000, BURST)}`);
    }
    await waitFor(async () => (await memory.sample(reader), await metric(reader, 'cityshare_reader_events_total')) - before >= BURST && (await metric(reader, 'cityshare_reader_queue_bytes')) === 0, 1_800_000);
    const streamSeconds = (Date.now() - burstStart) / 1000;
    const streamRss = peakRssMiB(reader.pid!);
    console.log(`binlog -> raw topic: ${BURST} rows in ${streamSeconds.toFixed(1)} s = ${Math.round(BURST / streamSeconds)} rows/s, peak RSS ${streamRss} MiB`);

    console.log(`peak memory of the reader in MiB (sampled): ${JSON.stringify(memory.peak)}`);
    writeResults({
      reader_rows_per_s: Math.round(BURST / streamSeconds),
      snapshot_rows_per_s: Math.round(ROWS / snapshotSeconds),
      rss_mib: { cdc_reader: Math.max(snapshotRss, streamRss) },
      reader_bench: { rows: ROWS, burst: BURST, snapshot_seconds: snapshotSeconds, stream_seconds: streamSeconds, peak_memory_mib: memory.peak },
    });
  } finally {
    await run.tearDown();
  }
}

await main();
