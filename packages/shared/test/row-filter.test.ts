import { describe, expect, it } from 'vitest';
import type { CanonicalValue } from '../src/column-types.js';
import { grantSpec } from '../src/config/pipeline-schema.js';
import { isCdcError } from '../src/errors.js';
import { compileRowFilter, MAX_ROW_FILTER_DEPTH, MAX_ROW_FILTER_LENGTH } from '../src/policy/row-filter.js';

type Row = Record<string, CanonicalValue>;

function matches(expression: string, row: Row): boolean {
  return compileRowFilter(expression).matches(row);
}

function errorOf(expression: string): string {
  try {
    compileRowFilter(expression);
  } catch (err) {
    if (!isCdcError(err, 'CONFIG_INVALID')) throw err;
    return err.message;
  }
  throw new Error(`compiled: ${expression}`);
}

const citizen: Row = {
  id: '9007199254740993',
  name: '王小明',
  district: '海淀',
  fee: '120.50',
  age: 37,
  birth_date: '1988-03-02',
  updated_at: '2024-05-01T08:00:00.000000Z',
  clinic: 'X',
  diagnosis: null,
  active: true,
};

describe('row filter parsing', () => {
  it('compares with == != < <= > >=', () => {
    expect(matches('district == "海淀"', citizen)).toBe(true);
    expect(matches('district != "海淀"', citizen)).toBe(false);
    expect(matches('age < 38', citizen)).toBe(true);
    expect(matches('age <= 37', citizen)).toBe(true);
    expect(matches('age > 37', citizen)).toBe(false);
    expect(matches('age >= 37', citizen)).toBe(true);
    expect(matches('38 > age', citizen)).toBe(true);
  });

  it('reads string literals with both quotes and escapes', () => {
    expect(matches("district == '海淀'", citizen)).toBe(true);
    expect(matches('s == "a\\"b\'c\\\\d\\n\\t\\u4e2d\\u{1F600}"', { s: 'a"b\'c\\d\n\t中😀' })).toBe(true);
    expect(matches("s == 'it\\'s'", { s: "it's" })).toBe(true);
  });

  it('reads numbers with decimals and signs', () => {
    expect(matches('t == -5', { t: -5 })).toBe(true);
    expect(matches('t > -5.5', { t: -5 })).toBe(true);
    expect(matches('fee >= 100', citizen)).toBe(true);
    expect(matches('fee == 120.5', citizen)).toBe(true);
    expect(matches('t<-1', { t: -2 })).toBe(true);
  });

  it('reads true, false and null', () => {
    expect(matches('active == true', citizen)).toBe(true);
    expect(matches('active == false', citizen)).toBe(false);
    expect(matches('active', citizen)).toBe(true);
    expect(matches('true', {})).toBe(true);
    expect(matches('FALSE', {})).toBe(false);
    expect(matches('diagnosis == null', citizen)).toBe(false); // SQL: = NULL is never true
  });

  it('tests lists with in and not in', () => {
    expect(matches('district in ["东城", "西城"]', citizen)).toBe(false);
    expect(matches('district in ["东城", "海淀"]', citizen)).toBe(true);
    expect(matches('district not in ["东城", "西城"]', citizen)).toBe(true);
    expect(matches('age in [36, 37, "x"]', citizen)).toBe(true);
    expect(matches('age not in []', citizen)).toBe(true);
    expect(matches('age in []', citizen)).toBe(false);
    expect(matches('district NOT IN ["海淀"]', citizen)).toBe(false);
  });

  it('tests null with is null and is not null', () => {
    expect(matches('diagnosis is null', citizen)).toBe(true);
    expect(matches('diagnosis is not null', citizen)).toBe(false);
    expect(matches('clinic IS NOT NULL', citizen)).toBe(true);
    expect(matches('missing is null', citizen)).toBe(true);
  });

  it('tests text with starts_with, ends_with and contains', () => {
    expect(matches('name starts_with "王"', citizen)).toBe(true);
    expect(matches('name starts_with "李"', citizen)).toBe(false);
    expect(matches('name ends_with "明"', citizen)).toBe(true);
    expect(matches('name contains "小"', citizen)).toBe(true);
    expect(matches('name contains ""', citizen)).toBe(true);
    expect(matches('id starts_with "9007"', citizen)).toBe(true);
    expect(matches('age ends_with "7"', citizen)).toBe(true);
    expect(matches('active contains "t"', citizen)).toBe(false);
  });

  it('combines with && || ! and and or not, and parentheses', () => {
    expect(matches('district == "海淀" && fee >= 100', citizen)).toBe(true);
    expect(matches('district == "海淀" and fee >= 200', citizen)).toBe(false);
    expect(matches('district == "东城" || age == 37', citizen)).toBe(true);
    expect(matches('district == "东城" or age == 36', citizen)).toBe(false);
    expect(matches('!(district == "东城")', citizen)).toBe(true);
    expect(matches('not district == "东城"', citizen)).toBe(true);
    expect(matches('not not (age == 37)', citizen)).toBe(true);
    expect(matches('not (clinic == "X") || diagnosis is null', citizen)).toBe(true);
    expect(matches('not (clinic == "X") || diagnosis is not null', citizen)).toBe(false);
    expect(matches('((((age == 37))))', citizen)).toBe(true);
  });

  it('gives && precedence over ||', () => {
    // a || b && c  ==  a || (b && c)
    expect(matches('true || false && false', {})).toBe(true);
    expect(matches('(true || false) && false', {})).toBe(false);
    expect(matches('false && true || true', {})).toBe(true);
    expect(matches('a == 1 || b == 1 && c == 1', { a: 1, b: 0, c: 0 })).toBe(true);
    expect(matches('a == 1 || b == 1 && c == 1', { a: 0, b: 1, c: 0 })).toBe(false);
    expect(matches('a == 1 or b == 1 and c == 1', { a: 0, b: 1, c: 1 })).toBe(true);
  });

  it('reads back-ticked and keyword-like column names, case-insensitive keywords', () => {
    expect(matches('`order` == 1 AND `my col` == 2 Or `a``b` == 3', { order: 1, 'my col': 2 })).toBe(true);
    expect(matches('`a``b` == 3', { 'a`b': 3 })).toBe(true);
    expect(matches('`in` iN [1]', { in: 1 })).toBe(true);
    expect(matches('$x_1 == 1 && 区 == "海淀"', { $x_1: 1, 区: '海淀' })).toBe(true);
  });

  it('lists the columns it reads, once, in order', () => {
    const filter = compileRowFilter('district in ["东城"] && (fee > 1 || district is null) && `order` == 1 && "a" == "a"');
    expect(filter.columns).toEqual(['district', 'fee', 'order']);
    expect(filter.source).toBe('district in ["东城"] && (fee > 1 || district is null) && `order` == 1 && "a" == "a"');
    expect(compileRowFilter('true').columns).toEqual([]);
  });
});

