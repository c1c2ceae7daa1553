/**
 * Transformer benchmark on the local stack: change events of `citizens` through every
 * department's grant (name and birth date masked, phone tokenized, ID card encrypted,
 * the rest passed) and Avro encoding into share topics, in Kafka transactions; with 1, 3
 * and 10 departments. Reports raw events/s, share records/s and the transformer's peak RSS.
 *   npm run bench:transformer -- [--rows 200000] [--departments 1,3,10]
 * Writes bench/results/latest.json (merged with other benches' fields).
 */
import { parseArgs } from 'node:util';
import { FileKeyring } from '@cityshare/shared';
import { CITIZEN_CLASSES, PipelineRun } from '../test/support/pipeline-run.js';
import { stack } from '../test/support/stack.js';
import { MemorySampler, fillCitizens, metric, peakRssMiB, waitFor, writeResults } from './support.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '200000' }, departments: { type: 'string', default: '1,3,10' } } });
const ROWS = Number(args.rows);

interface Result {
  departments: number;
  events_per_s: number;
  records_per_s: number;
  seconds: number;
  peak_rss_mib: number;
  peak_memory_mib: Record<string, number>;
}

async function measure(departments: number): Promise<Result> {
  const run = new PipelineRun();
  await run.setUp();
  try {
    const names = Array.from({ length: departments }, (_, i) => `dept${i + 1}`);
    FileKeyring.ensure(run.keyringFile, names.map((n) => `department:${n}`));
    const pipelineFile = run.writePipelineFile('bench-pipeline.yaml', {
      serverId: 5501,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: names.map((name) => ({
        name,
        target: { kind: 'postgres', url: stack.postgresUrl, schema: `${run.id}_${name}` },
        grants: [{
          table: `cityhub.${run.civilDb}.citizens`,
          columns: { id: 'pass', name: { mask: 'name' }, phone: 'tokenize', id_card: 'encrypt', birth_date: { mask: 'date_to_year' }, district: 'pass', registered_at: 'pass' },
        }],
      })),
    });
    const env = { CITYSHARE_PIPELINE: pipelineFile };
    await run.source.query(fillCitizens(`\`${run.civilDb}\`.citizens`, 1, ROWS));
    const reader = await run.start('cdc-reader', env);
    await waitFor(async () => (await metric(reader, 'cityshare_reader_snapshot_rows_total')) >= ROWS && (await metric(reader, 'cityshare_reader_queue_bytes')) === 0, 1_800_000);

    // The raw topic now holds every event: the transformer works through the backlog.
    const memory = new MemorySampler();
    const transformer = await run.start('transformer', env);
    const started = Date.now();
    await waitFor(async () => (await memory.sample(transformer), await metric(transformer, 'cityshare_transformer_records_out_total')) >= ROWS * departments, 1_800_000);
    const seconds = (Date.now() - started) / 1000;
    const result = {
      departments,
      events_per_s: Math.round(ROWS / seconds),
      records_per_s: Math.round((ROWS * departments) / seconds),
      seconds,
      peak_rss_mib: peakRssMiB(transformer.pid!),
      peak_memory_mib: memory.peak,
    };
    console.log(`${departments} department(s): ${ROWS} events in ${seconds.toFixed(1)} s = ${result.events_per_s} events/s, ${result.records_per_s} share records/s, peak RSS ${result.peak_rss_mib} MiB`);
    return result;
  } finally {
    await run.tearDown();
  }
}

const results: Result[] = [];
for (const n of args.departments.split(',').map(Number)) results.push(await measure(n));
writeResults({
  transformer_records_per_s: Object.fromEntries(results.map((r) => [`departments_${r.departments}`, r.records_per_s])),
  rss_mib: { transformer: Math.max(...results.map((r) => r.peak_rss_mib)) },
  transformer_bench: { rows: ROWS, runs: results },
});
