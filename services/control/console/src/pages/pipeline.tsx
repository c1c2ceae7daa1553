import type { Api } from '../api.js';
import { ErrorBox } from '../components/error-box.js';
import { useLoad } from '../components/use-load.js';
import { useI18n } from '../i18n/i18n.js';

interface PipelineStatus {
  at: string;
  pipeline: string | null;
  sources: Array<{ source: string; checkpoint: { file: string; pos: number; savedAt: string } | null; binlogEnd: { file: string; pos: number } | null; lagSeconds: number | null; paused: boolean }>;
  snapshots: Array<{ source: string; table: string; rows: number; remaining: number; etaSeconds: number }>;
  departments: Array<{ department: string; target: string; transformerLag: number; sinkLag: number }>;
  pausedTables: Array<{ table: string; department: string | null; why: string }>;
  deadLetters: Array<{ stage: string; reason: string; count: number; scope: string }>;
  services: Array<{ target: string; service: string | null; up: boolean; dependenciesDown: string[] }>;
  attention: Array<{ code: string; what: string; action: string }>;
}

interface ControlStatus {
  grants?: Record<string, number>;
  audit?: { entries: number; problems: number };
}

/** What `cdc status` shows, for an SRE, refreshing by itself every 5 s. */
export function PipelinePage({ api }: { api: Api }) {
  const { t, date } = useI18n();
  const status = useLoad(() => api.get<PipelineStatus>('/pipeline/status'), [], 5000);
  const control = useLoad(() => api.get<ControlStatus>('/status'), [], 5000);
  const s = status.value;
  return (
    <section>
      <h2>{t('pipeline.title')}{s?.pipeline ? <small> · {s.pipeline}</small> : null}</h2>
      <ErrorBox error={status.error} />
      {s && (
        <>
          <p class="hint" data-testid="updated">{t('pipeline.updated', { at: date(s.at) })}</p>
          <div class="card" data-testid="attention">
            <h3>{t('pipeline.attention')}</h3>
            {s.attention.length === 0 ? <p class="ok">{t('pipeline.allGood')}</p> : (
              <ul class="attention">{s.attention.map((a) => <li key={a.code + a.what}><strong>{a.code}</strong>: {a.what}<br /><small>{t('error.action')}: {a.action}</small></li>)}</ul>
            )}
          </div>
          <div class="card">
            <h3>{t('pipeline.sources')}</h3>
            <table data-testid="sources">
              <thead><tr><th>{t('catalog.source')}</th><th>{t('pipeline.position')}</th><th>{t('pipeline.binlogEnd')}</th><th>{t('pipeline.lag')}</th><th>{t('pipeline.paused')}</th></tr></thead>
              <tbody>{s.sources.map((x) => (
                <tr key={x.source}><td>{x.source}</td><td>{x.checkpoint ? `${x.checkpoint.file}:${x.checkpoint.pos}` : '—'}</td><td>{x.binlogEnd ? `${x.binlogEnd.file}:${x.binlogEnd.pos}` : '—'}</td><td>{x.lagSeconds ?? '—'}</td><td>{x.paused ? t('common.yes') : t('common.no')}</td></tr>
              ))}</tbody>
            </table>
          </div>
          {s.snapshots.length > 0 && (
            <div class="card">
              <h3>{t('pipeline.snapshots')}</h3>
              {s.snapshots.map((x) => (
                <div key={x.source + x.table} class="snapshot">
                  {x.source}.{x.table}: <progress max={Math.max(1, x.rows + x.remaining)} value={x.rows} /> {x.rows} / {x.rows + x.remaining} {t('pipeline.rows')} · {t('pipeline.eta', { s: x.etaSeconds })}
                </div>
              ))}
            </div>
          )}
          <div class="card">
            <h3>{t('pipeline.departments')}</h3>
            <table data-testid="departments">
              <thead><tr><th>{t('access.department')}</th><th>{t('catalog.target')}</th><th>{t('pipeline.transformerLag')}</th><th>{t('pipeline.sinkLag')}</th></tr></thead>
              <tbody>{s.departments.map((d) => <tr key={d.department}><td>{d.department}</td><td>{d.target}</td><td>{d.transformerLag}</td><td>{d.sinkLag}</td></tr>)}</tbody>
            </table>
          </div>
          <div class="card">
            <h3>{t('pipeline.pausedTables')}</h3>
            {s.pausedTables.length === 0 ? <p class="hint">{t('common.none')}</p> : <ul>{s.pausedTables.map((p) => <li key={p.table + p.department}>{p.table} {p.department ?? ''} — {p.why}</li>)}</ul>}
            <h3>{t('pipeline.deadLetters')}</h3>
            {s.deadLetters.length === 0 ? <p class="hint">{t('common.none')}</p> : (
              <table><thead><tr><th>{t('pipeline.stage')}</th><th>{t('pipeline.reason')}</th><th>{t('pipeline.scope')}</th><th>{t('pipeline.count')}</th></tr></thead>
                <tbody>{s.deadLetters.map((d) => <tr key={d.stage + d.reason + d.scope}><td>{d.stage}</td><td>{d.reason}</td><td>{d.scope}</td><td>{d.count}</td></tr>)}</tbody></table>
            )}
          </div>
          <div class="card">
            <h3>{t('pipeline.services')}</h3>
            <ul data-testid="services">{s.services.map((x) => <li key={x.target}>{x.service ?? x.target} ({x.target}): {x.up ? t('pipeline.up') : t('pipeline.down')}{x.dependenciesDown.length > 0 ? `, ${t('pipeline.waitsFor', { deps: x.dependenciesDown.join(', ') })}` : ''}</li>)}</ul>
            {control.value && (
              <>
                <h3>{t('pipeline.control')}</h3>
                <p>{t('pipeline.grants', { approved: control.value.grants?.approved ?? 0, requested: control.value.grants?.requested ?? 0 })}</p>
                {control.value.audit && <p>{t('pipeline.ledger', { entries: control.value.audit.entries, problems: control.value.audit.problems })}</p>}
              </>
            )}
          </div>
        </>
      )}
    </section>
  );
}
