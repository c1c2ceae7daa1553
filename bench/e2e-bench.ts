/**
 * End-to-end benchmark on the local stack: MariaDB commit to the health department's
 * PostgreSQL row, through reader, transformer (two departments: health and the Haidian
 * district office) and the health sink. Measures a burst (rows/s until every row is in
 * PostgreSQL) and the latency at a steady rate (p50/p99 from the sink's
 * commit-to-confirmation histogram), with each service's peak RSS.
 *   npm run bench:e2e -- [--rows 100000] [--rate 5000] [--seconds 20]
 * Writes bench/results/latest.json (merged with other benches' fields).
 */
import { parseArgs } from 'node:util';
import { PipelineRun } from '../test/support/pipeline-run.js';
import type { ServiceProcess } from '../test/support/service-process.js';
import { peakRssMiB, waitFor, writeResults } from './support.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '100000' }, rate: { type: 'string', default: '5000' }, seconds: { type: 'string', default: '20' } } });
const ROWS = Number(args.rows);
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);

const row = (id: number) => `(${id}, '市民${id}', '110101199001010000', '13800000000', '1990-01-01', '${id % 4 === 0 ? '海淀' : '东城'}', '北京市东城区王府井大街${id}号', NOW(6))`;

/** Cumulative bucket counts of the sink's latency histogram (upper bound in seconds -> count). */
async function latencyBuckets(sink: ServiceProcess): Promise<Map<number, number>> {
  const buckets = new Map<number, number>();
  for (const line of (await sink.metrics()).split('\n')) {
    const m = /^cityshare_sink_end_to_end_latency_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)$/.exec(line);
    if (m) buckets.set(m[1] === '+Inf' ? Infinity : Number(m[1]), (buckets.get(m[1] === '+Inf' ? Infinity : Number(m[1])) ?? 0) + Number(m[2]));
  }
  return buckets;
}

/** The bucket bound under which `q` of the observations fall (histogram resolution). */
function quantile(before: Map<number, number>, after: Map<number, number>, q: number): number {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  for (const b of bounds) if ((after.get(b) ?? 0) - (before.get(b) ?? 0) >= q * total) return b;
  return Infinity;
}

const run = new PipelineRun();
await run.setUp();
try {
  const reader = await run.start('cdc-reader', { READER_SNAPSHOT: 'never' });
  const transformer = await run.start('transformer');
  const sink = await run.start('sink');
  const count = async () => Number((await run.pg.query(`SELECT count(*) AS n FROM "${run.pgSchema}".citizens`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n);

  console.log(`burst: ${ROWS} rows in transactions of 5,000`);
  const started = Date.now();
  for (let id = 1; id <= ROWS; id += 5000) {
    await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens VALUES ${Array.from({ length: Math.min(5000, ROWS - id + 1) }, (_, i) => row(id + i)).join(', ')}`);
  }
  await waitFor(async () => (await count()) >= ROWS, 1_800_000);
  const burstSeconds = (Date.now() - started) / 1000;
  console.log(`burst: ${ROWS} rows from MariaDB to PostgreSQL in ${burstSeconds.toFixed(1)} s = ${Math.round(ROWS / burstSeconds)} rows/s`);

  console.log(`steady: ${RATE} rows/s for ${SECONDS} s`);
  const before = await latencyBuckets(sink);
  const tick = 100;
  const perTick = Math.round((RATE * tick) / 1000);
  let next = ROWS + 1;
  const steadyStart = Date.now();
  for (let t = 0; t < (SECONDS * 1000) / tick; t++) {
    const due = steadyStart + t * tick;
    if (Date.now() < due) await new Promise((r) => setTimeout(r, due - Date.now()));
    await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens VALUES ${Array.from({ length: perTick }, (_, i) => row(next + i)).join(', ')}`);
    next += perTick;
  }
  const achieved = Math.round((next - ROWS - 1) / ((Date.now() - steadyStart) / 1000));
  await waitFor(async () => (await count()) >= next - 1, 600_000);
  const after = await latencyBuckets(sink);
  const p50 = quantile(before, after, 0.5);
  const p99 = quantile(before, after, 0.99);
  console.log(`steady: ${achieved} rows/s offered; latency MariaDB commit -> PostgreSQL commit p50 <= ${p50} s, p99 <= ${p99} s (histogram bounds)`);

  const rss = { cdc_reader: peakRssMiB(reader.pid!), transformer: peakRssMiB(transformer.pid!), sink: peakRssMiB(sink.pid!) };
  console.log(`peak RSS MiB: ${JSON.stringify(rss)}`);
  writeResults({
    e2e_rows_per_s: Math.round(ROWS / burstSeconds),
    p50_ms: p50 * 1000,
    p99_ms: p99 * 1000,
    rss_mib: rss,
    e2e_bench: { rows: ROWS, burst_seconds: burstSeconds, steady_rate_offered: achieved, steady_seconds: SECONDS, departments_in_transformer: 2 },
  });
} finally {
  await run.tearDown();
}
