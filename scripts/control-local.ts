/**
 * The control plane on the local stack: a catalog database `cityshare_control` on the
 * machine's MariaDB (:3306), the demo pipeline (deploy/local/pipeline.yaml) without its
 * grants as the first catalog, and one token per role. `npm run control` runs it with the
 * services on what it publishes, for you to try `npx cdc …`; the demo uses the same set-up.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createConnection } from 'mysql2/promise';
import { parse, stringify } from 'yaml';
import { FileKeyring, POLICY_PUBLIC_KEYS_ENV, keyNames, policySigningKey } from '@cityshare/shared';
import { PipelineRun, sampleSchemaSql } from './support/pipeline-run.js';
import { stack } from './support/stack.js';

/** Local tokens, one per role; never use them anywhere but on this machine. */
export const LOCAL_TOKENS = {
  dba: { token: 'local-dba', name: 'wang.dba', role: 'dba' },
  officer: { token: 'local-officer', name: 'zhang.officer', role: 'security-officer' },
  health: { token: 'local-health', name: 'health.app', role: 'department', department: 'health' },
  sre: { token: 'local-sre', name: 'li.sre', role: 'sre' },
  auditor: { token: 'local-auditor', name: 'zhao.auditor', role: 'auditor' },
} as const;

/**
 * Creates (afresh) the catalog database and the control plane's files under `dir`;
 * returns the control service's environment. `keyringFile` gets the `audit` key.
 */
export async function prepareLocalControl(o: { database: string; dir: string; keyringFile: string; port: number }): Promise<NodeJS.ProcessEnv> {
  mkdirSync(o.dir, { recursive: true });
  const admin = await createConnection({ ...stack.targetMariadb });
  await admin.query(`DROP DATABASE IF EXISTS \`${o.database}\``);
  await admin.query(`CREATE DATABASE \`${o.database}\``);
  await admin.end();
  const keys = FileKeyring.ensure(o.keyringFile, ['pipeline', 'department:health', 'department:haidian', 'token:citizen', 'token:own:health', 'token:own:haidian', 'audit', 'policy', 'deliveries']);
  // The catalog starts as the demo pipeline without grants: grants come only through the workflow.
  const pipeline = parse(readFileSync(join(stack.root, 'deploy', 'local', 'pipeline.yaml'), 'utf8')) as { departments: Array<{ grants?: unknown }> };
  for (const d of pipeline.departments) delete d.grants;
  const base = join(o.dir, 'catalog.yaml');
  writeFileSync(base, stringify(pipeline));
  // The services' metrics endpoints, for the pipeline status (written once they run: PipelineRun.writeMetricsTargets).
  const metricsTargets = join(o.dir, 'metrics-targets.json');
  writeFileSync(metricsTargets, '[]\n');
  const tokens = join(o.dir, 'tokens.json');
  const sha = (t: string) => createHash('sha256').update(t).digest('hex');
  writeFileSync(tokens, JSON.stringify(Object.values(LOCAL_TOKENS).map(({ token, ...who }) => ({ tokenSha256: sha(token), ...who })), null, 2));
  return {
    CONTROL_DB_URL: `mysql://root@${stack.targetMariadb.host}:${stack.targetMariadb.port}/${o.database}`,
    CONTROL_BASE_PIPELINE: base,
    CONTROL_KEYRING: o.keyringFile,
    CONTROL_TOKENS: tokens,
    CONTROL_PORT: String(o.port),
    CONTROL_METRICS_TARGETS: metricsTargets,
    CITYSHARE_PIPELINE: join(o.dir, 'pipeline.yaml'),
    KEYRING_FILE: o.keyringFile,
    // Services started on the published file trust only what the control plane signed.
    [POLICY_PUBLIC_KEYS_ENV]: policySigningKey(keys.activeKey(keyNames.policy)).publicKey,
  };
}

