import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createPool } from 'mysql2/promise';
import { CdcError, ERROR_CODES, FileKeyring, createKafka, createLogger, createMetricsRegistry, isCdcError, keyNames, loadPipeline, policySigningKey, POLICY_PUBLIC_KEYS_ENV, loadServiceEnv, runService, watchPipeline } from '@cityshare/shared';
import { AclKeeper } from './acl-keeper.js';
import { startApi, type TokenEntry } from './api.js';
import { controlEnv } from './config.js';
import { createControlMetrics } from './control-metrics.js';
import { CatalogStore, type CatalogDocument } from './catalog.js';
import { probeTables, type TableAt } from './source-probe.js';
import { CatalogWorkflow } from './catalog-workflow.js';
import { DeliveryRecorder } from './delivery-recorder.js';
import { KeyAdmin } from './keys.js';
import { assertSafeListen } from './listen-guard.js';
import { GrantWorkflow } from './grants.js';
import { AuditLedger } from './ledger.js';
import { CATALOG_CHANGES_MIGRATION, SIGNED_HEAD_MIGRATION, migrate } from './migrations.js';
import { PolicyPublisher } from './policy-publisher.js';


const logger = createLogger('control');
/** The control plane acting on its own (first-start import). */
const SYSTEM = { name: 'control-plane', role: 'dba' } as const;

/**
 * The control service: migrates the catalog database, serves the HTTP API, every second
 * applies expiry and publishes the catalog with the grants in force as the pipeline file
 * the services reload (CITYSHARE_PIPELINE), and records the sinks' delivered batches in the
 * audit ledger.
 */
