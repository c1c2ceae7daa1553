import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { declaredMetrics, generatedDocs } from './gen-docs.js';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('references generated from the code', () => {
  it('docs/settings.md, docs/errors.md, docs/metrics.md, the role matrix in docs/control-plane.md and services/control/openapi.yaml are up to date (npm run docs)', async () => {
    for (const { path, content } of await generatedDocs()) expect(readFileSync(`${root}/${path}`, 'utf8'), `${path} is stale: run npm run docs`).toBe(content);
  });

  it('every setting says what it does', async () => {
    const settings = (await generatedDocs()).find((d) => d.path === 'docs/settings.md')!.content;
    const undescribed = settings.split('\n').filter((l) => /^\| `[A-Z_]+` \| [^|]+ \| +(\(|\|)/.test(l));
    expect(undescribed).toEqual([]);
  });

  it('the metric reference holds every service\'s metrics and the process metrics', () => {
    const { process, services } = declaredMetrics();
    const exporters = new Map(services.map((m) => [m.name, m.services]));
    expect(exporters.get('cityshare_reader_lag_seconds')).toEqual(['cdc-reader']);
    expect(exporters.get('cityshare_control_grants_in_force')).toEqual(['control']);
    expect(exporters.get('cityshare_dependency_up')).toEqual(['cdc-reader', 'transformer', 'sink', 'control', 'verifier']);
    expect(exporters.get('cityshare_forged_records_total')).toEqual(['cdc-reader', 'transformer', 'control']);
    expect(process.map((m) => m.name)).toContain('cityshare_process_resident_memory_bytes');
    expect(services.filter((m) => !m.help.trim())).toEqual([]);
  });

  it('the alert rules and the dashboard use only declared metrics', () => {
    const { process, services } = declaredMetrics();
    const series = new Set([...process, ...services].flatMap((m) => (m.type === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => m.name + s) : [m.name])));
    const rules = parse(readFileSync(`${root}/deploy/prometheus/alerts.yml`, 'utf8')) as { groups: Array<{ rules: Array<{ expr: string }> }> };
    const dashboard = JSON.parse(readFileSync(`${root}/deploy/grafana/cityshare-dashboard.json`, 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
    const exprs = [...rules.groups.flatMap((g) => g.rules.map((r) => r.expr)), ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))];
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\bcityshare_[a-z0-9_]+/g)].map((m) => m[0])));
    expect(used.size).toBeGreaterThan(20);
    expect([...used].filter((name) => !series.has(name))).toEqual([]);
  });
});
