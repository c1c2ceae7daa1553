import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPool } from 'mysql2/promise';
import { CdcError, ERROR_CODES, FileKeyring, createMetricsRegistry, defineService, every, keyNames, loadPipeline, policySigningKey, POLICY_PUBLIC_KEYS_ENV } from '@cityshare/shared';
import { AclKeeper } from './acl-keeper.js';
import { startApi, type TokenEntry } from './api.js';
import { CatalogStore, type CatalogDocument } from './catalog.js';
import { CatalogWorkflow } from './catalog-workflow.js';
import { controlEnv } from './config.js';
import { createControlMetrics } from './control-metrics.js';
import { PublishedDeliveries } from './delivery-recorder.js';
import { GrantWorkflow } from './grants.js';
import { KeyAdmin } from './keys.js';
import { AuditLedger } from './ledger.js';
import { LedgerVerification } from './ledger-verification.js';
import { assertSafeListen } from './listen-guard.js';
import { CATALOG_CHANGES_MIGRATION, SIGNED_HEAD_MIGRATION, migrate } from './migrations.js';
import { PipelineStatusReader } from './pipeline-status.js';
import { PolicyPublisher } from './policy-publisher.js';
import { Publication } from './publication.js';
import { probeTables, type TableAt } from './source-probe.js';

/** The control plane acting on its own (first-start import). */
const SYSTEM = { name: 'control-plane', role: 'dba' } as const;

/**
 * The control service: migrates the catalog database, serves the HTTP API, publishes the
 * catalog with the grants in force as the signed policy the services run (publication.ts),
 * keeps the Kafka ACLs in step with it (acl-keeper.ts), verifies the audit ledger
 * (ledger-verification.ts) and records the sinks' delivered batches in it (delivery-recorder.ts).
 */
await defineService({
  name: 'control',
  env: controlEnv,
  async setup({ env, logger, run }) {
    if (Boolean(env.CONTROL_TLS_CERT) !== Boolean(env.CONTROL_TLS_KEY)) {
      throw new CdcError('CONFIG_INVALID', 'CONTROL_TLS_CERT and CONTROL_TLS_KEY go together: set both to serve HTTPS, or neither for HTTP');
    }
    assertSafeListen(env.CONTROL_HOST, Boolean(env.CONTROL_TLS_CERT && env.CONTROL_TLS_KEY));
    // A pool: the API and the publisher run transactions concurrently, each on its own connection.
    // error events: a mysql2 pool emits none; each pooled connection has its own listener and a failed one is dropped.
    const conn = createPool({ uri: env.CONTROL_DB_URL, charset: 'utf8mb4', connectionLimit: 8 });
    run.defer(() => conn.end());
    const migrated = await migrate(conn).catch((cause: Error) => {
      throw new CdcError('SOURCE_UNREACHABLE', `control-plane database not reachable: ${cause.message}`, { cause });
    });
    const controlKeys = FileKeyring.load(env.CONTROL_KEYRING);
    const policyKey = controlKeys.activeKey(keyNames.policy);
    logger.info({ publicKey: policySigningKey(policyKey).publicKey }, `published policies are signed; services trust them with ${POLICY_PUBLIC_KEYS_ENV}`);
    const registry = createMetricsRegistry('control');
    const metrics = createControlMetrics(registry);

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

    const publication = new Publication(catalog, grants, publisher, metrics, logger);
    const deliveries = new PublishedDeliveries(env.CITYSHARE_PIPELINE, ledger, logger, () => metrics.forged.inc({ topic_kind: 'deliveries' }));
    run.defer(() => deliveries.stop());
    const published = () => (existsSync(env.CITYSHARE_PIPELINE) ? loadPipeline(env.CITYSHARE_PIPELINE).config : undefined);
    const acls = new AclKeeper(ledger, logger, published);
    const verification = new LedgerVerification(ledger, env.CONTROL_FULL_VERIFY_INTERVAL_MS, metrics, logger);
    await publication.round();
    await verification.verify();

    const api = await startApi({
      port: env.CONTROL_PORT, host: env.CONTROL_HOST, tokens: JSON.parse(readFileSync(env.CONTROL_TOKENS, 'utf8')) as TokenEntry[], grants, catalog, keys, ledger, acls, logger,
      limits: { maxBodyBytes: env.CONTROL_MAX_BODY_BYTES, loginFailures: { max: env.CONTROL_LOGIN_FAILURES, windowMs: env.CONTROL_LOGIN_WINDOW_MS }, session: { idleMs: env.CONTROL_SESSION_IDLE_MS, maxMs: env.CONTROL_SESSION_MAX_MS } },
      // From the bundle (dist/main.mjs) and from the sources (src/main.ts) alike: services/control/dist/console.
      consoleDir: env.CONTROL_CONSOLE_DIR ?? fileURLToPath(new URL('../dist/console', import.meta.url)),
      pipelineStatus: new PipelineStatusReader({ published, logger, ...(env.CONTROL_METRICS_TARGETS ? { metricsTargets: env.CONTROL_METRICS_TARGETS } : {}) }),
      status: async () => {
        const doc = await store.load();
        return {
          catalog: { sources: doc.sources.length, tables: doc.sources.reduce((n, s) => n + s.tables.length, 0), departments: doc.departments.length },
          grants: await grants.countByStatus(),
          policy: { file: env.CITYSHARE_PIPELINE, sha256: publisher.digest ?? null },
          audit: verification.last,
          refused: { grants: grants.refusedGrants.size, settings: publication.settingsProblem ?? null },
        };
      },
      policy: () => (publisher.text !== undefined && publisher.digest !== undefined ? { text: publisher.text, sha256: publisher.digest } : undefined),
      ...(env.CONTROL_TLS_CERT && env.CONTROL_TLS_KEY ? { tls: { cert: readFileSync(env.CONTROL_TLS_CERT), key: readFileSync(env.CONTROL_TLS_KEY) } } : {}),
    });
    run.defer(() => api.close());

    const loops = [
      every(env.CONTROL_PUBLISH_INTERVAL_MS, async () => {
        await publication.round();
        await deliveries.ensureStarted();
      }, (err) => logger.error({ err }, 'publishing the grants in force failed; will retry')),
      every(env.CONTROL_VERIFY_INTERVAL_MS, () => verification.verify(), (err) => logger.warn({ err }, 'audit verification failed; will retry')),
      ...(env.CONTROL_KAFKA_ACLS === 'manage' ? [every(env.CONTROL_PUBLISH_INTERVAL_MS, () => acls.keepInStep(published(), publisher.digest), () => undefined)] : []),
    ];
    run.defer(() => loops.forEach((loop) => loop.stop()));
    return { metrics: registry, ready: () => true, serving: () => ({ api: (api.address() as { port: number }).port }) };
  },
});
