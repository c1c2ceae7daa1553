import { CdcError, type ColumnRule, type ColumnSchema, type TableSchema } from '@cityshare/shared';
import type { GrantView } from './source-side.js';

/** A granted column of the table, with what the grant does to it. */
export interface Granted {
  column: ColumnSchema;
  rule: ColumnRule;
}

/**
 * The columns a department's grant gives it, in source column order (the order of a row's
 * values in its digest), and its key columns in key order. Every key column must be granted
 * as pass or tokenize: rows are compared by the key the department holds.
 */
export function grantedColumns(schema: TableSchema, view: GrantView): { granted: Granted[]; keys: Granted[] } {
  const rules = new Map(view.rules.map((r) => [r.column, r]));
  const granted = schema.columns.filter((c) => rules.has(c.name)).map((column) => ({ column, rule: rules.get(column.name)! }));
  const keys = schema.primaryKey.map((k) => granted.find((g) => g.column.name === k)).filter((g) => g !== undefined);
  if (keys.length !== schema.primaryKey.length || keys.some((g) => g.rule.action !== 'pass' && g.rule.action !== 'tokenize')) {
    throw new CdcError('CONFIG_INVALID', `${schema.db}.${schema.table}: every key column must be granted to ${view.department} as pass or tokenize for its rows to be compared`);
  }
  return { granted, keys };
}
