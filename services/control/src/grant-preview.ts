import { randomBytes } from 'node:crypto';
import { applyMask, compileGrant, encryptField, tokenize, type ColumnClass, type ColumnRule, type DataKey, type GrantConfig, type TableConfig } from '@cityshare/shared';
import type { GrantRequest } from './grants.js';

/**
 * Synthetic values a security officer sees a grant's actions applied to: by the mask a column
 * gets, else by what its name suggests, else by its class. None is anybody's data.
 */
const SAMPLES: Array<[RegExp, string]> = [
  [/phone|mobile|tel/, '13812345678'],
  [/id_?card|identity|sfz/, '110101199003074578'],
  [/e_?mail/, 'zhang.san@example.gov.cn'],
  [/bank|card_no|account/, '6222021234567890123'],
  [/address|addr/, '北京市海淀区中关村大街27号'],
  [/plate/, '京A12345'],
  [/birth|_date$|date_of/, '1990-05-17'],
  [/name/, '张三丰'],
  [/amount|salary|income|price/, '12345.67'],
  [/district|region/, '海淀'],
];
const MASK_SAMPLES: Record<string, string> = { phone: '13812345678', id_card: '110101199003074578', name: '张三丰', email: 'zhang.san@example.gov.cn', bank_card: '6222021234567890123', address: '北京市海淀区中关村大街27号', plate: '京A12345', date_to_year: '1990-05-17', date_to_month: '1990-05-17' };

function sampleFor(column: string, rule: ColumnRule | undefined): string {
  if (rule?.action === 'mask' && typeof rule.mask === 'string' && MASK_SAMPLES[rule.mask]) return MASK_SAMPLES[rule.mask]!;
  if (rule?.action === 'mask' && typeof rule.mask === 'object' && ('round' in rule.mask || 'bucket' in rule.mask)) return '12345.67';
  return SAMPLES.find(([pattern]) => pattern.test(column.toLowerCase()))?.[1] ?? `sample-${column}`;
}

function describeRule(rule: ColumnRule): string {
  switch (rule.action) {
    case 'pass':
      return 'pass';
    case 'mask':
      return `mask ${typeof rule.mask === 'string' ? rule.mask : JSON.stringify(rule.mask)}`;
    case 'tokenize':
      return `tokenize${rule.domain ? ` (domain ${rule.domain})` : ''}${rule.options.format ? ` ${rule.options.format}` : ''}${rule.options.algorithm ? ` ${rule.options.algorithm}` : ''}`;
    case 'encrypt':
      return `encrypt ${rule.suite}`;
  }
}

/** What one rule makes of a value, under throwaway keys: a token or ciphertext of the same form, never the real one. */
function applyRule(rule: ColumnRule, value: string, keys: { token: DataKey; data: DataKey }): string {
  switch (rule.action) {
    case 'pass':
      return value;
    case 'mask':
      return applyMask(rule.mask, value);
    case 'tokenize':
      return tokenize(keys.token, value, rule.options);
    case 'encrypt': {
      const sealed = encryptField(keys.data, Buffer.from(JSON.stringify(value)), 'preview').toString('base64');
      return `${sealed.slice(0, 32)}… (${rule.suite}; opened only with the department's key)`;
    }
  }
}

/**
 * What a grant would deliver, column by column, on synthetic values: the class of each
 * column, the action, a sample and what the department would receive for it. Columns granted
 * but not classified deliver nothing (secure by default). Tokens and ciphertexts are made
 * with keys drawn for this preview only, so the preview says nothing about real tokens.
 */
export function previewGrant(grant: Pick<GrantRequest, 'id' | 'spec'>, classes: Record<string, string>): { grant: number; columns: Array<{ column: string; class: string | null; action: string; sample: string; delivered: string | null }>; filter: string | null; filterReads: string[] } {
  const table = { name: 'preview', columns: classes as Record<string, ColumnClass> } as TableConfig;
  const rules = new Map(compileGrant({ table: 'preview', columns: grant.spec.columns } as GrantConfig, table).rules.map((r) => [r.column, r]));
  const keys = { token: { id: 'preview', material: randomBytes(32) }, data: { id: 'preview', material: randomBytes(32) } };
  return {
    grant: grant.id,
    columns: Object.entries(grant.spec.columns).map(([column, action]) => {
      const rule = rules.get(column);
      const sample = sampleFor(column, rule);
      return {
        column,
        class: classes[column] ?? null,
        action: rule ? describeRule(rule) : typeof action === 'string' ? action : JSON.stringify(action),
        sample,
        delivered: rule ? applyRule(rule, sample, keys) : null,
      };
    }),
    filter: grant.spec.filter ?? null,
    filterReads: grant.spec.filterReads ?? [],
  };
}
