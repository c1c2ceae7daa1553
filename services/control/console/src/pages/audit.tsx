import { useState } from 'preact/hooks';
import type { Api } from '../api.js';
import { ErrorBox } from '../components/error-box.js';
import { useLoad } from '../components/use-load.js';
import { useI18n } from '../i18n/i18n.js';
import type { CatalogView, LedgerEntry } from './types.js';

interface Filters { actor: string; action: string; subject: string; since: string; until: string }
interface Verification { entries: number; head: { seq: number; hash: string }; problems: Array<{ seq: number; kind: string; message: string }> }

const PAGE = 50;
const EMPTY: Filters = { actor: '', action: '', subject: '', since: '', until: '' };
/** A time typed in the user's zone (datetime-local), as the API takes it. */
const iso = (local: string) => (local ? new Date(local).toISOString() : undefined);
const query = (f: Filters) => ({ actor: f.actor || undefined, action: f.action || undefined, subject: f.subject || undefined, since: iso(f.since), until: iso(f.until) });

/** The ledger, newest first, paged and filtered; verify it; export what the filter selects; delivery records per department. */
export function AuditPage({ api }: { api: Api }) {
  const { t, date } = useI18n();
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [before, setBefore] = useState<number | undefined>(undefined);
  const entries = useLoad(() => api.get<LedgerEntry[]>('/audit', { ...query(filters), before: before ?? Number.MAX_SAFE_INTEGER, limit: PAGE }), [filters, before]);
  const [verification, setVerification] = useState<{ result?: Verification; error?: unknown }>({});
  const [exported, setExported] = useState<{ n?: number; error?: unknown }>({});
  const set = (k: keyof Filters) => (e: Event) => setDraft({ ...draft, [k]: (e.currentTarget as HTMLInputElement).value });

  const exportAll = async () => {
    try {
      const lines: string[] = [];
      for (let after = 0; ;) {
        const page = await api.get<LedgerEntry[]>('/audit', { ...query(filters), after, limit: 5000 });
        lines.push(...page.map((e) => JSON.stringify(e)));
        if (page.length < 5000) break;
        after = page[page.length - 1]!.seq;
      }
      const link = document.createElement('a');
      link.href = URL.createObjectURL(new Blob([`${lines.join('\n')}\n`], { type: 'application/x-ndjson' }));
      link.download = `cityshare-audit-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.jsonl`;
      link.click();
      URL.revokeObjectURL(link.href);
      setExported({ n: lines.length });
    } catch (error) {
      setExported({ error });
    }
  };
  const list = entries.value ?? [];
  return (
    <section>
      <h2>{t('audit.title')}</h2>
      <form class="card filters" onSubmit={(e) => { e.preventDefault(); setBefore(undefined); setFilters(draft); }}>
        <label>{t('audit.actor')}<input name="actor" value={draft.actor} onInput={set('actor')} /></label>
        <label>{t('audit.action')}<input name="action" value={draft.action} onInput={set('action')} placeholder="grant.approve" /></label>
        <label>{t('audit.subject')}<input name="subject" value={draft.subject} onInput={set('subject')} placeholder="grant/" /></label>
        <label>{t('audit.since')}<input type="datetime-local" name="since" value={draft.since} onInput={set('since')} /></label>
        <label>{t('audit.until')}<input type="datetime-local" name="until" value={draft.until} onInput={set('until')} /></label>
        <div class="buttons">
          <button type="submit" class="primary">{t('audit.filter')}</button>
          <button type="button" onClick={() => { setDraft(EMPTY); setFilters(EMPTY); setBefore(undefined); }}>{t('audit.clear')}</button>
          <button type="button" data-testid="verify" onClick={() => api.get<Verification>('/audit/verify').then((result) => setVerification({ result }), (error: unknown) => setVerification({ error }))}>{t('audit.verify')}</button>
          <button type="button" data-testid="export" onClick={() => void exportAll()}>{t('audit.export')}</button>
        </div>
      </form>
      {verification.result && (
        <p class={verification.result.problems.length === 0 ? 'ok' : 'error'} data-testid="verification">
          {verification.result.problems.length === 0 ? t('audit.intact', { entries: verification.result.entries, seq: verification.result.head.seq, hash: verification.result.head.hash.slice(0, 16) }) : t('audit.tampered', { n: verification.result.problems.length })}
        </p>
      )}
      <ErrorBox error={verification.error} />
      {exported.n !== undefined && <p class="ok">{t('audit.exported', { n: exported.n })}</p>}
      <ErrorBox error={exported.error} />
      <ErrorBox error={entries.error} />
      {entries.value && (
        <div class="card">
          <table data-testid="ledger">
            <thead><tr><th>{t('audit.seq')}</th><th>{t('audit.at')}</th><th>{t('audit.actor')}</th><th>{t('audit.role')}</th><th>{t('audit.action')}</th><th>{t('audit.subject')}</th><th>{t('audit.details')}</th></tr></thead>
            <tbody>{list.map((e) => (
              <tr key={e.seq} class={e.action.startsWith('denied:') ? 'denied' : ''}><td>{e.seq}</td><td class="when">{date(e.at)}</td><td>{e.actor}</td><td>{e.role}</td><td>{e.action}</td><td>{e.subject}</td><td><Details value={e.details} /></td></tr>
            ))}</tbody>
          </table>
          <div class="buttons">
            <button type="button" disabled={before === undefined} onClick={() => setBefore(undefined)}>{t('audit.newest')}</button>
            <button type="button" disabled={list.length < PAGE} onClick={() => setBefore(list[list.length - 1]!.seq)}>{t('audit.older')}</button>
          </div>
        </div>
      )}
      <Deliveries api={api} />
    </section>
  );
}

/** An entry's details on one line, the whole of them on hover. */
function Details({ value }: { value: Record<string, unknown> }) {
  const json = JSON.stringify(value);
  return <code class="details" title={json}>{json.length > 120 ? `${json.slice(0, 120)}…` : json}</code>;
}

/** The sinks' delivered batches in the ledger, per department: counts and rows, never a value. */
function Deliveries({ api }: { api: Api }) {
  const { t } = useI18n();
  const departments = useLoad(() => api.get<CatalogView>('/catalog').then((c) => c.departments.map((d) => d.name)));
  const [department, setDepartment] = useState('');
  const batches = useLoad(() => (department ? api.get<LedgerEntry[]>('/audit', { action: 'delivery.batch', subject: `delivery/${department}/`, before: Number.MAX_SAFE_INTEGER, limit: 200 }) : Promise.resolve([])), [department]);
  const rows = (batches.value ?? []).reduce((n, e) => n + Number(e.details.rows ?? 0), 0);
  return (
    <div class="card" data-testid="deliveries">
      <h3>{t('audit.deliveries')}</h3>
      <select name="department" value={department} onChange={(e) => setDepartment(e.currentTarget.value)}>
        <option value="" />
        {(departments.value ?? []).map((d) => <option key={d} value={d}>{d}</option>)}
      </select>
      {department && <p>{t('audit.batches')}: {batches.value?.length ?? 0} · {t('audit.rowsTotal')}: {rows}</p>}
      <ErrorBox error={batches.error} />
    </div>
  );
}
