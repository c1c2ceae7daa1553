import { ApiError } from '../api.js';
import { useI18n } from '../i18n/i18n.js';

/** A refusal as the API gave it: status and code, what happened, what to do, every problem. */
export function ErrorBox({ error }: { error: unknown }) {
  const { t } = useI18n();
  if (!error) return null;
  const e = error instanceof ApiError ? error : new ApiError(0, 'INTERNAL', String((error as Error).message ?? error), '');
  return (
    <div class="error" role="alert" data-code={e.code} data-status={e.status}>
      <strong>{e.status ? `${e.status} ` : ''}{e.code}</strong>: {e.message}
      {e.problems.length > 0 && (
        <div>
          {t('error.problems')}:
          <ul>{e.problems.map((p) => <li key={p}>{p}</li>)}</ul>
        </div>
      )}
      {e.action && <p class="action">{t('error.action')}: {e.action}</p>}
    </div>
  );
}
