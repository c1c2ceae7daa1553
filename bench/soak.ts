/**
 * Soak: the smart-city mix (bench/workload.ts) at a fixed rate for a long while, with the
 * pipeline's dependencies and services restarted on a schedule, as an SRE would live it:
 * the Kafka broker stopped and started, the schema registry stopped and started, the
 * machine's PostgreSQL (department target and registry storage) restarted, each service
 * stopped (SIGTERM) or killed (-9) and started again. Nobody intervenes in between.
 *
 * At the end, once the pipeline has caught up: for each table, a digest of what the
 * department holds (keys and the columns it receives in clear, in key order) against the
 * same digest of the source; the count of rows with their masked, tokenized and encrypted
 * columns filled. Every 10 s, the RSS of every service process (VmRSS), to show it flat.
 *   npm run bench:soak -- [--minutes 20] [--rate 2000] [--every 90]
 * Writes bench/results/soak-<date>.json. On demand: it stops the stack's broker, registry
 * and PostgreSQL, so nothing else may use the stack meanwhile.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';
import { LoadDriver, Workload, benchTables, loadTables, preload, preloadFor } from './workload.js';
import { benchServerId, deleteRunTopics, sleep } from './support.js';
import { checkDepartment, checkedDepartment, describeCheck } from './department-digest.js';

const run$ = promisify(execFile);
const { values: args } = parseArgs({ options: { minutes: { type: 'string', default: '20' }, rate: { type: 'string', default: '2000' }, every: { type: 'string', default: '90' } } });
const minutes = Number(args.minutes);
const rate = Number(args.rate);
const everyS = Number(args.every);
const started = Date.now();
const log = (line: string) => console.log(`[soak ${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s] ${line}`);

const rssMiB = (pid: number | undefined) => {
  if (!pid) return 0;
  try {
    return Math.round(Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
};
const stackSh = (...a: string[]) => run$('bash', [join(stack.root, 'deploy', 'local', 'stack.sh'), ...a], { cwd: stack.root, timeout: 300_000 });

const run = new PipelineRun();
await run.setUp();
const driver = LoadDriver.open();
const pipelineFile = run.writePipelineFile('soak.yaml', {
  serverId: benchServerId(),
  tables: benchTables(run),
  departments: [checkedDepartment(run)],
});
const env = { CITYSHARE_PIPELINE: pipelineFile };
const seconds = Math.round(minutes * 60);
const preloaded = preloadFor(rate * seconds);
log(`preloading ${(preloaded.citizens + preloaded.taps).toLocaleString('en')} rows`);
await preload(run, preloaded);
const services: Record<'reader' | 'transformer' | 'sink', ServiceProcess> = {
  reader: await run.start('cdc-reader', env),
  transformer: await run.start('transformer', env),
  sink: await run.start('sink', env),
};
const samples: Array<{ t_s: number; reader: number; transformer: number; sink: number }> = [];
const sampler = setInterval(() => {
  samples.push({ t_s: Math.round((Date.now() - started) / 1000), reader: rssMiB(services.reader.pid), transformer: rssMiB(services.transformer.pid), sink: rssMiB(services.sink.pid) });
}, 10_000);

// The machine's PostgreSQL cluster (version, name), as pg_lsclusters lists it.
const pgCluster = (await run$('pg_lsclusters', ['-h'])).stdout.trim().split(/\s+/).slice(0, 2);
// The harness's own client is cut by the restarts too: heard, and made again at the end.
run.pg.on('error', () => undefined);
/** The faults, in turn, one every `everyS` seconds; each returns once the dependency or service is back. */
const faults: Array<{ name: string; act: () => Promise<void> }> = [
  { name: 'Kafka broker stopped 30 s, started', act: async () => { await stackSh('kafka-node', 'stop', '1'); await sleep(30_000); await stackSh('kafka-node', 'start', '1'); } },
  { name: 'transformer killed (-9), started', act: async () => { await services.transformer.kill(); await services.transformer.start({ until: 'alive' }); } },
  { name: 'schema registry stopped 30 s, started', act: async () => { await stackSh('registry-down'); await sleep(30_000); await stackSh('registry-up'); } },
  { name: 'sink killed (-9), started', act: async () => { await services.sink.kill(); await services.sink.start({ until: 'alive' }); } },
  { name: 'PostgreSQL restarted (target and registry storage)', act: async () => { await run$('pg_ctlcluster', [pgCluster[0]!, pgCluster[1]!, 'restart']); } },
  { name: 'reader stopped (SIGTERM), started', act: async () => { await services.reader.stop(); await services.reader.start({ until: 'alive' }); } },
];
const done: Array<{ at_s: number; fault: string; took_s: number }> = [];
let stopFaults = false;
const schedule = (async () => {
  for (let i = 0; !stopFaults; i++) {
    await sleep(everyS * 1000);
    if (stopFaults) break;
    const fault = faults[i % faults.length]!;
    const at = Date.now();
    log(`fault: ${fault.name}`);
    try {
      await fault.act();
    } catch (err) {
      log(`fault ${fault.name} failed: ${(err as Error).message}`);
    }
    done.push({ at_s: Math.round((at - started) / 1000), fault: fault.name, took_s: Math.round((Date.now() - at) / 1000) });
  }
})();

const workload = new Workload(loadTables(run), preloaded);
log(`load: ${rate} row changes/s for ${minutes} min, a fault every ${everyS} s`);
const load = await driver.steady(workload, rate, seconds);
stopFaults = true;
await schedule;
log(`load done: ${load.rows.toLocaleString('en')} row changes in ${load.seconds.toFixed(0)} s; waiting for the department to catch up`);

// Digests of what the department holds against the source, over keys and clear columns.
const target = new pg.Client({ connectionString: stack.postgresUrl });
await target.connect();
const results = await checkDepartment(run, target, run.pgSchema, 900_000);
for (const c of results) log(describeCheck(c));
clearInterval(sampler);
await target.end();

// RSS flat: median of the first and the last fifth of the samples, per service.
const fifth = Math.max(1, Math.floor(samples.length / 5));
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const rss = Object.fromEntries((['reader', 'transformer', 'sink'] as const).map((s) => {
  const values = samples.map((x) => x[s]).filter((v) => v > 0);
  return [s, { first_fifth_median_mib: med(values.slice(0, fifth)), last_fifth_median_mib: med(values.slice(-fifth)), max_mib: Math.max(...values) }];
}));
log(`RSS MiB: ${JSON.stringify(rss)}`);
const date = new Date().toISOString().slice(0, 10);
const out = join(stack.root, 'bench', 'results', `soak-${date}.json`);
writeFileSync(out, `${JSON.stringify({ minutes, rate, every_s: everyS, load, faults: done, tables: results, rss_mib: rss, rss_samples: samples }, null, 2)}\n`);
log(`written ${out}`);
await driver.close();
run.pg = new pg.Client({ connectionString: stack.postgresUrl });
await run.pg.connect();
await run.tearDown();
await deleteRunTopics(run.prefix);
process.exit(results.every((r) => r.equal) ? 0 : 1);