await runService(logger, async (run) => {
  const env = loadServiceEnv(controlEnv);
  if (Boolean(env.CONTROL_TLS_CERT) !== Boolean(env.CONTROL_TLS_KEY)) {
    throw new CdcError('CONFIG_INVALID', 'CONTROL_TLS_CERT and CONTROL_TLS_KEY go together: set both to serve HTTPS, or neither for HTTP');
  }
  assertSafeListen(env.CONTROL_HOST, Boolean(env.CONTROL_TLS_CERT && env.CONTROL_TLS_KEY));
  logger.level = env.LOG_LEVEL;
  // A pool: the API and the publisher run transactions concurrently, each on its own connection.
  // error events: a mysql2 pool emits none; each pooled connection has its own listener and a failed one is dropped.
  const conn = createPool({ uri: env.CONTROL_DB_URL, charset: 'utf8mb4', connectionLimit: 8 });
  const migrated = await migrate(conn).catch((cause: Error) => {
    throw new CdcError('SOURCE_UNREACHABLE', `control-plane database not reachable: ${cause.message}`, { cause });
  });
  const controlKeys = FileKeyring.load(env.CONTROL_KEYRING);
  const policyKey = controlKeys.activeKey(keyNames.policy);
  logger.info({ publicKey: policySigningKey(policyKey).publicKey }, `published policies are signed; services trust them with ${POLICY_PUBLIC_KEYS_ENV}`);
  const ledger = new AuditLedger(conn, controlKeys);
  const upgrading = migrated.includes(SIGNED_HEAD_MIGRATION);
  if (upgrading) await ledger.adoptUnsignedHead();
  const publisher = new PolicyPublisher(env.CITYSHARE_PIPELINE, ledger, logger, () => policyKey);
  const store = new CatalogStore(conn);
  const grants = new GrantWorkflow(conn, ledger, async (g) => void publisher.render(await store.load(), g), (g, problem) => {
    logger.error({ code: 'GRANT_TAMPERED', action: ERROR_CODES.GRANT_TAMPERED.action, grant: g.id, department: g.department, table: g.table }, `grant left out of the policy: ${problem}`);
  });
  if (upgrading) {
    const attested = await grants.attestLegacyApprovals();
    if (attested.length > 0) logger.warn({ grants: attested }, 'schema upgraded: grants approved before approvals carried digests are attested as they are now');
  }
  const catalog = new CatalogWorkflow(conn, ledger, store, async (doc) => void publisher.render(doc, await grants.inForce()), {
    ...(env.CONTROL_SOURCE_CHECK === 'on' ? { probe: (doc: CatalogDocument, tables: TableAt[]) => probeTables(doc, tables, (d) => publisher.render(d, []), dirname(resolve(env.CITYSHARE_PIPELINE))) } : {}),
    grantsInForce: () => grants.inForce(),
  });
  const keys = new KeyAdmin(conn, ledger, () => loadPipeline(env.CITYSHARE_PIPELINE).keyringPath);
  if (migrated.includes(CATALOG_CHANGES_MIGRATION)) await catalog.attestCurrent(SYSTEM, 'schema upgraded: settings and targets as they were before their changes needed a security officer');
  if (env.CONTROL_BASE_PIPELINE && (await store.load()).sources.length === 0) {
    const { changes } = await catalog.importBase(SYSTEM, readFileSync(env.CONTROL_BASE_PIPELINE, 'utf8'), `first start: imported ${env.CONTROL_BASE_PIPELINE}`);
    logger.info({ file: env.CONTROL_BASE_PIPELINE, changes: changes.length }, 'empty catalog filled from the base pipeline file');
  }
  let settingsProblem: string | undefined;
  /** The catalog to publish, or none while its settings or targets are not the ones approved last (the services keep the last policy). */
  const approvedCatalog = async () => {
    try {
      const doc = await catalog.approved();
      if (settingsProblem) logger.info('catalog settings and targets are the approved ones again; publishing');
      settingsProblem = undefined;
      metrics.settingsRefused.set(0);
      return doc;
    } catch (err) {
      if (!isCdcError(err, 'SETTINGS_TAMPERED')) throw err;
      if (err.message !== settingsProblem) logger.error({ code: err.code, action: err.action }, err.message);
      settingsProblem = err.message;
      metrics.settingsRefused.set(1);
      return undefined;
    }
  };
  let recorder: DeliveryRecorder | undefined;
  let keyringWatch: { stop(): void } | undefined;
  /**
   * Delivery records are read from the Kafka of the published pipeline, once there is one,
   * and verified with its keyring's pipeline keys (followed as keys rotate).
   */
  const startRecorder = async () => {
    if (recorder || !existsSync(env.CITYSHARE_PIPELINE)) return;
    const loaded = loadPipeline(env.CITYSHARE_PIPELINE);
    let pipelineKeys = FileKeyring.load(loaded.keyringPath);
    keyringWatch = watchPipeline(loaded, { logger, onChange: ({ keys }) => void (pipelineKeys = keys) });
    recorder = new DeliveryRecorder(createKafka(loaded.config.kafka, 'cityshare-control', logger), loaded.config.kafka, ledger, logger, () => pipelineKeys, () => metrics.forged.inc({ topic_kind: 'deliveries' }));
    await recorder.start().catch((err: unknown) => {
      recorder = undefined;
      keyringWatch?.stop();
      throw err;
    });
  };
  const published = () => (existsSync(env.CITYSHARE_PIPELINE) ? loadPipeline(env.CITYSHARE_PIPELINE).config : undefined);
  const acls = new AclKeeper(ledger, logger, published);
  const registry = createMetricsRegistry('control');
  const metrics = createControlMetrics(registry);
  const initial = await approvedCatalog();
  if (initial) await publisher.publish(initial, await grants.inForce());
  let lastVerification = { at: '', entries: 0, problems: 0, head: { seq: 0, hash: '' }, full: true };
  let lastFull = 0;
  /** Incremental every CONTROL_VERIFY_INTERVAL_MS (the entries since the last verified checkpoint), full at start and every CONTROL_FULL_VERIFY_INTERVAL_MS. */
  const verify = async () => {
    const full = Date.now() - lastFull >= env.CONTROL_FULL_VERIFY_INTERVAL_MS;
    const { entries, problems, head } = await ledger.verify({ full });
    if (full) lastFull = Date.now();
    lastVerification = { at: new Date().toISOString(), entries, problems: problems.length, head, full };
    metrics.auditProblems.set(problems.length);
    metrics.auditEntries.set(entries);
    if (problems.length > 0) logger.error({ code: 'AUDIT_LEDGER_TAMPERED', problems }, 'the audit ledger does not verify: entries were changed, removed or reordered');
  };
  await verify();
  const verifier = setInterval(() => void verify().catch((err: unknown) => logger.warn({ err }, 'audit verification failed; will retry')), env.CONTROL_VERIFY_INTERVAL_MS);
  const api = await startApi({
    port: env.CONTROL_PORT, host: env.CONTROL_HOST, tokens: JSON.parse(readFileSync(env.CONTROL_TOKENS, 'utf8')) as TokenEntry[], grants, catalog, keys, ledger, acls, logger,
    limits: { maxBodyBytes: env.CONTROL_MAX_BODY_BYTES, loginFailures: { max: env.CONTROL_LOGIN_FAILURES, windowMs: env.CONTROL_LOGIN_WINDOW_MS } },
    status: async () => {
      const doc = await store.load();
      return {
        catalog: { sources: doc.sources.length, tables: doc.sources.reduce((n, s) => n + s.tables.length, 0), departments: doc.departments.length },
        grants: await grants.countByStatus(),
        policy: { file: env.CITYSHARE_PIPELINE, sha256: publisher.digest ?? null },
        audit: lastVerification,
        refused: { grants: grants.refusedGrants.size, settings: settingsProblem ?? null },
      };
    },
    policy: () => (publisher.text !== undefined && publisher.digest !== undefined ? { text: publisher.text, sha256: publisher.digest } : undefined),
    ...(env.CONTROL_TLS_CERT && env.CONTROL_TLS_KEY ? { tls: { cert: readFileSync(env.CONTROL_TLS_CERT), key: readFileSync(env.CONTROL_TLS_KEY) } } : {}),
  });
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void (async () => {
      try {
        await grants.expire();
        const inForce = await grants.inForce();
        const doc = await approvedCatalog();
        if (doc) await publisher.publish(doc, inForce);
        metrics.grantsInForce.set(inForce.length);
        metrics.grantsRefused.set(grants.refusedGrants.size);
        await startRecorder();
      } catch (err) {
        logger.error({ err }, 'publishing the grants in force failed; will retry');
      } finally {
        busy = false;
      }
    })();
  }, env.CONTROL_PUBLISH_INTERVAL_MS);
  // The ACLs follow each published policy in their own loop, so an unreachable cluster never holds back publication.
  let aclsBusy = false;
  let aclProblem: string | undefined;
  const aclTimer = setInterval(() => {
    if (env.CONTROL_KAFKA_ACLS === 'off' || aclsBusy) return;
    aclsBusy = true;
    void (async () => {
      try {
        const config = published();
        if (config) await acls.sync(config, { digest: publisher.digest });
        if (aclProblem) logger.info('Kafka ACLs in step again');
        aclProblem = undefined;
      } catch (err) {
        const problem = isCdcError(err) ? `${err.code}: ${err.message}` : String(err);
        if (problem !== aclProblem) logger.error(isCdcError(err) ? { code: err.code, action: err.action } : { err }, `Kafka ACLs not in step with the policy; will retry: ${problem}`);
        aclProblem = problem;
      } finally {
        aclsBusy = false;
      }
    })();
  }, env.CONTROL_PUBLISH_INTERVAL_MS);
  run.defer(async () => {
    clearInterval(timer);
    clearInterval(aclTimer);
    clearInterval(verifier);
    keyringWatch?.stop();
    await recorder?.stop();
    api.close();
    await conn.end();
  });
  await run.serve({ port: env.METRICS_PORT, host: env.METRICS_HOST, registry, ready: () => true });
  logger.info({ api: (api.address() as { port: number }).port }, 'control plane serving');
});
