import { useState } from 'preact/hooks';
import type { Api } from '../api.js';
import { Changes, type CatalogResult } from '../components/changes.js';
import { ErrorBox } from '../components/error-box.js';
import { useLoad } from '../components/use-load.js';
import { useI18n, type MessageKey } from '../i18n/i18n.js';
import { CLASSES, plainName, type CatalogView } from './types.js';

type Rows = Array<{ column: string; cls: string }>;

/**
 * Sources, tables and column classes for every role (a department sees what it may ask
 * for); a DBA registers and classifies with the same diff preview and refusal-with-every-
 * problem as `cdc apply`: a dry run first, then the change.
 */
export function CatalogPage({ api }: { api: Api }) {
  const { t } = useI18n();
  const catalog = useLoad(() => api.get<CatalogView>('/catalog'));
  const [editing, setEditing] = useState<{ source: string; table: string; rows: Rows; register: boolean; appendOnly: boolean } | undefined>(undefined);
  const dba = api.may('table.classify');
  const className = (cls: string | undefined) => t(`catalog.class.${cls ?? 'none'}` as MessageKey);

  return (
    <section>
      <h2>{t('catalog.title')}</h2>
      <p class="hint">{t('catalog.intro')}</p>
      <ErrorBox error={catalog.error} />
      {catalog.value?.sources.map((s) => (
        <div class="card" key={s.name}>
          <h3>{t('catalog.source')}: {s.name}{s.connection?.host ? <small> ({s.connection.host}:{s.connection.port})</small> : null}</h3>
          <table>
            <thead><tr><th>{t('catalog.table')}</th><th>{t('catalog.columns')}</th>{dba && <th />}</tr></thead>
            <tbody>
              {s.tables.map((tb) => (
                <tr key={tb.name} data-table={plainName(tb.name)}>
                  <td>{plainName(tb.name)}{tb.appendOnly ? <span class="badge">{t('catalog.appendOnly')}</span> : null}</td>
                  <td>{Object.entries(tb.columns).map(([c, cls]) => <span key={c} class={`chip class-${cls}`} title={className(cls)}>{c}: {className(cls)}</span>)}</td>
                  {dba && <td><button type="button" onClick={() => setEditing({ source: s.name, table: plainName(tb.name), rows: Object.entries(tb.columns).map(([column, cls]) => ({ column, cls })), register: false, appendOnly: false })}>{t('catalog.edit')}</button></td>}
                </tr>
              ))}
            </tbody>
          </table>
          {dba && <button type="button" onClick={() => setEditing({ source: s.name, table: '', rows: [{ column: '', cls: 'public' }], register: true, appendOnly: false })}>{t('catalog.register')}</button>}
        </div>
      ))}
      {catalog.value && catalog.value.departments.length > 0 && (
        <div class="card">
          <h3>{t('catalog.departments')}</h3>
          <table><thead><tr><th>{t('access.department')}</th><th>{t('catalog.target')}</th></tr></thead>
            <tbody>{catalog.value.departments.map((d) => <tr key={d.name}><td>{d.name}</td><td>{d.target.kind}</td></tr>)}</tbody></table>
        </div>
      )}
      {editing && <TableEditor key={`${editing.source}:${editing.table}:${editing.register}`} api={api} editing={editing} onDone={() => { setEditing(undefined); catalog.reload(); }} />}
      {api.may('catalog.apply') && <ApplyFile api={api} onApplied={catalog.reload} />}
    </section>
  );
}