/** Creates the demo's source databases and tables on the project's MariaDB when they are missing (data left as it is). */
async function ensureSampleSource(): Promise<void> {
  const source = await createConnection({ ...stack.source, multipleStatements: true });
  try {
    for (const db of ['civil', 'health', 'transport']) await source.query(`CREATE DATABASE IF NOT EXISTS \`${db}\``);
    await source.query(sampleSchemaSql({ civilDb: 'civil', healthDb: 'health', transportDb: 'transport' }));
  } finally {
    await source.end();
  }
}

/**
 * `npm run control`: the control plane and the pipeline it governs, on the local stack, until
 * Ctrl-C: the control service, then a reader, the transformer and a sink per department, all
 * on the pipeline file the control plane publishes (each as its own Kafka principal, trusting
 * only what the control plane signed). A table registered and a grant approved with `npx cdc`
 * reach the department's table within seconds.
 */
async function runLocalControl(): Promise<void> {
  const dir = join(stack.root, '.stack', 'control');
  const keyringFile = join(stack.root, '.stack', 'keyring.json');
  const env = await prepareLocalControl({ database: 'cityshare_control', dir, keyringFile, port: 8090 });
  await ensureSampleSource();
  // The demo's names (topic prefix `demo`, databases civil/health/transport, schemas dept_health/dept_haidian).
  const run = new PipelineRun({ id: 'demo', civilDb: 'civil', healthDb: 'health', transportDb: 'transport', pgSchema: 'dept_health', haidianPgSchema: 'dept_haidian', keyringFile });
  const stop = async () => {
    await run.tearDown({ keepData: true });
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  try {
    await startAll(run, env);
  } catch (err) {
    // Nothing left running behind a failed start.
    await run.tearDown({ keepData: true });
    throw err;
  }
  console.log('control plane ready; Ctrl-C stops it and the services');
}

async function startAll(run: PipelineRun, env: NodeJS.ProcessEnv): Promise<void> {
  const control = await run.start('control', env);
  console.log(`control plane on http://127.0.0.1:8090 (catalog database cityshare_control on :${stack.targetMariadb.port}), log ${control.logFile}`);
  const services = { CITYSHARE_PIPELINE: env.CITYSHARE_PIPELINE, [POLICY_PUBLIC_KEYS_ENV]: env[POLICY_PUBLIC_KEYS_ENV] };
  const departments = run.pipelineOf({ ...run.env, CITYSHARE_PIPELINE: env.CITYSHARE_PIPELINE }).departments.map((d) => d.name);
  for (const [name, department] of [['cdc-reader', ''], ['transformer', ''], ...departments.map((d) => ['sink', d] as const)] as const) {
    // A local sandbox: binlogs the reader's last checkpoint needs may have been purged meanwhile (the tests do): start over.
    const own = name === 'cdc-reader' ? { READER_ON_PURGED: 'resnapshot' } : department ? { SINK_DEPARTMENT: department } : {};
    const svc = await run.start(name, { ...services, ...own });
    console.log(`  ${`${name}${department ? ` (${department})` : ''}`.padEnd(18)} ready   metrics http://127.0.0.1:${svc.port}/metrics   log ${svc.logFile}`);
  }
  run.writeMetricsTargets(env.CONTROL_METRICS_TARGETS!);
  console.log(`the services run on the policy the control plane publishes: ${env.CITYSHARE_PIPELINE}`);
  console.log('web console: http://127.0.0.1:8090/console/ — sign in with the token of a role:');
  for (const t of Object.values(LOCAL_TOKENS)) console.log(`  ${t.token.padEnd(14)} ${t.name} (${t.role}${'department' in t ? `, ${t.department}` : ''})`);
  console.log('in another terminal (README "Share your own table"):');
  console.log(`  export CDC_CONTROL_API=http://127.0.0.1:8090 CDC_TOKEN=${LOCAL_TOKENS.dba.token}   # tokens: ${Object.values(LOCAL_TOKENS).map((t) => `${t.token} (${t.role})`).join(', ')}`);
  console.log('  npx cdc tables list');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runLocalControl();
}