describe('row filter comparisons', () => {
  it('compares big integers exactly', () => {
    expect(matches('id > 9007199254740992', citizen)).toBe(true);
    expect(matches('id == 9007199254740993', citizen)).toBe(true);
    expect(matches('id == 9007199254740992', citizen)).toBe(false);
    expect(matches('id < 18446744073709551615', { id: '18446744073709551614' })).toBe(true);
    expect(matches('id in [9007199254740992, 9007199254740993]', citizen)).toBe(true);
    // Two BIGINT columns compare as numbers, not as text.
    expect(matches('a < b', { a: '9', b: '10' })).toBe(true);
  });

  it('compares decimals exactly, whatever their scale', () => {
    expect(matches('fee == 120.500', citizen)).toBe(true);
    expect(matches('fee > 120.49999999999999999999', citizen)).toBe(true);
    expect(matches('x == 0.3', { x: '0.30' })).toBe(true);
    expect(matches('x > 0.1', { x: 0.1 })).toBe(false);
    expect(matches('x == -0', { x: 0 })).toBe(true);
  });

  it('compares a number with a numeric string, whichever side is the literal', () => {
    expect(matches('age == "37"', citizen)).toBe(true);
    expect(matches('age < "100"', citizen)).toBe(true);
  });

  it('treats quoted values as text', () => {
    expect(matches('fee >= "100"', citizen)).toBe(true); // "120.50" >= "100" as text
    expect(matches('code == "7"', { code: '007' })).toBe(false);
    expect(matches('code == 7', { code: '007' })).toBe(true);
  });

  it('compares text by code point and dates as their canonical text', () => {
    expect(matches('birth_date < "2000-01-01"', citizen)).toBe(true);
    expect(matches('birth_date >= "1988-03-02"', citizen)).toBe(true);
    expect(matches('updated_at >= "2024-05-01"', citizen)).toBe(true);
    expect(matches('updated_at < "2024-05-01T08:00:01"', citizen)).toBe(true);
    // U+FF5E (BMP, above the surrogates) sorts before U+1F600 by code point, not by UTF-16 unit.
    expect(matches('s < "😀"', { s: '～' })).toBe(true);
    expect(matches('"B" < "a"', {})).toBe(true);
    expect(matches('district > "东城"', citizen)).toBe('海淀' > '东城');
  });

  it('compares booleans with booleans and with 0/1', () => {
    expect(matches('flag == 1', { flag: true })).toBe(true);
    expect(matches('flag == 0', { flag: false })).toBe(true);
    expect(matches('flag > false', { flag: true })).toBe(true);
    expect(matches('flag == "true"', { flag: true })).toBe(false);
  });

  it('never equates values of unrelated types and does not order them', () => {
    expect(matches('age == "abc"', citizen)).toBe(false);
    expect(matches('age != "abc"', citizen)).toBe(true);
    expect(matches('age < "abc"', citizen)).toBe(false);
    expect(matches('age >= "abc"', citizen)).toBe(false);
    expect(matches('not (age < "abc")', citizen)).toBe(false);
  });
});

