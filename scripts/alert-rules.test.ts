import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { METRICS_PORTS } from '@cityshare/shared';

/**
 * The alert rules under Prometheus's own evaluator: `promtool test rules` runs
 * deploy/prometheus/alerts.test.yml, where each alert fires on its fault and is silent otherwise.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const dir = join(root, 'deploy', 'prometheus');
const promtool = execFileSync('bash', [join(root, 'scripts', 'ensure-promtool.sh')], { encoding: 'utf8' }).trim();
const run = (...args: string[]) => spawnSync(promtool, args, { encoding: 'utf8' });

type Rules = { groups: Array<{ rules: Array<{ alert: string; annotations?: unknown }> }> };
type Tests = { tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }> };

describe('alert rules (promtool)', () => {
  it('alerts.yml and prometheus.yml are valid, annotation templates included', () => {
    const rules = run('check', 'rules', join(dir, 'alerts.yml'));
    expect(rules.status, rules.stdout + rules.stderr).toBe(0);
    const config = run('check', 'config', '--syntax-only', join(dir, 'prometheus.yml'));
    expect(config.status, config.stdout + config.stderr).toBe(0);
  });

  it("prometheus.yml scrapes each service on its default metrics port", () => {
    const config = parse(readFileSync(join(dir, 'prometheus.yml'), 'utf8')) as { scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> };
    const jobs = { 'cityshare-reader': 'cdc-reader', 'cityshare-transformer': 'transformer', 'cityshare-sink': 'sink', 'cityshare-control': 'control', 'cityshare-verifier': 'verifier' } as const;
    expect(config.scrape_configs.map((c) => c.job_name).sort()).toEqual(Object.keys(jobs).sort());
    for (const job of config.scrape_configs) {
      const ports = new Set(job.static_configs.flatMap((c) => c.targets.map((t) => Number(t.split(':').pop()))));
      expect([...ports], job.job_name).toEqual([METRICS_PORTS[jobs[job.job_name as keyof typeof jobs]]]);
    }
  });

  it('every alert fires on its fault and is silent otherwise', () => {
    const work = mkdtempSync(join(tmpdir(), 'alerts-'));
    // promtool compares annotations as text; what is under test is each expression.
    const rules = parse(readFileSync(join(dir, 'alerts.yml'), 'utf8')) as Rules;
    for (const group of rules.groups) for (const rule of group.rules) delete rule.annotations;
    writeFileSync(join(work, 'alerts.yml'), stringify(rules));
    copyFileSync(join(dir, 'alerts.test.yml'), join(work, 'alerts.test.yml'));
    const result = run('test', 'rules', join(work, 'alerts.test.yml'));
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });

  it('the tests cover every alert, firing and silent', () => {
    const alerts = (parse(readFileSync(join(dir, 'alerts.yml'), 'utf8')) as Rules).groups.flatMap((g) => g.rules.map((r) => r.alert));
    const cases = (parse(readFileSync(join(dir, 'alerts.test.yml'), 'utf8')) as Tests).tests.flatMap((t) => t.alert_rule_test ?? []);
    const fired = new Set(cases.filter((c) => c.exp_alerts.length > 0).map((c) => c.alertname));
    const silent = new Set(cases.filter((c) => c.exp_alerts.length === 0).map((c) => c.alertname));
    // Alerts on a counter's increase have their silent case at the start of the same series.
    expect(alerts.filter((a) => !fired.has(a)), 'alerts never shown firing').toEqual([]);
    expect(alerts.filter((a) => !silent.has(a)), 'alerts never shown silent').toEqual([]);
  });
});
