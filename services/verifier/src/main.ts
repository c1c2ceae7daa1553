import { readFileSync } from 'node:fs';
import { definitionOf, pipelineTargets } from '@cityshare/sink/targets';
import { CdcError, FileKeyring, createMetricsRegistry, defineService, every, httpJson, isCdcError } from '@cityshare/shared';
import { verifierEnv } from './config.js';
import { verifyDepartment, type VerifyReport } from './verify-department.js';
import { createVerifierMetrics } from './verifier-metrics.js';

/**
 * The verifier as a service: every VERIFY_INTERVAL_MS it verifies each department (whose
 * target keeps tables) against policy(source), table by table, exports what it found
 * (cityshare_verify_*; alert CityshareDepartmentDiverged) and records every run in the audit
 * ledger through the control API. `cdc verify` runs the same verification once.
 */
await defineService({
  name: 'verifier',
  env: verifierEnv,
  async setup({ env, logger, run, loadPolicy }) {
    const loaded = await loadPolicy(pipelineTargets);
    const keys = FileKeyring.loadFor(loaded.keyringPath, 'verifier', logger);
    const registry = createMetricsRegistry('verifier');
    const metrics = createVerifierMetrics(registry);
    if (env.VERIFY_CONTROL_URL && !env.VERIFY_CONTROL_TOKEN_FILE) {
      throw new CdcError('CONFIG_INVALID', 'VERIFY_CONTROL_URL is set but VERIFY_CONTROL_TOKEN_FILE is not: give the verifier a file holding its control API token (role service)');
    }
    const departments = env.VERIFY_DEPARTMENTS
      ? env.VERIFY_DEPARTMENTS.split(',').map((d) => d.trim())
      : loaded.config.departments.filter((d) => definitionOf(d.target).readBack !== undefined).map((d) => d.name);
    const record = async (report: VerifyReport) => {
      if (!env.VERIFY_CONTROL_URL) return;
      const body = Buffer.from(JSON.stringify({ department: report.department, startedAt: report.startedAt, finishedAt: report.finishedAt, sha256: report.sha256, tables: report.tables.map((t) => ({ table: t.table, status: t.status, compared: t.compared, missing: t.missing.length, extra: t.extra.length, different: t.different.length, unsettled: t.unsettled.length })) }));
      const res = await httpJson(new URL('verify/runs', env.VERIFY_CONTROL_URL.endsWith('/') ? env.VERIFY_CONTROL_URL : `${env.VERIFY_CONTROL_URL}/`), {
        method: 'POST',
        headers: { authorization: `Bearer ${readFileSync(env.VERIFY_CONTROL_TOKEN_FILE!, 'utf8').trim()}`, 'content-type': 'application/json' },
        body,
        ...(env.VERIFY_CONTROL_CA ? { ca: readFileSync(env.VERIFY_CONTROL_CA) } : {}),
        timeoutMs: 30_000,
      });
      if (res.status >= 300) logger.warn({ code: 'CONTROL_UNREACHABLE', status: res.status }, 'the verification was not recorded in the audit ledger');
    };
    let last: string | true = 'first verification under way';
    const round = async () => {
      for (const department of departments) {
        try {
          const report = await verifyDepartment({ config: loaded.config, keys, department, logger, settleMs: env.VERIFY_SETTLE_MS });
          for (const t of report.tables) {
            const labels = { department, table: t.table };
            metrics.compared.inc(labels, t.compared);
            for (const kind of ['missing', 'extra', 'different'] as const) metrics.divergent.set({ ...labels, kind }, t[kind].length);
            metrics.unsettled.set(labels, t.unsettled.length);
            metrics.lastRun.set(labels, Date.now() / 1000);
            metrics.seconds.set(labels, t.seconds);
            metrics.sourceQueries.inc(labels, t.source.queries);
            metrics.sourceRows.inc(labels, t.source.rowsRead);
            if (t.status === 'different') logger.error({ code: 'DEPARTMENT_DIVERGED', department, table: t.table, missing: t.missing.length, extra: t.extra.length, different: t.different.length, report: report.sha256 }, 'the department does not hold policy(source): `cdc verify` lists the keys, `cdc repair` delivers them again');
          }
          await record(report).catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'the verification was not recorded in the audit ledger'));
        } catch (err) {
          const code = isCdcError(err) ? err.code : 'INTERNAL';
          metrics.failures.inc({ department, code });
          logger.error({ code, department, err: (err as Error).message }, 'verification failed; tried again next round');
        }
      }
      last = true;
    };
    const start = async () => {
      void round();
      const loop = every(env.VERIFY_INTERVAL_MS, round, (err) => logger.error({ err }, 'verification round failed'));
      run.defer(() => loop.stop());
    };
    return { metrics: registry, ready: () => last, start };
  },
});