describe('row filter null semantics', () => {
  const row: Row = { x: null, y: 1 };

  it('makes every comparison with null false', () => {
    for (const op of ['==', '!=', '<', '<=', '>', '>=']) {
      expect(matches(`x ${op} 1`, row)).toBe(false);
      expect(matches(`1 ${op} x`, row)).toBe(false);
      expect(matches(`x ${op} null`, row)).toBe(false);
    }
    expect(matches('x in [1, 2]', row)).toBe(false);
    expect(matches('x not in [1, 2]', row)).toBe(false);
    expect(matches('x starts_with "a"', row)).toBe(false);
    expect(matches('x', row)).toBe(false);
  });

  it('keeps unknown through not, as SQL does', () => {
    expect(matches('not (x == 1)', row)).toBe(false);
    expect(matches('!(x != 1)', row)).toBe(false);
    expect(matches('not (x == 1) || y == 1', row)).toBe(true);
    expect(matches('not (x == 1 && y == 2)', row)).toBe(true); // unknown && false = false
    expect(matches('not (x == 1 || y == 1)', row)).toBe(false); // unknown || true = true
  });

  it('follows SQL for lists holding null', () => {
    expect(matches('y in [1, null]', row)).toBe(true);
    expect(matches('y in [2, null]', row)).toBe(false);
    expect(matches('y not in [2, null]', row)).toBe(false);
    expect(matches('y not in [2, 3]', row)).toBe(true);
  });

  it('tests null with is null, missing columns included', () => {
    expect(matches('x is null && y is not null', row)).toBe(true);
    expect(matches('nope is null', row)).toBe(true);
    expect(matches('nope == 1', row)).toBe(false);
  });
});

describe('row filter safety', () => {
  it('reads only own properties of the row', () => {
    expect(matches('constructor is null', {})).toBe(true);
    expect(matches('__proto__ is null', {})).toBe(true);
    expect(matches('toString is null && hasOwnProperty is null', {})).toBe(true);
    expect(matches('constructor == "x"', {})).toBe(false);
    const own = JSON.parse('{"__proto__": "p", "constructor": "c"}') as Row;
    expect(matches('__proto__ == "p" && constructor == "c"', own)).toBe(true);
    expect(compileRowFilter('__proto__ == 1 || constructor == 2').columns).toEqual(['__proto__', 'constructor']);
  });

  it('works on rows without a prototype', () => {
    const row = Object.assign(Object.create(null) as Row, { a: 1 });
    expect(matches('a == 1', row)).toBe(true);
  });

  it('limits the length of the expression', () => {
    const long = 'a == 1 || '.repeat(250) + 'a == 2';
    expect(long.length).toBeGreaterThan(MAX_ROW_FILTER_LENGTH);
    expect(errorOf(long)).toMatch(/^row filter "a == 1 \|\| .*…": expression longer than 2000 characters at position 2001$/);
    const fits = 'a == 1 || '.repeat(199) + 'a == 2';
    expect(fits.length).toBeLessThanOrEqual(MAX_ROW_FILTER_LENGTH);
    expect(matches(fits, { a: 2 })).toBe(true);
  });

  it('limits the nesting depth', () => {
    const ok = '('.repeat(MAX_ROW_FILTER_DEPTH) + 'a == 1' + ')'.repeat(MAX_ROW_FILTER_DEPTH);
    expect(matches(ok, { a: 1 })).toBe(true);
    const deep = '('.repeat(MAX_ROW_FILTER_DEPTH + 1) + 'a == 1' + ')'.repeat(MAX_ROW_FILTER_DEPTH + 1);
    expect(errorOf(deep)).toMatch(/nesting deeper than 32 levels at position 33$/);
    expect(errorOf('!'.repeat(40) + 'a')).toMatch(/nesting deeper than 32 levels at position 33$/);
    expect(errorOf('not '.repeat(16) + '('.repeat(17) + 'a' + ')'.repeat(17))).toMatch(/nesting deeper than 32 levels at position 81$/);
  });
});

