import type { ColumnClass, GrantAction, GrantConfig, MaskSpec, PipelineConfig, TableConfig } from '../config/pipeline-schema.js';
import { keyNames } from '../crypto/keyring.js';
import type { CipherSuiteName } from '../crypto/suites.js';
import { compileRowFilter, type RowFilter } from './row-filter.js';
import type { CanonicalValue } from '../column-types.js';
import type { DataKey } from '../crypto/keyring.js';
import { applyMask } from './mask.js';
import { tokenKeyName, tokenize, type TokenOptions } from './tokenize.js';

/** Column classes whose values the reader seals under the pipeline key. */
export function isProtectedClass(cls: ColumnClass | undefined): boolean {
  // Unclassified columns (e.g. added by ALTER TABLE) are treated as secret until a DBA says otherwise.
  return cls === undefined || cls === 'personal' || cls === 'secret';
}

export type ColumnRule =
  | { column: string; action: 'pass' }
  | { column: string; action: 'encrypt'; suite: CipherSuiteName }
  /** `domain` undefined: the department's own token domain. */
  | { column: string; action: 'tokenize'; domain: string | undefined; options: TokenOptions }
  | { column: string; action: 'mask'; mask: MaskSpec };

export interface CompiledGrant {
  rules: ColumnRule[];
  /** Rows outside it are not shared; undefined shares every row. */
  filter: RowFilter | undefined;
}

/**
 * The rules of one grant for one table: which columns leave, and how, and which rows.
 * Columns that are not granted, or granted but not classified, are absent: secure by
 * default.
 */
export function compileGrant(grant: GrantConfig, table: TableConfig): CompiledGrant {
  const rules: ColumnRule[] = [];
  for (const [column, action] of Object.entries(grant.columns)) {
    if (!(column in table.columns)) continue;
    rules.push(ruleOf(column, action));
  }
  return { rules, filter: grant.filter === undefined ? undefined : compileRowFilter(grant.filter) };
}

function ruleOf(column: string, action: GrantAction): ColumnRule {
  if (action === 'pass') return { column, action };
  if (action === 'encrypt') return { column, action, suite: 'aes-256-gcm' };
  if (action === 'tokenize') return { column, action, domain: undefined, options: {} };
  if ('encrypt' in action) return { column, action: 'encrypt', suite: action.encrypt.suite };
  if ('tokenize' in action) {
    const { domain, algorithm, format } = action.tokenize;
    return { column, action: 'tokenize', domain, options: { algorithm, format } };
  }
  return { column, action: 'mask', mask: action.mask };
}

/**
 * The key lists a policy needs in the keyring: the KEK of every department with a grant, and
 * the token key of every domain its grants tokenize in (a department's own domain included).
 * The transformer refuses a policy without one of them; the control plane checks them before
 * it approves or publishes, so a grant cannot be approved that the transformer would refuse.
 */
export function policyKeyNames(config: Pick<PipelineConfig, 'departments'>): string[] {
  const names = new Set<string>();
  for (const department of config.departments) {
    if (department.grants.length === 0) continue;
    names.add(keyNames.department(department.name));
    for (const grant of department.grants) {
      for (const [column, action] of Object.entries(grant.columns)) {
        const rule = ruleOf(column, action);
        if (rule.action === 'tokenize') names.add(tokenKeyName(department.name, rule.domain));
      }
    }
  }
  return [...names];
}

/**
 * What a rule makes of one non-null value: the value itself (`pass`; `encrypt`, which the
 * caller then seals for the department) or the text the department receives (`mask`,
 * `tokenize`). The transformer and the verifier both apply grants through it.
 */
export function applyRule(rule: ColumnRule, plain: Exclude<CanonicalValue, null>, tokenKey: (domain: string | undefined) => DataKey): { as: 'value' } | { as: 'text'; text: string } {
  if (rule.action === 'mask') return { as: 'text', text: applyMask(rule.mask, plain) };
  if (rule.action === 'tokenize') return { as: 'text', text: tokenize(tokenKey(rule.domain), plain, rule.options) };
  return { as: 'value' };
}
