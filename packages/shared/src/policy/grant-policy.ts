import type { ColumnClass, GrantAction, GrantConfig, TableConfig } from '../config/pipeline-schema.js';

/** Column classes whose values the reader seals under the pipeline key. */
export function isProtectedClass(cls: ColumnClass | undefined): boolean {
  // Unclassified columns (e.g. added by ALTER TABLE) are treated as secret until a DBA says otherwise.
  return cls === undefined || cls === 'personal' || cls === 'secret';
}

export type ColumnRule =
  | { column: string; action: 'pass' }
  | { column: string; action: 'encrypt' }
  | { column: string; action: 'tokenize' }
  | { column: string; action: 'mask'; mask: Extract<GrantAction, { mask: unknown }>['mask'] };

/**
 * The rules of one grant for one table: which columns leave, and how. Columns that are
 * not granted, or granted but no longer classified, are absent: secure by default.
 */
export function compileGrant(grant: GrantConfig, table: TableConfig): ColumnRule[] {
  const rules: ColumnRule[] = [];
  for (const [column, action] of Object.entries(grant.columns)) {
    if (!(column in table.columns)) continue;
    if (typeof action === 'string') rules.push({ column, action });
    else rules.push({ column, action: 'mask', mask: action.mask });
  }
  return rules;
}
