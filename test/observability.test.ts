import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';

interface Rule {
  alert: string;
  expr: string;
  annotations: { summary: string; description: string };
}

/** The alert rules and the dashboard in deploy/ use only metrics the services export. */
describe('observability', () => {
  const run = new PipelineRun();
  const services: ServiceProcess[] = [];
  const rules = (parse(readFileSync(join(stack.root, 'deploy', 'prometheus', 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);
  const dashboard = JSON.parse(readFileSync(join(stack.root, 'deploy', 'grafana', 'cityshare-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
  const used = (text: string) => [...text.matchAll(/\bcityshare_[a-z0-9_]+/g)].map((m) => m[0]);

  beforeAll(async () => {
    await run.setUp();
    for (const name of ['cdc-reader', 'transformer', 'sink'] as const) services.push(await run.start(name));
    await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES (1, '王小明', '110101199001010000', '13800000000', '海淀', NOW(6))`);
    await eventually(async () => expect((await run.pg.query(`SELECT count(*)::int AS n FROM "${run.pgSchema}".citizens`)).rows[0].n).toBe(1));
    // Ready once its first verification of health is done, so its metrics have values.
    services.push(await run.start('verifier', { VERIFY_DEPARTMENTS: 'health', VERIFY_SETTLE_MS: '30000' }));
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('has rules that say what is wrong and what to do', () => {
    expect(rules.length).toBeGreaterThanOrEqual(10);
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^Cityshare[A-Za-z]+$/);
      expect(rule.annotations.summary.length).toBeGreaterThan(10);
      expect(rule.annotations.description.length).toBeGreaterThan(20);
    }
  });

  it('uses in its rules and dashboard only metrics the services export, all of them in docs/metrics.md', async () => {
    const exported = new Set<string>();
    const documented = new Set([...readFileSync(join(stack.root, 'docs', 'metrics.md'), 'utf8').matchAll(/^\| `(cityshare_[a-z0-9_]+)` \|/gm)].map((m) => m[1]!));
    const undocumented: string[] = [];
    for (const svc of services) {
      for (const line of (await svc.metrics()).split('\n')) {
        const m = /^# TYPE (\S+) (\S+)$/.exec(line);
        if (!m) continue;
        if (!documented.has(m[1]!)) undocumented.push(m[1]!);
        exported.add(m[1]!);
        if (m[2] === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${m[1]}${suffix}`);
      }
    }
    const inRules = rules.flatMap((r) => used(r.expr));
    const inDashboard = dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => used(t.expr)));
    expect(inRules.length).toBeGreaterThan(10);
    expect(inDashboard.length).toBeGreaterThan(10);
    // The control service's metrics are checked where it runs (test/governance.test.ts).
    const missing = [...new Set([...inRules, ...inDashboard])].filter((name) => !name.startsWith('cityshare_control_') && !exported.has(name));
    expect(missing).toEqual([]);
    // docs/metrics.md is generated from the metric factories: a metric declared elsewhere would be missing there.
    expect(documented.size).toBeGreaterThan(40);
    expect(undocumented).toEqual([]);
  });

  it('shows each department\'s lag in a terminal with `cdc status`', async () => {
    await eventually(() => {
      const cli = spawnSync(process.execPath, ['packages/cli/bin/cdc.js', 'status'], { cwd: stack.root, env: run.cliEnv, encoding: 'utf8' });
      expect(cli.stderr).toBe('');
      expect(cli.stdout).toContain(`pipeline ${run.prefix}: 2 source table(s), 2 department(s)`);
      // health's sink runs and is caught up; haidian's sink is not started, so its record waits.
      expect(cli.stdout).toMatch(/^health\s+postgres\s+0\s+0\s*$/m);
      expect(cli.stdout).toMatch(/^haidian\s+postgres\s+0\s+[1-9]\d*\s*$/m);
      expect(cli.stdout).toMatch(/^source cityhub: reader checkpoint mariadb-bin\.\d+:\d+(?: \(GTID [0-9,-]+\))?, saved \S+; source binlog end mariadb-bin\.\d+:\d+$/m);
    }, 20_000, 500);
    const json = spawnSync(process.execPath, ['packages/cli/bin/cdc.js', 'status', '--json'], { cwd: stack.root, env: run.cliEnv, encoding: 'utf8' });
    expect(JSON.parse(json.stdout)).toMatchObject({
      pipeline: run.prefix,
      sources: [{ source: 'cityhub', checkpoint: { file: expect.stringMatching(/^mariadb-bin\./) }, binlogEnd: { file: expect.stringMatching(/^mariadb-bin\./) } }],
      departments: [{ department: 'health', target: 'postgres', transformerLag: 0, sinkLag: 0 }, { department: 'haidian', target: 'postgres', transformerLag: 0 }],
    });
  });

  it('says how long the row waited before each stage started on it', async () => {
    const [, transformer, sink] = services;
    for (const [svc, name] of [[transformer!, 'cityshare_transformer_batch_wait_seconds'], [sink!, 'cityshare_sink_batch_wait_seconds']] as const) {
      const text = await svc.metrics();
      const value = (suffix: string) => Number(new RegExp(`^${name}_${suffix}\\{[^}]*department="health"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1]);
      // At least the row inserted above, seconds at most after its producer wrote it.
      expect(value('count'), name).toBeGreaterThanOrEqual(1);
      expect(value('sum') / value('count'), name).toBeLessThan(30);
    }
  });

  it('serves /healthz and /readyz on every service', async () => {
    for (const svc of services) {
      expect((await fetch(`http://127.0.0.1:${svc.port}/healthz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${svc.port}/readyz`)).status).toBe(200);
    }
  });
});
