import { CdcError } from '../errors.js';
import type { CanonicalValue } from '../column-types.js';
import type { QualityRule } from '../config/pipeline-schema.js';
import { compareExactDecimals, exactDecimal } from './mask.js';
import { userPattern } from './user-pattern.js';

/** One broken rule: the column and the rule's name, never the value (it may be personal). */
export interface QualityViolation {
  column: string;
  rule: 'notNull' | 'regex' | 'min' | 'max' | 'enum';
}

export type QualityCheck = (row: Record<string, CanonicalValue>) => QualityViolation[];

/**
 * Data-quality rules a DBA sets per source column in the pipeline file. A change whose
 * new row image breaks one is not delivered to any department: it goes to the
 * transformer's dead-letter topic with the rules it broke and its source position, still
 * sealed. Null passes every rule but `notNull` (as an SQL CHECK does). `min`/`max`
 * compare numbers exactly (DECIMAL and BIGINT arrive as strings) and anything else,
 * such as dates in their canonical form, as text.
 */
export function compileQuality(rules: Record<string, QualityRule> | undefined): QualityCheck {
  const checks = Object.entries(rules ?? {}).map(([column, rule]) => {
    // RE2 (linear time): a rule's pattern cannot hang the transformer, whatever the value.
    const regex = rule.regex === undefined ? undefined : userPattern(rule.regex);
    const allowed = rule.enum && new Set(rule.enum.map(String));
    return (row: Record<string, CanonicalValue>, out: QualityViolation[]) => {
      const value = Object.hasOwn(row, column) ? row[column]! : null;
      if (value === null) {
        if (rule.notNull) out.push({ column, rule: 'notNull' });
        return;
      }
      if (regex && !regex.test(String(value))) out.push({ column, rule: 'regex' });
      if (rule.min !== undefined && compare(value, rule.min) < 0) out.push({ column, rule: 'min' });
      if (rule.max !== undefined && compare(value, rule.max) > 0) out.push({ column, rule: 'max' });
      if (allowed && !allowed.has(String(value))) out.push({ column, rule: 'enum' });
    };
  });
  return (row) => {
    const out: QualityViolation[] = [];
    for (const check of checks) check(row, out);
    return out;
  };
}

function compare(value: Exclude<CanonicalValue, null>, bound: number | string): number {
  const a = exactDecimal(value);
  const b = exactDecimal(bound);
  if (a && b) return compareExactDecimals(a, b);
  const x = String(value);
  const y = String(bound);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The error a broken rule becomes on the dead-letter topic. */
export function qualityError(table: string, violations: QualityViolation[]): CdcError {
  return new CdcError('QUALITY_FAILED', `${table}: ${violations.map((v) => `${v.column} breaks ${v.rule}`).join(', ')}`, {
    details: { table, violations },
  });
}
