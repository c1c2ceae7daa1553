import { useEffect, useState } from 'preact/hooks';
import type { Api } from '../api.js';
import { ErrorBox } from '../components/error-box.js';
import { useLoad } from '../components/use-load.js';
import { useI18n, type MessageKey, type Translator } from '../i18n/i18n.js';
import { plainName, type CatalogView, type Grant } from './types.js';

const MASKS = ['name', 'phone', 'id_card', 'email', 'bank_card', 'address', 'plate', 'date_to_year', 'date_to_month', 'full'];
/** The actions a department picks from, as the grant spec writes them. */
const ACTIONS: Array<[string, unknown]> = [['pass', 'pass'], ...MASKS.map((m): [string, unknown] => [`mask:${m}`, { mask: m }]), ['tokenize', 'tokenize'], ['encrypt', 'encrypt']];
const WEEK_MS = 7 * 24 * 3_600_000;

const detailId = () => Number(location.hash.split('/')[2] ?? '') || undefined;

/**
 * The grant workflow in the browser: a department requests (columns with an action each, a
 * row filter checked as it is typed, purpose, expiry); a security officer works through the
 * queue, sees exactly what a department would receive (on synthetic values) and decides
 * with a reason, revokes grants in force and sees expiries coming.
 */
export function AccessPage({ api }: { api: Api }) {
  const i18n = useI18n();
  const { t } = i18n;
  const grants = useLoad(() => api.get<Grant[]>('/grants'));
  const [open, setOpen] = useState<number | undefined>(detailId);
  useEffect(() => {
    const onHash = () => setOpen(detailId());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const list = grants.value ?? [];
  const opened = list.find((g) => g.id === open);

  if (open !== undefined) {
    return (
      <section>
        <a href="#/access">← {t('access.back')}</a>
        <ErrorBox error={grants.error} />
        {opened && <GrantDetail api={api} grant={opened} onDecided={grants.reload} />}
      </section>
    );
  }
  const soon = list.filter((g) => g.status === 'approved' && g.expiresAt && new Date(g.expiresAt).getTime() - Date.now() < WEEK_MS).sort((a, b) => a.expiresAt!.localeCompare(b.expiresAt!));
  return (
    <section>
      <h2>{t('access.title')}</h2>
      <ErrorBox error={grants.error} />
      {api.may('grant.request') && <RequestForm api={api} onSent={grants.reload} />}
      {api.may('grant.request') ? (
        <GrantTable i18n={i18n} title={t('access.mine')} grants={list} testid="my-requests" />
      ) : (
        <>
          <GrantTable i18n={i18n} title={t('access.queue')} grants={list.filter((g) => g.status === 'requested')} testid="queue" />
          {soon.length > 0 && <GrantTable i18n={i18n} title={t('access.expiring')} grants={soon} testid="expiring" />}
          <GrantTable i18n={i18n} title={t('access.inForce')} grants={list.filter((g) => g.status === 'approved')} testid="in-force" />
          <GrantTable i18n={i18n} title={t('access.history')} grants={list.filter((g) => g.status !== 'requested' && g.status !== 'approved')} testid="history" />
        </>
      )}
    </section>
  );
}

function GrantTable({ i18n, title, grants, testid }: { i18n: Translator; title: string; grants: Grant[]; testid: string }) {
  const { t, date } = i18n;
  return (
    <div class="card" data-testid={testid}>
      <h3>{title}</h3>
      {grants.length === 0 ? <p class="hint">{t('common.none')}</p> : (
        <table>
          <thead><tr><th>{t('access.id')}</th><th>{t('access.department')}</th><th>{t('access.table')}</th><th>{t('catalog.columns')}</th><th>{t('access.purpose')}</th><th>{t('access.expires')}</th><th>{t('access.status')}</th><th /></tr></thead>
          <tbody>
            {grants.map((g) => (
              <tr key={g.id} data-grant={g.id}>
                <td>{g.id}</td><td>{g.department}</td><td>{g.table}</td><td>{Object.keys(g.spec.columns).join(', ')}</td><td>{g.purpose}</td>
                <td>{g.expiresAt ? date(g.expiresAt) : t('access.never')}</td>
                <td><span class={`status status-${g.status}`}>{t(`access.status.${g.status}` as MessageKey)}</span></td>
                <td><a href={`#/access/${g.id}`}>{t('access.open')}</a></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** A department's request: the table's columns with an action each, the filter checked live by the API. */
function RequestForm({ api, onSent }: { api: Api; onSent: () => void }) {
  const { t } = useI18n();
  const catalog = useLoad(() => api.get<CatalogView>('/catalog'));
  const tables = (catalog.value?.sources ?? []).flatMap((s) => s.tables.map((tb) => ({ ref: `${s.name}.${plainName(tb.name)}`, columns: tb.columns })));
  const [table, setTable] = useState('');
  const [actions, setActions] = useState<Record<string, string>>({});
  const [filter, setFilter] = useState('');
  const [filterReads, setFilterReads] = useState('');
  const [purpose, setPurpose] = useState('');
  const [expires, setExpires] = useState('');
  const [check, setCheck] = useState<{ state: 'idle' | 'checking' | 'valid' | 'invalid'; error?: unknown }>({ state: 'idle' });
  const [sent, setSent] = useState<{ id?: number; error?: unknown }>({});
  const columns = tables.find((x) => x.ref === table)?.columns ?? {};
  const body = () => ({
    table,
    columns: Object.fromEntries(Object.entries(actions).filter(([, a]) => a !== '').map(([c, a]) => [c, ACTIONS.find(([k]) => k === a)![1]])),
    ...(filter.trim() ? { filter: filter.trim() } : {}),
    ...(filterReads.trim() ? { filterReads: filterReads.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
    purpose: purpose.trim() || '-',
    ...(expires ? { expiresAt: new Date(expires).toISOString() } : {}),
  });

  // Live check: the API judges the request as its approval would, a moment after the last keystroke.
  useEffect(() => {
    if (!table || Object.values(actions).every((a) => a === '')) return setCheck({ state: 'idle' });
    setCheck({ state: 'checking' });
    const timer = setTimeout(() => {
      api.post('/grants/check', body()).then(() => setCheck({ state: 'valid' }), (error: unknown) => setCheck({ state: 'invalid', error }));
    }, 400);
    return () => clearTimeout(timer);
  }, [table, actions, filter, filterReads]);

  const submit = (e: Event) => {
    e.preventDefault();
    api.post<Grant>('/grants', { ...body(), purpose }).then((g) => {
      setSent({ id: g.id });
      onSent();
    }, (error: unknown) => setSent({ error }));
  };
  return (
    <form class="card" data-testid="request-form" onSubmit={submit}>
      <h3>{t('access.new')}</h3>
      <ErrorBox error={catalog.error} />
      <label>{t('access.table')}
        <select name="table" value={table} onChange={(e) => { setTable(e.currentTarget.value); setActions({}); }} required>
          <option value="">{t('access.chooseTable')}</option>
          {tables.map((x) => <option key={x.ref} value={x.ref}>{x.ref}</option>)}
        </select>
      </label>
      {table && (
        <table>
          <thead><tr><th>{t('catalog.column')}</th><th>{t('catalog.class')}</th><th>{t('access.action')}</th></tr></thead>
          <tbody>
            {Object.entries(columns).map(([c, cls]) => (
              <tr key={c}>
                <td>{c}</td><td><span class={`chip class-${cls}`}>{t(`catalog.class.${cls}` as MessageKey)}</span></td>
                <td>
                  <select name={`action-${c}`} value={actions[c] ?? ''} onChange={(e) => setActions({ ...actions, [c]: e.currentTarget.value })}>
                    <option value="">—</option>
                    {ACTIONS.map(([k]) => <option key={k} value={k}>{k}</option>)}
                  </select>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <label>{t('access.filter')}<input name="filter" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} placeholder='district == "海淀"' /></label>
      <p class="hint">{t('access.filterHint')}</p>
      <label>{t('access.filterReads')}<input name="filterReads" value={filterReads} onInput={(e) => setFilterReads(e.currentTarget.value)} /></label>
      <div class="check" data-testid="live-check" data-state={check.state}>
        {check.state === 'checking' && t('access.checking')}
        {check.state === 'valid' && <span class="ok">✓ {t('access.valid')}</span>}
        {check.state === 'invalid' && <ErrorBox error={check.error} />}
      </div>
      <label>{t('access.purpose')}<input name="purpose" value={purpose} onInput={(e) => setPurpose(e.currentTarget.value)} required /></label>
      <label>{t('access.expires')}<input type="datetime-local" name="expires" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} /></label>
      <button type="submit" class="primary" disabled={check.state === 'invalid'}>{t('access.submit')}</button>
      {sent.id !== undefined && <p class="ok" data-testid="request-sent">{t('access.sent', { id: sent.id })}</p>}
      <ErrorBox error={sent.error} />
    </form>
  );
}

interface Preview {
  columns: Array<{ column: string; class: string | null; action: string; sample: string; delivered: string | null }>;
  filter: string | null;
  filterReads: string[];
}

/** One request as the officer decides it: exactly what would leave, shown on synthetic values. */
function GrantDetail({ api, grant, onDecided }: { api: Api; grant: Grant; onDecided: () => void }) {
  const { t, date } = useI18n();
  const preview = useLoad(() => api.get<Preview>(`/grants/${grant.id}/preview`), [grant.id]);
  const [reason, setReason] = useState('');
  const [outcome, setOutcome] = useState<{ done?: Grant; error?: unknown }>({});
  const decide = (decision: 'approve' | 'reject' | 'revoke') => {
    api.post<Grant>(`/grants/${grant.id}/${decision}`, { reason }).then((done) => {
      setOutcome({ done });
      onDecided();
    }, (error: unknown) => setOutcome({ error }));
  };
  const decisions = grant.status === 'requested' ? (['approve', 'reject'] as const) : grant.status === 'approved' ? (['revoke'] as const) : [];
  return (
    <div class="card" data-testid="grant-detail">
      <h2>{t('access.detail', { id: grant.id })} <span class={`status status-${grant.status}`}>{t(`access.status.${grant.status}` as MessageKey)}</span></h2>
      <dl>
        <dt>{t('access.department')}</dt><dd>{grant.department}</dd>
        <dt>{t('access.table')}</dt><dd>{grant.table}</dd>
        <dt>{t('access.purpose')}</dt><dd>{grant.purpose}</dd>
        <dt>{t('access.expires')}</dt><dd>{grant.expiresAt ? date(grant.expiresAt) : t('access.never')}</dd>
        <dt>{t('access.requestedBy')}</dt><dd>{grant.requestedBy}</dd>
        {grant.decidedBy && <><dt>{t('access.decidedBy')}</dt><dd>{grant.decidedBy}: {grant.reason}</dd></>}
        <dt>{t('access.filter')}</dt><dd><code>{grant.spec.filter ?? t('access.noFilter')}</code>{grant.spec.filterReads?.length ? ` (${grant.spec.filterReads.join(', ')})` : ''}</dd>
      </dl>
      <h3>{t('access.receives')}</h3>
      <ErrorBox error={preview.error} />
      {preview.value && (
        <table data-testid="preview">
          <thead><tr><th>{t('catalog.column')}</th><th>{t('catalog.class')}</th><th>{t('access.action')}</th><th>{t('access.sample')}</th><th>{t('access.delivered')}</th></tr></thead>
          <tbody>
            {preview.value.columns.map((c) => (
              <tr key={c.column} class={c.class === 'personal' || c.class === 'secret' ? 'sensitive' : ''}>
                <td>{c.column}</td>
                <td><span class={`chip class-${c.class ?? 'none'}`}>{t(`catalog.class.${c.class ?? 'none'}` as MessageKey)}</span></td>
                <td>{c.action}</td><td><code>{c.sample}</code></td>
                <td>{c.delivered === null ? <em>{t('access.notDelivered')}</em> : <code>{c.delivered}</code>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p class="hint">{t('access.previewNote')}</p>
      {decisions.length > 0 && api.may(`grant.${decisions[0]}`) && (
        <div class="decide">
          <label>{t('common.reason')}<textarea name="reason" rows={2} value={reason} onInput={(e) => setReason(e.currentTarget.value)} /></label>
          <div class="buttons">{decisions.map((d) => <button key={d} type="button" class={d === 'approve' ? 'primary' : 'danger'} data-decision={d} onClick={() => decide(d)}>{t(`access.${d}` as MessageKey)}</button>)}</div>
        </div>
      )}
      {outcome.done && <p class="ok" data-testid="decided">{t('access.decided', { id: outcome.done.id, status: t(`access.status.${outcome.done.status}` as MessageKey) })}</p>}
      <ErrorBox error={outcome.error} />
    </div>
  );
}
