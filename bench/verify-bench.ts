/**
 * `cdc verify` benchmark on the local stack: a department holding a clean copy of policy(source)
 * of a `citizens` table of N rows (delivered by the pipeline: masks, tokens, an encrypted
 * column), then `cdc verify` run as an operator runs it, in a process of its own: rows compared
 * per second, its peak RSS (VmHWM), and the load it put on the source (queries, rows read).
 *   npm run bench:verify -- [--rows 1000000] [--runs 2]
 * Writes bench/results/latest.json (merged with other benches' fields).
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import type { VerifyReport } from '../services/verifier/src/verify-department.js';
import { kafkaUserEnv } from '../scripts/support/kafka-security.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';
import { preload } from './workload.js';
import { benchServerId, isMain, median, peakRssMiB, waitFor, writeResults } from './support.js';

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
      const { report, peak } = await cdcVerify(file, { ...run.env, ...kafkaUserEnv('verifier') });
      const t = report.tables[0]!;
      if (t.status !== 'equal') throw new Error(`verify found the clean copy ${t.status}: ${JSON.stringify({ missing: t.missing.length, extra: t.extra.length, different: t.different.length, unsettled: t.unsettled.length })}`);
      rates.push(Math.round(t.compared / t.seconds));
      rss = Math.max(rss, peak);
      load = t.source;
      log(`verify run ${i + 1}: ${t.compared.toLocaleString('en')} rows compared in ${t.seconds.toFixed(1)} s = ${rates.at(-1)!.toLocaleString('en')} rows/s, peak RSS ${peak} MiB, source: ${t.source.queries} queries, ${t.source.rowsRead.toLocaleString('en')} rows read`);
    }
    return { verify_rows: o.rows, verify_rows_per_s: median(rates), verify_runs_rows_per_s: rates, verify_rss_mib: rss, verify_source_queries: load.queries, verify_source_rows_read: load.rowsRead };
  } finally {
    await run.tearDown();
  }
}

/** `cdc verify health --json` as an operator runs it; its report and its peak RSS. */
async function cdcVerify(file: string, env: NodeJS.ProcessEnv): Promise<{ report: VerifyReport; peak: number }> {
  const child = spawn(process.execPath, ['packages/cli/bin/cdc.js', '-c', file, 'verify', 'health', '--json'], { cwd: stack.root, env: { ...env, CDC_TOKEN: '' }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let peak = 0;
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, peakRssMiB(child.pid!));
    } catch {
      // exited between two samples
    }
  }, 100);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearInterval(sampler);
  if (code !== 0) throw new Error(`cdc verify exited with ${code}`);
  return { report: JSON.parse(out) as VerifyReport, peak };
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '2' } } });
  const figures = await measureVerify({ rows: Number(values.rows), runs: Number(values.runs) });
  writeResults(figures as unknown as Record<string, unknown>);
  console.log(JSON.stringify(figures, null, 2));
  process.exit(0);
}
