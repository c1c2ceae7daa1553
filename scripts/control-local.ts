/**
 * The control plane on the local stack: a catalog database `cityshare_control` on the
 * machine's MariaDB (:3306), the demo pipeline (deploy/local/pipeline.yaml) without its
 * grants as the first catalog, and one token per role. `npm run control` runs it in the
 * foreground for you to try `npx cdc …`; the demo uses the same set-up.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createConnection } from 'mysql2/promise';
import { parse, stringify } from 'yaml';
import { FileKeyring, POLICY_PUBLIC_KEYS_ENV, aclPlan, keyNames, loadPipeline, policySigningKey } from '@cityshare/shared';
import { kafkaUserEnv } from '../test/support/kafka-security.js';
import { setAcls } from '../test/support/pipeline-run.js';
import { stack } from '../test/support/stack.js';
import { ensureServicesBuilt, serviceArgs } from './build-services.js';

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
  const tokens = join(o.dir, 'tokens.json');
  const sha = (t: string) => createHash('sha256').update(t).digest('hex');
  writeFileSync(tokens, JSON.stringify(Object.values(LOCAL_TOKENS).map(({ token, ...who }) => ({ tokenSha256: sha(token), ...who })), null, 2));
  return {
    CONTROL_DB_URL: `mysql://root@${stack.targetMariadb.host}:${stack.targetMariadb.port}/${o.database}`,
    CONTROL_BASE_PIPELINE: base,
    CONTROL_KEYRING: o.keyringFile,
    CONTROL_TOKENS: tokens,
    CONTROL_PORT: String(o.port),
    CITYSHARE_PIPELINE: join(o.dir, 'pipeline.yaml'),
    KEYRING_FILE: o.keyringFile,
    // Services started on the published file trust only what the control plane signed.
    [POLICY_PUBLIC_KEYS_ENV]: policySigningKey(keys.activeKey(keyNames.policy)).publicKey,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = join(stack.root, '.stack', 'control');
  const env = await prepareLocalControl({ database: 'cityshare_control', dir, keyringFile: join(stack.root, '.stack', 'keyring.json'), port: 8090 });
  console.log(`control plane on http://127.0.0.1:8090 (catalog database cityshare_control on :${stack.targetMariadb.port}); in another terminal:`);
  console.log(`  export CDC_CONTROL_API=http://127.0.0.1:8090 CDC_TOKEN=${LOCAL_TOKENS.dba.token}   # tokens: ${Object.values(LOCAL_TOKENS).map((t) => `${t.token} (${t.role})`).join(', ')}`);
  console.log('  npx cdc tables list');
  console.log(`the pipeline file it publishes: ${env.CITYSHARE_PIPELINE}; Ctrl-C stops it`);
  // The control plane authenticates to Kafka as `control`; the stack's administrator gives it
  // once what its role needs (among which the right to keep every other principal's ACLs).
  const principal = kafkaUserEnv('control');
  const catalog = loadPipeline(env.CONTROL_BASE_PIPELINE!, { ...process.env, ...principal }).config;
  await setAcls(catalog.kafka.topicPrefix, aclPlan(catalog));
  await ensureServicesBuilt();
  const child = spawn(process.execPath, serviceArgs('control'), { cwd: stack.root, env: { ...process.env, ...env, ...principal }, stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 0));
}
