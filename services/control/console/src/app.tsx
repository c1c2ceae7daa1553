import { useEffect, useMemo, useState } from 'preact/hooks';
import { Api, type Principal } from './api.js';
import { ErrorBox } from './components/error-box.js';
import { I18n, initialLang, rememberLang, translator, type Lang, type MessageKey } from './i18n/i18n.js';
import { AccessPage } from './pages/access.js';
import { AuditPage } from './pages/audit.js';
import { CatalogPage } from './pages/catalog.js';
import { KeysPage } from './pages/keys.js';
import { PipelinePage } from './pages/pipeline.js';
import { SignIn } from './pages/sign-in.js';

/**
 * The pages and the operations that open them: a role sees the pages it has an operation
 * for. The API decides all the same: a page opened by its address without the role shows
 * the API's refusal (403, written to the audit ledger).
 */
const PAGES: Array<{ path: string; label: MessageKey; opens: string[]; Page: (p: { api: Api }) => preact.JSX.Element }> = [
  { path: 'catalog', label: 'nav.catalog', opens: ['catalog.list'], Page: CatalogPage },
  { path: 'access', label: 'nav.access', opens: ['grant.list', 'grant.request'], Page: AccessPage },
  { path: 'pipeline', label: 'nav.pipeline', opens: ['status.show'], Page: PipelinePage },
  { path: 'audit', label: 'nav.audit', opens: ['audit.show'], Page: AuditPage },
  { path: 'keys', label: 'nav.keys', opens: ['key.list'], Page: KeysPage },
];

const currentPath = () => location.hash.replace(/^#\/?/, '').split('/')[0] ?? '';

export function App() {
  const api = useMemo(() => new Api(), []);
  const [lang, setLang] = useState<Lang>(initialLang);
  const i18n = useMemo(() => translator(lang), [lang]);
  const [principal, setPrincipal] = useState<Principal | null | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [path, setPath] = useState(currentPath);

  useEffect(() => {
    api.session().then(setPrincipal, setError);
    const onHash = () => setPath(currentPath());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, [api]);
  useEffect(() => rememberLang(lang), [lang]);

  const mine = PAGES.filter((p) => p.opens.some((op) => principal?.operations.includes(op)));
  const page = PAGES.find((p) => p.path === path) ?? mine[0];
  const { t } = i18n;

  return (
    <I18n.Provider value={i18n}>
      <header>
        <h1>{t('app.title')}</h1>
        <span class="tagline">{t('app.tagline')}</span>
        <span class="spacer" />
        <button type="button" class="link" data-testid="lang-switch" onClick={() => setLang(lang === 'zh-CN' ? 'en' : 'zh-CN')}>{t('lang.switch')}</button>
        {principal && (
          <>
            <span class="who" data-testid="who">{principal.name} · {t(`role.${principal.role}` as MessageKey)}{principal.department ? ` · ${principal.department}` : ''}</span>
            <button type="button" class="link" onClick={() => api.signOut().then(() => setPrincipal(null), setError)}>{t('signout')}</button>
          </>
        )}
      </header>
      <ErrorBox error={error} />
      {principal === undefined && !error && <p>{t('common.loading')}</p>}
      {principal === null && <SignIn api={api} onSignedIn={(p) => {
        setPrincipal(p);
        setError(undefined);
      }} />}
      {principal && (
        <div class="layout">
          <nav>
            {mine.map((p) => <a key={p.path} href={`#/${p.path}`} class={p === page ? 'active' : ''}>{t(p.label)}</a>)}
          </nav>
          <main>{page && <page.Page key={page.path} api={api} />}</main>
        </div>
      )}
      <footer>{t('common.timezone', { zone: i18n.zone })}</footer>
    </I18n.Provider>
  );
}
