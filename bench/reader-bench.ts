/**
 * cdc-reader benchmark on the local stack: snapshot rows/s of a large table and
 * binlog-to-raw-topic rows/s of a burst, with the reader's peak RSS (VmHWM).
 *   npm run bench:reader -- [--rows 1000000] [--burst 500000]
 * Writes bench/results/latest.json (merged with other benches' fields).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { PipelineRun } from '../test/support/pipeline-run.js';
import type { ServiceProcess } from '../test/support/service-process.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, burst: { type: 'string', default: '500000' } } });
const ROWS = Number(args.rows);
const BURST = Math.min(Number(args.burst), ROWS); // the burst updates existing rows

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1] ?? 0) / 1024);
}

async function metric(svc: ServiceProcess, name: string): Promise<number> {
  const text = await svc.metrics();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').pop());
  return sum;
}

/** Peak memory of the reader by kind (V8 heap, Buffers outside it), sampled while waiting. */
const peakMemory: Record<string, number> = {};
async function sampleMemory(svc: ServiceProcess): Promise<void> {
  const text = await svc.metrics();
  for (const name of ['cityshare_nodejs_heap_size_total_bytes', 'cityshare_nodejs_heap_size_used_bytes', 'cityshare_nodejs_external_memory_bytes']) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text);
    const kind = name.replace(/^cityshare_nodejs_|_bytes$/g, '');
    if (m) peakMemory[kind] = Math.max(peakMemory[kind] ?? 0, Math.round(Number(m[1]) / 2 ** 20));
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('benchmark step timed out');
    await new Promise((r) => setTimeout(r, 500));
  }
}

const fill = (table: string, from: number, count: number) =>
  `INSERT INTO ${table} (id, name, id_card, phone, birth_date, district, address, registered_at)
   SELECT seq, CONCAT('市民', seq), CONCAT('1101011990', LPAD(seq MOD 100000000, 8, '0')), CONCAT('138', LPAD(seq MOD 100000000, 8, '0')),
          '1990-01-01' + INTERVAL (seq MOD 20000) DAY, ELT(1 + seq MOD 4, '东城', '海淀', '朝阳', '浦东'),
          CONCAT('北京市海淀区中关村大街', seq, '号'), '2024-01-01 00:00:00.000000' + INTERVAL seq SECOND
   FROM ${table.split(".")[0]}.seq_${from}_to_${from + count - 1}`;

async function main(): Promise<void> {
  const run = new PipelineRun();
  await run.setUp();
  const table = `\`${run.civilDb}\`.citizens`;
  try {
    console.log(`loading ${ROWS} citizens`);
    for (let i = 1; i <= ROWS; i += 1_000_000) await run.source.query(fill(table, i, Math.min(1_000_000, ROWS - i + 1)));

    const started = Date.now();
    const reader = await run.start('cdc-reader');
    await waitFor(async () => (await sampleMemory(reader), await metric(reader, 'cityshare_reader_snapshot_rows_total')) >= ROWS && (await metric(reader, 'cityshare_reader_queue_bytes')) === 0, 1_800_000);
    const snapshotSeconds = (Date.now() - started) / 1000;
    const snapshotRss = peakRssMiB(reader.pid!);
    console.log(`snapshot: ${ROWS} rows in ${snapshotSeconds.toFixed(1)} s = ${Math.round(ROWS / snapshotSeconds)} rows/s, peak RSS ${snapshotRss} MiB`);

    const before = await metric(reader, 'cityshare_reader_events_total');
    const burstStart = Date.now();
    // Transactions of 100,000 updated rows each (full before and after images).
    for (let i = 0; i < BURST; i += 100_000) {
      await run.source.query(`UPDATE ${table} SET district = '西城', phone = CONCAT('139', LPAD(id, 8, '0')) WHERE id BETWEEN ${i + 1} AND ${Math.min(i + 100_000, BURST)}`);
    }
    await waitFor(async () => (await sampleMemory(reader), await metric(reader, 'cityshare_reader_events_total')) - before >= BURST && (await metric(reader, 'cityshare_reader_queue_bytes')) === 0, 1_800_000);
    const streamSeconds = (Date.now() - burstStart) / 1000;
    const streamRss = peakRssMiB(reader.pid!);
    console.log(`binlog -> raw topic: ${BURST} rows in ${streamSeconds.toFixed(1)} s = ${Math.round(BURST / streamSeconds)} rows/s, peak RSS ${streamRss} MiB`);

    console.log(`peak memory of the reader in MiB (sampled): ${JSON.stringify(peakMemory)}`);
    mkdirSync('bench/results', { recursive: true });
    const file = 'bench/results/latest.json';
    const previous = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
    writeFileSync(file, JSON.stringify({
      ...previous,
      date: new Date().toISOString(),
      reader_rows_per_s: Math.round(BURST / streamSeconds),
      snapshot_rows_per_s: Math.round(ROWS / snapshotSeconds),
      rss_mib: { ...previous.rss_mib, cdc_reader: Math.max(snapshotRss, streamRss) },
      reader_bench: { rows: ROWS, burst: BURST, snapshot_seconds: snapshotSeconds, stream_seconds: streamSeconds, peak_memory_mib: peakMemory },
    }, null, 2) + '\n');
    console.log(`wrote ${file}`);
  } finally {
    await run.tearDown();
  }
}

await main();
