import { useState } from 'preact/hooks';
import type { Api, Principal } from '../api.js';
import { ErrorBox } from '../components/error-box.js';
import { useI18n } from '../i18n/i18n.js';

/**
 * Sign-in with a token: sent once, in a POST body, to open a session; the field is cleared
 * and the token is kept nowhere. (An OIDC provider would be a second button here that opens
 * the same session: docs/control-plane.md, "Web console".)
 */
export function SignIn({ api, onSignedIn }: { api: Api; onSignedIn: (p: Principal) => void }) {
  const { t } = useI18n();
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>(undefined);
  const submit = (e: Event) => {
    e.preventDefault();
    api.signIn(token).then((p) => {
      setToken('');
      onSignedIn(p);
    }, (err: unknown) => {
      setToken('');
      setError(err);
    });
  };
  return (
    <form class="card sign-in" onSubmit={submit}>
      <h2>{t('signin.title')}</h2>
      <label>
        {t('signin.token')}
        <input type="password" name="token" autocomplete="off" value={token} onInput={(e) => setToken(e.currentTarget.value)} required />
      </label>
      <p class="hint">{t('signin.hint')}</p>
      <button type="submit">{t('signin.submit')}</button>
      <ErrorBox error={error} />
      <p class="hint">{t('signin.oidc')}</p>
    </form>
  );
}