describe('row filter errors', () => {
  const cases: Array<[string, string]> = [
    ['', 'empty expression at position 1'],
    ['   ', 'empty expression at position 1'],
    ['district == ', 'expected a column or a value, found the end of the expression at position 13'],
    ['district = "海淀"', 'unexpected "=" (use == for equality) at position 10'],
    ['a <> 1', 'unexpected "<>" (use != for inequality) at position 3'],
    ['a == 1 & b == 2', 'unexpected "&" (use &&) at position 8'],
    ['a == 1 | b == 2', 'unexpected "|" (use ||) at position 8'],
    ['"海淀" == district && (fee > 1', 'expected ")" to close "(", found the end of the expression at position 29'],
    ['a == 1)', 'unexpected ")" (expected &&, || or the end) at position 7'],
    ['a == 1 b == 2', 'unexpected column b (expected &&, || or the end) at position 8'],
    ['name == "王', 'unterminated string at position 9'],
    ['name == "a\\qb"', 'unknown escape "\\q" at position 11'],
    ['name == "\\u12"', 'invalid \\u escape (\\uXXXX or \\u{X...}) at position 10'],
    ['a in ["x", b]', 'a list holds values, not columns (found column b) at position 12'],
    ['a in "x"', 'expected "[" after "in", found string "x" at position 6'],
    ['a in ["x" "y"]', 'expected "]" to close the list, found string "y" at position 11'],
    ['a is 1', 'expected "null" after "is", found number 1 at position 6'],
    ['a is not true', 'expected "null" after "is not", found "true" at position 10'],
    ['a not like "x"', 'unexpected "not" (expected &&, || or the end) at position 3'],
    ['a == 1.', 'invalid number "1." at position 6'],
    ['a == 1e5', 'invalid number "1e" at position 6'],
    ['a == - 1', '"-" must start a number at position 6'],
    ['a == @', 'unexpected character "@" at position 6'],
    ['`a == 1', 'unterminated `quoted` column name at position 1'],
    ['`` == 1', 'empty column name at position 1'],
    ['&& a', 'expected a column or a value, found "&&" at position 1'],
    ['a == 1 ||', 'expected a column or a value, found the end of the expression at position 10'],
    ['地区 == "海淀" &&& b', 'unexpected "&" (use &&) at position 14'],
    ['a in [1,]', 'expected a column or a value, found "]" at position 9'],
  ];

  it.each(cases)('%s', (expression, what) => {
    const message = errorOf(expression);
    expect(message).toBe(`row filter ${JSON.stringify(expression)}: ${what}`);
  });

  it('counts positions in characters, Chinese and emoji included', () => {
    expect(errorOf('名 == "😀" @')).toBe('row filter "名 == \\"😀\\" @": unexpected character "@" at position 10');
  });

  it('carries the position in the details', () => {
    try {
      compileRowFilter('a == ');
    } catch (err) {
      expect(isCdcError(err, 'CONFIG_INVALID') && err.details).toEqual({ position: 6, problem: 'expected a column or a value, found the end of the expression' });
    }
  });
});

describe('grant filter in the pipeline file', () => {
  const grant = { table: 'cityhub.civil.citizens', columns: { id: 'pass' } };

  it('accepts a valid filter', () => {
    expect(grantSpec.parse({ ...grant, filter: 'district in ["东城", "西城"]' }).filter).toBe('district in ["东城", "西城"]');
    expect(grantSpec.parse(grant).filter).toBeUndefined();
  });

  it('reports a filter that does not compile with its position', () => {
    const parsed = grantSpec.safeParse({ ...grant, filter: 'district == "海淀" &&' });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues).toEqual([
      expect.objectContaining({
        path: ['filter'],
        message: 'row filter "district == \\"海淀\\" &&": expected a column or a value, found the end of the expression at position 20',
      }),
    ]);
  });
});
