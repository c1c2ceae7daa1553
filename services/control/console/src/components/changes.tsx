import { useI18n } from '../i18n/i18n.js';

export interface CatalogChange {
  op: 'add' | 'remove' | 'change';
  kind: string;
  subject: string;
  before?: string;
  after?: string;
  fields?: string[];
}

export interface CatalogResult {
  changes: CatalogChange[];
  applied: boolean;
  pending?: { id: number };
  needsApproval?: boolean;
}

const SIGN = { add: '+', remove: '-', change: '~' } as const;

/** A catalog diff as `cdc apply` prints it, and what became of it. */
export function Changes({ result }: { result: CatalogResult }) {
  const { t } = useI18n();
  const n = result.changes.length;
  return (
    <div class="changes" data-testid="catalog-diff">
      <h4>{t('catalog.diff')}</h4>
      {n === 0 ? <p>{t('catalog.noChanges')}</p> : (
        <ul class="diff">
          {result.changes.map((c) => (
            <li key={`${c.op}${c.subject}`} class={`diff-${c.op}`}>
              {SIGN[c.op]} {c.kind} {c.subject}{c.before !== undefined || c.after !== undefined ? `: ${c.before ?? '∅'} → ${c.after ?? '∅'}` : ''}{c.fields ? ` (${c.fields.join(', ')})` : ''}
            </li>
          ))}
        </ul>
      )}
      {n > 0 && <p class="outcome">{result.pending ? t('catalog.pending', { n, id: result.pending.id }) : result.applied ? t('catalog.applied', { n }) : t('catalog.dryRun', { n })}</p>}
    </div>
  );
}
