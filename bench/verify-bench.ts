/**
 * Verify benchmark on the local stack: a department holding a clean copy of policy(source) of
 * a `citizens` table of N rows (delivered by the pipeline: masks, tokens, an encrypted column),
 * then the verifier service's first round (what `cdc verify` does, in the service's bundle):
 * rows compared per second, its peak RSS (VmHWM), and the load it put on the source (queries,
 * rows read), from its metrics.
 *   npm run bench:verify -- [--rows 1000000] [--runs 2]
 * Writes bench/results/latest.json (merged with other benches' fields).
 */
import { parseArgs } from 'node:util';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';
import { preload } from './workload.js';
import { benchServerId, isMain, median, metric, peakRssMiB, waitFor, writeResults } from './support.js';

export interface VerifyFigures {
  verify_rows: number;
  /** Median over the runs: keys compared per second of the table's verification. */
  verify_rows_per_s: number;
  verify_runs_rows_per_s: number[];
  verify_rss_mib: number;
  /** What one run asked of the source. */
  verify_source_queries: number;
  verify_source_rows_read: number;
}

export async function measureVerify(o: { rows: number; runs: number }, log: (line: string) => void = console.log): Promise<VerifyFigures> {
  const run = new PipelineRun();
  await run.setUp();
  try {
    const file = run.writePipelineFile('verify-bench.yaml', {
      serverId: benchServerId(),
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: [{
        name: 'health',
        target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema },
        grants: [{ table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', name: { mask: 'name' }, phone: { mask: 'phone' }, id_card: 'encrypt', birth_date: 'pass', district: 'pass', address: 'tokenize', registered_at: 'pass' } }],
      }],
    });
    const env = { CITYSHARE_PIPELINE: file };
    log(`verify: loading ${o.rows.toLocaleString('en')} citizens and delivering them to the department`);
    await preload(run, { citizens: o.rows, taps: 0 });
    await run.start('cdc-reader', env);
    await run.start('transformer', env);
    await run.start('sink', env);
    await waitFor(async () => {
      const { rows } = await run.pg.query(`SELECT count(*)::int AS n FROM "${run.pgSchema}".citizens`).catch(() => ({ rows: [{ n: 0 }] }));
      return rows[0].n === o.rows;
    }, 3_600_000);
    const rates: number[] = [];
    let rss = 0;
    let load = { queries: 0, rowsRead: 0 };
    for (let i = 0; i < o.runs; i++) {
      // The verifier service runs its first round at start; one process per run, so its peak RSS is this run's.
      const verifier = await run.start('verifier', { ...env, VERIFY_INTERVAL_MS: '3600000' });
      await waitFor(async () => (await metric(verifier, 'cityshare_verify_last_run_timestamp_seconds')) > 0, 3_600_000);
      const seconds = await metric(verifier, 'cityshare_verify_run_seconds');
      const compared = await metric(verifier, 'cityshare_verify_rows_compared_total');
      const divergent = await metric(verifier, 'cityshare_verify_divergent_rows');
      const unsettled = await metric(verifier, 'cityshare_verify_unsettled_rows');
      if (divergent + unsettled > 0 || compared !== o.rows) throw new Error(`the verifier found the clean copy not equal: ${compared} compared, ${divergent} divergent, ${unsettled} unsettled`);
      const peak = peakRssMiB(verifier.pid!);
      load = { queries: await metric(verifier, 'cityshare_verify_source_queries_total'), rowsRead: await metric(verifier, 'cityshare_verify_source_rows_read_total') };
      await verifier.stop();
      rates.push(Math.round(compared / seconds));
      rss = Math.max(rss, peak);
      log(`verify run ${i + 1}: ${compared.toLocaleString('en')} rows compared in ${seconds.toFixed(1)} s = ${rates.at(-1)!.toLocaleString('en')} rows/s, peak RSS ${peak} MiB, source: ${load.queries} queries, ${load.rowsRead.toLocaleString('en')} rows read`);
    }
    return { verify_rows: o.rows, verify_rows_per_s: median(rates), verify_runs_rows_per_s: rates, verify_rss_mib: rss, verify_source_queries: load.queries, verify_source_rows_read: load.rowsRead };
  } finally {
    await run.tearDown();
  }
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '2' } } });
  const figures = await measureVerify({ rows: Number(values.rows), runs: Number(values.runs) });
  writeResults(figures as unknown as Record<string, unknown>);
  console.log(JSON.stringify(figures, null, 2));
  process.exit(0);
}
