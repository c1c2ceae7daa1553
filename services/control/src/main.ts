import { readFileSync } from 'node:fs';
import { createPool } from 'mysql2/promise';
import { Gauge } from 'prom-client';
import { z } from 'zod';
import { CdcError, FileKeyring, commonServiceEnv, createLogger, createMetricsRegistry, loadServiceEnv, runService, startHealthServer } from '@cityshare/shared';
import { startApi, type TokenEntry } from './api.js';
import { GrantWorkflow } from './grants.js';
import { AuditLedger } from './ledger.js';
import { migrate } from './migrations.js';
import { PolicyPublisher } from './policy-publisher.js';

const controlEnv = z.object({
  ...commonServiceEnv,
  CONTROL_DB_URL: z.string().regex(/^mysql:\/\//).describe('mysql://user:password@host:port/database of the control plane (created tables are migrated at start)'),
  CONTROL_BASE_PIPELINE: z.string().describe('the operator\'s pipeline file: sources, column classes, departments and targets; grants come from the catalog'),
  CONTROL_KEYRING: z.string().describe('keyring holding the audit key (`audit`) that signs ledger checkpoints'),
  CONTROL_TOKENS: z.string().describe('JSON file: [{ tokenSha256, name, role, department? }]'),
  CONTROL_PORT: z.coerce.number().int().min(0).default(8090).describe('port of the HTTP API'),
  CONTROL_VERIFY_INTERVAL_MS: z.coerce.number().int().min(1000).default(60_000).describe('how often the audit ledger is verified (cityshare_control_audit_problems)'),
  CONTROL_PUBLISH_INTERVAL_MS: z.coerce.number().int().min(100).default(1000).describe('how often expiry is applied and the grants in force are published'),
});

const logger = createLogger('control');

/**
 * The control service: migrates the catalog, serves the HTTP API, and every second
 * applies expiry and publishes the grants in force as the policy file the transformer
 * reloads (CITYSHARE_PIPELINE).
 */
await runService(logger, async () => {
  const env = loadServiceEnv(controlEnv);
  logger.level = env.LOG_LEVEL;
  // A pool: the API and the publisher run transactions concurrently, each on its own connection.
  const conn = createPool({ uri: env.CONTROL_DB_URL, charset: 'utf8mb4', connectionLimit: 8 });
  await migrate(conn).catch((cause: Error) => {
    throw new CdcError('SOURCE_UNREACHABLE', `control-plane database not reachable: ${cause.message}`, { cause });
  });
  const ledger = new AuditLedger(conn, FileKeyring.load(env.CONTROL_KEYRING));
  const publisher = new PolicyPublisher(env.CONTROL_BASE_PIPELINE, env.CITYSHARE_PIPELINE, ledger, logger);
  const grants = new GrantWorkflow(conn, ledger, (g) => void publisher.render(g));
  await publisher.publish(await grants.inForce());
  const registry = createMetricsRegistry('control');
  const metrics = {
    auditProblems: new Gauge({ name: 'cityshare_control_audit_problems', help: 'Problems the last verification of the audit ledger found (0 = intact)', registers: [registry] }),
    auditEntries: new Gauge({ name: 'cityshare_control_audit_entries', help: 'Entries in the audit ledger at the last verification', registers: [registry] }),
    grantsInForce: new Gauge({ name: 'cityshare_control_grants_in_force', help: 'Approved, unexpired grants in the published policy', registers: [registry] }),
  };
  const verify = async () => {
    const { entries, problems } = await ledger.verify();
    metrics.auditProblems.set(problems.length);
    metrics.auditEntries.set(entries);
    if (problems.length > 0) logger.error({ problems }, 'the audit ledger does not verify: entries were changed, removed or reordered');
  };
  await verify();
  const verifier = setInterval(() => void verify().catch((err: unknown) => logger.warn({ err }, 'audit verification failed; will retry')), env.CONTROL_VERIFY_INTERVAL_MS);
  const api = await startApi({ port: env.CONTROL_PORT, tokens: JSON.parse(readFileSync(env.CONTROL_TOKENS, 'utf8')) as TokenEntry[], grants, ledger, logger });
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void (async () => {
      try {
        await grants.expire();
        const inForce = await grants.inForce();
        await publisher.publish(inForce);
        metrics.grantsInForce.set(inForce.length);
      } catch (err) {
        logger.error({ err }, 'publishing the grants in force failed; will retry');
      } finally {
        busy = false;
      }
    })();
  }, env.CONTROL_PUBLISH_INTERVAL_MS);
  const health = await startHealthServer({ port: env.METRICS_PORT, registry, ready: () => true });
  logger.info({ api: (api.address() as { port: number }).port }, 'control plane serving');
  return async () => {
    clearInterval(timer);
    clearInterval(verifier);
    api.close();
    await health.close();
    await conn.end();
  };
});
