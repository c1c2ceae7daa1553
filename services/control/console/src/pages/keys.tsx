import { useState } from 'preact/hooks';
import type { Api } from '../api.js';
import { ErrorBox } from '../components/error-box.js';
import { useLoad } from '../components/use-load.js';
import { useI18n } from '../i18n/i18n.js';

interface KeyVersion { name: string; id: string; created: string | null; active: boolean; rotatedBy: string | null }

/** Key lists and their versions (ids only); a security officer rotates one with a reason. */
export function KeysPage({ api }: { api: Api }) {
  const { t, date } = useI18n();
  const keys = useLoad(() => api.get<KeyVersion[]>('/keys'));
  const [name, setName] = useState('');
  const [reason, setReason] = useState('');
  const [outcome, setOutcome] = useState<{ done?: KeyVersion; error?: unknown }>({});
  const lists = [...new Set((keys.value ?? []).map((k) => k.name))];
  const rotate = (e: Event) => {
    e.preventDefault();
    api.post<KeyVersion>('/keys/rotate', { name, reason }).then((done) => {
      setOutcome({ done });
      setReason('');
      keys.reload();
    }, (error: unknown) => setOutcome({ error }));
  };
  return (
    <section>
      <h2>{t('keys.title')}</h2>
      <p class="hint">{t('keys.intro')}</p>
      <ErrorBox error={keys.error} />
      {keys.value && (
        <div class="card">
          <table data-testid="keys">
            <thead><tr><th>{t('keys.list')}</th><th>{t('keys.id')}</th><th>{t('keys.created')}</th><th>{t('keys.active')}</th><th>{t('keys.rotatedBy')}</th></tr></thead>
            <tbody>{keys.value.map((k, i) => (
              <tr key={k.id} data-key-list={k.name} class={i > 0 && keys.value![i - 1]!.name === k.name ? 'same-list' : ''}>
                <td>{i > 0 && keys.value![i - 1]!.name === k.name ? '' : <strong>{k.name}</strong>}</td><td><code>{k.id}</code></td><td>{date(k.created)}</td><td>{k.active ? '✓' : ''}</td><td>{k.rotatedBy ?? ''}</td>
              </tr>
            ))}</tbody>
          </table>
        </div>
      )}
      {api.may('key.rotate') && (
        <form class="card" data-testid="rotate" onSubmit={rotate}>
          <h3>{t('keys.rotate')}</h3>
          <label>{t('keys.list')}<select name="name" value={name} onChange={(e) => setName(e.currentTarget.value)} required><option value="" />{lists.map((l) => <option key={l} value={l}>{l}</option>)}</select></label>
          <label>{t('common.reason')}<input name="reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} required /></label>
          <button type="submit" class="primary">{t('keys.rotate')}</button>
          {outcome.done && <p class="ok">{t('keys.rotated', { id: outcome.done.id, name: outcome.done.name })}</p>}
          <ErrorBox error={outcome.error} />
        </form>
      )}
    </section>
  );
}
