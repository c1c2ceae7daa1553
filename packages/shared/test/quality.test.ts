import { describe, expect, it } from 'vitest';
import { compileQuality, qualityError } from '../src/policy/quality.js';
import { qualityRule } from '../src/config/pipeline-schema.js';

describe('data-quality rules', () => {
  const check = compileQuality({
    id_card: { notNull: true, regex: '^\\d{17}[\\dX]$' },
    fee: { min: 0, max: '99999999.99' },
    big: { max: '18446744073709551615' },
    visited: { min: '2000-01-01' },
    district: { enum: ['东城', '西城', '海淀'] },
  });
  const good = { id_card: '11010119900101123X', fee: '12.50', big: '18446744073709551615', visited: '2024-03-01T10:00:00', district: '海淀' };

  it('passes a row that keeps every rule, and nulls where only notNull forbids them', () => {
    expect(check(good)).toEqual([]);
    expect(check({ ...good, fee: null, big: null, visited: null, district: null })).toEqual([]);
  });

  it('names each broken rule and column', () => {
    expect(check({ ...good, id_card: null })).toEqual([{ column: 'id_card', rule: 'notNull' }]);
    expect(check({ ...good, id_card: '1101011990' })).toEqual([{ column: 'id_card', rule: 'regex' }]);
    expect(check({ ...good, fee: '-0.01' })).toEqual([{ column: 'fee', rule: 'min' }]);
    expect(check({ ...good, district: '浦东', visited: '1999-12-31' })).toEqual([{ column: 'visited', rule: 'min' }, { column: 'district', rule: 'enum' }]);
  });

  it('compares big numbers exactly, not as floats', () => {
    // 2^64 rounds to the same double as 2^64 - 1; exact comparison tells them apart.
    expect(check({ ...good, big: '18446744073709551616' })).toEqual([{ column: 'big', rule: 'max' }]);
    expect(check({ ...good, fee: 99999999.99 })).toEqual([]);
    expect(check({ ...good, fee: '100000000.00' })).toEqual([{ column: 'fee', rule: 'max' }]);
  });

  it('never puts a value into the error', () => {
    const err = qualityError('civil.citizens', check({ ...good, id_card: '110101199001011234567' }));
    expect(err.code).toBe('QUALITY_FAILED');
    expect(err.message).toBe('civil.citizens: id_card breaks regex');
    expect(JSON.stringify(err.details)).not.toContain('1101011990');
  });

  it('refuses an invalid regular expression when the pipeline file loads, saying why', () => {
    expect(qualityRule.safeParse({ regex: '([a-z' }).success).toBe(false);
    const lookahead = qualityRule.safeParse({ regex: '^(?=\\d)\\w+$' });
    expect(JSON.stringify(lookahead.error?.issues)).toMatch(/invalid quality pattern .*lookarounds/);
    expect(qualityRule.safeParse({ regex: '^[a-z]+$', min: 1 }).success).toBe(true);
  });

  it('checks a value in time linear in its length, whatever the pattern', () => {
    // A rule a backtracking engine runs for hours on one 40-character value.
    const evil = compileQuality({ code: { regex: '^((?:[0-9]|\\d))*$' }, note: { regex: '^(a|aa)+$' } });
    const started = performance.now();
    expect(evil({ code: '1'.repeat(40) + 'x', note: 'a'.repeat(100_000) + 'b' })).toEqual([{ column: 'code', rule: 'regex' }, { column: 'note', rule: 'regex' }]);
    expect(evil({ code: '1'.repeat(40), note: 'aaaa' })).toEqual([]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