/** Register a table or classify its columns: preview (dry run) shows the diff; apply makes it. */
function TableEditor({ api, editing, onDone }: { api: Api; editing: { source: string; table: string; rows: Rows; register: boolean; appendOnly: boolean }; onDone: () => void }) {
  const { t } = useI18n();
  const [table, setTable] = useState(editing.table);
  const [rows, setRows] = useState<Rows>(editing.rows);
  const [appendOnly, setAppendOnly] = useState(editing.appendOnly);
  const [reason, setReason] = useState('');
  const [result, setResult] = useState<CatalogResult | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const send = (dryRun: boolean) => {
    const columns = Object.fromEntries(rows.filter((r) => r.column.trim()).map((r) => [r.column.trim(), r.cls === '' ? null : r.cls]));
    const body = { source: editing.source, table, columns, dryRun, ...(reason ? { reason } : {}), ...(editing.register ? { appendOnly } : {}) };
    setError(undefined);
    api.post<CatalogResult>(editing.register ? '/catalog/tables' : '/catalog/tables/classify', body).then((r) => {
      setResult(r);
      if (!dryRun) setTimeout(onDone, 1500);
    }, (err: unknown) => {
      setResult(undefined);
      setError(err);
    });
  };
  const set = (i: number, patch: Partial<Rows[number]>) => setRows(rows.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  return (
    <form class="card editor" data-testid="table-editor" onSubmit={(e) => { e.preventDefault(); send(false); }}>
      <h3>{editing.register ? t('catalog.register') : t('catalog.classify')} · {editing.source}</h3>
      <label>{t('catalog.tableName')}<input name="table" value={table} readOnly={!editing.register} onInput={(e) => setTable(e.currentTarget.value)} required /></label>
      {editing.register && <label class="inline"><input type="checkbox" checked={appendOnly} onChange={(e) => setAppendOnly(e.currentTarget.checked)} /> {t('catalog.appendOnly')}</label>}
      <table>
        <thead><tr><th>{t('catalog.column')}</th><th>{t('catalog.class')}</th></tr></thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={i} data-column={r.column}>
              <td><input name={`column-${i}`} value={r.column} readOnly={!editing.register && editing.rows.some((x) => x.column === r.column) && r.column !== ''} onInput={(e) => set(i, { column: e.currentTarget.value })} /></td>
              <td>
                <select name={`class-${i}`} value={r.cls} onChange={(e) => set(i, { cls: e.currentTarget.value })}>
                  {CLASSES.map((c) => <option key={c} value={c}>{t(`catalog.class.${c}` as MessageKey)}</option>)}
                  {!editing.register && <option value="">{t('catalog.class.none')}</option>}
                </select>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" onClick={() => setRows([...rows, { column: '', cls: 'public' }])}>{t('catalog.addColumn')}</button>
      <label>{t('common.reason')}<input name="reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} /></label>
      <div class="buttons">
        <button type="button" onClick={() => send(true)}>{t('catalog.preview')}</button>
        <button type="submit" class="primary">{t('catalog.apply')}</button>
      </div>
      {result && <Changes result={result} />}
      <ErrorBox error={error} />
    </form>
  );
}

/** A whole pipeline file, as `cdc apply` sends it. */
function ApplyFile({ api, onApplied }: { api: Api; onApplied: () => void }) {
  const { t } = useI18n();
  const [text, setText] = useState('');
  const [reason, setReason] = useState('');
  const [result, setResult] = useState<CatalogResult | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const send = (dryRun: boolean) => {
    setError(undefined);
    api.post<CatalogResult>('/catalog/apply', { pipeline: text, dryRun, ...(reason ? { reason } : {}) }).then((r) => {
      setResult(r);
      if (!dryRun) onApplied();
    }, (err: unknown) => {
      setResult(undefined);
      setError(err);
    });
  };
  return (
    <details class="card">
      <summary>{t('catalog.file')}</summary>
      <label>{t('catalog.fileText')}<textarea name="pipeline" rows={10} value={text} onInput={(e) => setText(e.currentTarget.value)} /></label>
      <label>{t('common.reason')}<input value={reason} onInput={(e) => setReason(e.currentTarget.value)} /></label>
      <div class="buttons">
        <button type="button" onClick={() => send(true)}>{t('catalog.preview')}</button>
        <button type="button" class="primary" onClick={() => send(false)}>{t('catalog.apply')}</button>
      </div>
      {result && <Changes result={result} />}
      <ErrorBox error={error} />
    </details>
  );
}
