import { describe, expect, it } from 'vitest';
import { maskSpec } from '../src/config/pipeline-schema.js';
import {
  applyMask,
  bucketOf,
  compareExactDecimals,
  exactDecimal,
  formatExactDecimal,
  masks,
  MAX_MASK_INPUT,
  roundTo,
} from '../src/policy/mask.js';
import { patternProblem } from '../src/policy/user-pattern.js';

describe('masks', () => {
  it('keeps the carrier prefix and last four digits of a mobile phone', () => {
    expect(masks.phone('13812341234')).toBe('138****1234');
    expect(masks.phone('+8613812341234')).toBe('+86138****1234');
  });

  it('masks mobile phones written with +86 forms, spaces and dashes, keeping the layout', () => {
    expect(masks.phone('+86 138 1234 1234')).toBe('+86 138 **** 1234');
    expect(masks.phone('+86-138-1234-1234')).toBe('+86-138-****-1234');
    expect(masks.phone('(+86)13812341234')).toBe('(+86)138****1234');
    expect(masks.phone('008613812341234')).toBe('0086138****1234');
    expect(masks.phone('8613812341234')).toBe('86138****1234');
    expect(masks.phone('138-1234-1234')).toBe('138-****-1234');
    expect(masks.phone(' 13812341234 ')).toBe('138****1234');
  });

  it('masks landlines and unknown phone formats', () => {
    expect(masks.phone('010-62345678')).toBe('010-****5678');
    expect(masks.phone('0755 87654321')).toBe('0755 ****4321');
    expect(masks.phone('(010)62345678转123')).toBe('(010)****5678转***');
    expect(masks.phone('12345')).toBe('****5');
    expect(masks.phone('')).toBe('');
  });

  it('keeps region code and check digit of an 18-digit resident ID', () => {
    expect(masks.id_card('11010119900101123X')).toBe('110101***********X');
    expect(masks.id_card('110101199001011234')).toBe('110101***********4');
    expect(masks.id_card('11010119900101123x')).toBe('110101***********X');
    expect(masks.id_card(' 110101 19900101 123X ')).toBe('110101***********X');
  });

  it('keeps the region code of a legacy 15-digit ID', () => {
    expect(masks.id_card('110101900101123')).toBe('110101*********');
  });

  it('masks an invalid ID card in full', () => {
    expect(masks.id_card('1101011990010112')).toBe('****************');
    expect(masks.id_card('11010119900101123Y')).toBe('******************');
    expect(masks.id_card('E12345678')).toBe('*********');
    expect(masks.id_card('')).toBe('');
  });

  it('keeps the surname of Chinese names and initials of Latin names', () => {
    expect(masks.name('张三')).toBe('张*');
    expect(masks.name('张三丰')).toBe('张**');
    expect(masks.name('John Smith')).toBe('J*** S****');
    expect(masks.name('王')).toBe('*');
  });

  it('keeps compound surnames', () => {
    expect(masks.name('欧阳娜娜')).toBe('欧阳**');
    expect(masks.name('司马光')).toBe('司马*');
    expect(masks.name('诸葛亮')).toBe('诸葛*');
    expect(masks.name('上官婉儿')).toBe('上官**');
    expect(masks.name('皇甫嵩')).toBe('皇甫*');
    expect(masks.name('东方朔')).toBe('东方*');
    expect(masks.name('慕容复')).toBe('慕容*');
    expect(masks.name('歐陽修')).toBe('歐陽*');
    // Two characters: surname 欧, given name 阳.
    expect(masks.name('欧阳')).toBe('欧*');
  });

  it('keeps the separators of transliterated names', () => {
    expect(masks.name('买买提·艾力')).toBe('买**·**');
  });

  it('counts code points, not UTF-16 units', () => {
    expect(masks.full('😀张')).toBe('**');
    expect(applyMask({ keep: { first: 1, last: 1, char: '#' } }, '😀ab😀')).toBe('😀##😀');
    expect(masks.name('𠀀𠀁𠀂')).toBe('𠀀**');
  });

  it('masks email', () => {
    expect(masks.email('alice@example.gov.cn')).toBe('a****@example.gov.cn');
    expect(masks.email('a@example.gov.cn')).toBe('*@example.gov.cn');
    expect(masks.email('not-an-email')).toBe('n***********');
  });

  it('masks bank cards of 16 to 19 digits, keeping first 6 and last 4', () => {
    expect(masks.bank_card('6222 0212 3456 7890')).toBe('622202******7890');
    expect(masks.bank_card('6222021234567890123')).toBe('622202*********0123');
    expect(masks.bank_card('6222-0212-3456-7890-12')).toBe('622202********9012');
    expect(masks.bank_card('123456789012')).toBe('********9012');
    expect(masks.bank_card('1234')).toBe('****');
  });

  it('keeps the address down to the district', () => {
    expect(masks.address('北京市海淀区中关村大街1号')).toBe('北京市海淀区*******');
    expect(masks.address('北京海淀区中关村大街1号')).toBe('北京海淀区*******');
    expect(masks.address('广东省深圳市南山区科技园南区')).toBe('广东省深圳市南山区*****');
    expect(masks.address('浙江省杭州市西湖区文三路')).toBe('浙江省杭州市西湖区***');
    expect(masks.address('上海市浦东新区世纪大道100号')).toBe('上海市浦东新区********');
    expect(masks.address('重庆市巫山县巫峡镇')).toBe('重庆市巫山县***');
    expect(masks.address('江苏省苏州市昆山市玉山镇')).toBe('江苏省苏州市昆山市***');
    expect(masks.address('湖北省仙桃市郑场镇')).toBe('湖北省仙桃市***');
    expect(masks.address('新疆维吾尔自治区阿勒泰地区布尔津县友谊路')).toBe('新疆维吾尔自治区阿勒泰地区布尔津县***');
    expect(masks.address('内蒙古自治区锡林郭勒盟正蓝旗上都镇')).toBe('内蒙古自治区锡林郭勒盟正蓝旗***');
    expect(masks.address('云南省昆明市石林彝族自治县鹿阜街道')).toBe('云南省昆明市石林彝族自治县****');
    expect(masks.address('中国广东省广州市天河区天河路')).toBe('中国广东省广州市天河区***');
    expect(masks.address('海淀区中关村大街1号')).toBe('海淀区*******');
    expect(masks.address('广东省东莞市长安镇沙头社区')).toBe('广东省东莞市*******');
    expect(masks.address('江苏省镇江市京口区正东路')).toBe('江苏省镇江市京口区***');
    expect(masks.address('黑龙江省哈尔滨市道里区中央大街')).toBe('黑龙江省哈尔滨市道里区****');
    expect(masks.address('河北省唐山市路南区新华道')).toBe('河北省唐山市路南区***');
    expect(masks.address('四川省阿坝藏族羌族自治州汶川县映秀镇')).toBe('四川省阿坝藏族羌族自治州汶川县***');
    expect(masks.address('北京市朝阳区')).toBe('北京市朝阳区');
  });

  it('keeps the first 6 characters of an address without a recognisable division', () => {
    expect(masks.address('中关村大街1号院3号楼')).toBe('中关村大街1*****');
    expect(masks.address('短地址')).toBe('***');
  });

  it('masks plates, new-energy plates included', () => {
    expect(masks.plate('京A12345')).toBe('京A***45');
    expect(masks.plate('京AD12345')).toBe('京A****45');
    expect(masks.plate('沪B·F1234A')).toBe('沪B·****4A');
    expect(masks.plate('粤B1234学')).toBe('粤B***4学');
    expect(masks.plate('京a12345')).toBe('京A***45');
    expect(masks.plate('ABC')).toBe('***');
  });

  it('reduces DATE, DATETIME and TIMESTAMP values to the year or the month', () => {
    expect(masks.date_to_year('1990-05-17')).toBe('1990');
    expect(masks.date_to_year('1990-05-17T08:30:00')).toBe('1990');
    expect(masks.date_to_year('1990-05-17T08:30:00.123456Z')).toBe('1990');
    expect(applyMask('date_to_year', 1990)).toBe('1990');
    expect(masks.date_to_year('not a date')).toBe('**********');
    expect(masks.date_to_month('1990-05-17')).toBe('1990-05');
    expect(masks.date_to_month('1990-05-17T08:30:00')).toBe('1990-05');
    expect(masks.date_to_month('1990-05-17T08:30:00.5Z')).toBe('1990-05');
    expect(applyMask('date_to_month', 1990)).toBe('1990');
    expect(masks.date_to_month('17/05/1990')).toBe('**********');
  });

  it('masks numbers as their text', () => {
    expect(applyMask('phone', 13812341234)).toBe('138****1234');
  });
});

describe('number masks', () => {
  it('round to a multiple, exactly, as a string', () => {
    expect(applyMask({ round: { to: 100 } }, 12345.67)).toBe('12300');
    expect(applyMask({ round: { to: 100 } }, '12345.67')).toBe('12300');
    expect(applyMask({ round: { to: 100 } }, '12350')).toBe('12400');
    expect(applyMask({ round: { to: 100 } }, -12350)).toBe('-12400');
    expect(applyMask({ round: { to: 100 } }, '-4')).toBe('0');
    expect(applyMask({ round: { to: 1000 } }, '18446744073709551615')).toBe('18446744073709552000');
    expect(applyMask({ round: { to: 0.01 } }, '0.125')).toBe('0.13');
    expect(applyMask({ round: { to: 0.01 } }, 7)).toBe('7.00');
    expect(applyMask({ round: { to: 0.5 } }, '2.74')).toBe('2.5');
    expect(applyMask({ round: { to: 1 } }, '99999999999999999999.5')).toBe('100000000000000000000');
    expect(applyMask({ round: { to: 100 } }, 1e21)).toBe('1000000000000000000000');
  });

  it('bucket numbers into ranges', () => {
    expect(applyMask({ bucket: { size: 10 } }, 37)).toBe('30-39');
    expect(applyMask({ bucket: { size: 10 } }, 30)).toBe('30-39');
    expect(applyMask({ bucket: { size: 10 } }, '39.99')).toBe('30-39');
    expect(applyMask({ bucket: { size: 5 } }, 0)).toBe('0-4');
    expect(applyMask({ bucket: { size: 10 } }, -5)).toBe('-10--1');
    expect(applyMask({ bucket: { size: 1000 } }, '9007199254740993')).toBe('9007199254740000-9007199254740999');
  });

  it('mask values that are not numbers in full', () => {
    expect(applyMask({ round: { to: 100 } }, 'abc')).toBe('***');
    expect(applyMask({ round: { to: 100 } }, '1e5')).toBe('***');
    expect(applyMask({ bucket: { size: 10 } }, true)).toBe('****');
    expect(roundTo('12', 0)).toBeNull();
    expect(bucketOf('12', 1.5)).toBeNull();
  });

  it('exact decimals parse canonical forms and numbers', () => {
    expect(exactDecimal('-12.50')).toEqual({ coef: -1250n, scale: 2 });
    expect(exactDecimal(1.5e-7)).toEqual({ coef: 15n, scale: 8 });
    expect(exactDecimal(' 1')).toBeNull();
    expect(exactDecimal(Infinity)).toBeNull();
    expect(formatExactDecimal({ coef: -5n, scale: 3 })).toBe('-0.005');
    expect(compareExactDecimals(exactDecimal('9007199254740993')!, exactDecimal(9007199254740992)!)).toBe(1);
    expect(compareExactDecimals(exactDecimal('1.10')!, exactDecimal('1.1')!)).toBe(0);
  });
});

describe('regex masks', () => {
  const spec = (pattern: string, replace: string, unmatched: 'full' | 'pass' = 'full') => ({ regex: { pattern, replace, unmatched } });

  it('replace every match, with groups and unicode', () => {
    expect(applyMask(spec('(\\d{3})\\d{4}(\\d{4})', '$1****$2'), '13812341234')).toBe('138****1234');
    expect(applyMask(spec('\\d', '#'), 'a1b2c3')).toBe('a#b#c#');
    expect(applyMask(spec('^(\\p{Han})\\p{Han}', '$1*'), '张三丰')).toBe('张*丰');
    expect(applyMask(spec('(?<area>\\d{3})\\d+', '$<area>…'), '13812341234')).toBe('138…');
    expect(applyMask(spec('.', '*'), '😀x')).toBe('**');
  });

  it('mask a value the pattern does not match in full unless told to pass it', () => {
    expect(applyMask(spec('\\d+', '#'), 'secret')).toBe('******');
    expect(applyMask(spec('\\d+', '#', 'pass'), 'secret')).toBe('secret');
  });

  it('process at most the first 4096 characters', () => {
    const long = 'a'.repeat(MAX_MASK_INPUT + 10);
    expect(applyMask(spec('a', 'b'), long)).toBe('b'.repeat(MAX_MASK_INPUT));
  });

  it('refuse invalid and long patterns, and say why constructs RE2 has not are refused', () => {
    expect(patternProblem('(')).toMatch(/missing closing \)/);
    expect(patternProblem('a'.repeat(201))).toMatch(/201 characters, at most 200/);
    expect(patternProblem('')).toMatch(/empty/);
    expect(patternProblem('(a)\\1')).toMatch(/backreferences are not supported/);
    expect(patternProblem('(?<x>a)\\k<x>')).toMatch(/backreferences are not supported/);
    expect(patternProblem('(?<=\\p{Han})\\p{Han}')).toMatch(/lookarounds .* are not supported/);
    expect(patternProblem('a(?!b)')).toMatch(/lookarounds/);
    expect(patternProblem('\\p{Script=Han}')).toMatch(/\\p\{Han\}/);
    // JavaScript's \u escapes are taken in RE2's spelling.
    expect(patternProblem('[\\u4e00-\\u9fa5]+')).toBeNull();
    expect(applyMask(spec('[\\u4e00-\\u9fa5]', '*'), '张三ab')).toBe('**ab');
    expect(applyMask(spec('\\u{1F600}', ':)'), 'hi😀')).toBe('hi:)');
    expect(applyMask(spec('\\\\u0041', 'x'), 'a\\u0041')).toBe('ax');
    // Patterns a backtracking engine cannot bound are fine here: matching is linear.
    for (const p of ['(a+)+$', '(?:a*)*', '(a|aa)+', '\\d*\\d*\\d*x', '[^@]+@.+', '(\\d{3})\\d{4}(\\d{4})', '(?<area>\\d{3})(ab)+', '\\x{1F600}']) {
      expect(patternProblem(p)).toBeNull();
    }
    expect(() => applyMask(spec('(?=a)', 'x'), 'aaa')).toThrow(/invalid pattern "\(\?=a\)": lookarounds/);
  });

  it('take time linear in the value whatever the pattern (ReDoS patterns of a backtracking engine)', () => {
    // `^((?:[0-9]|\d))*$` took a backtracking engine 3.6 s on 29 characters, doubling per character.
    const evil = ['^((?:[0-9]|\\d))*$', '(a|aa)+$', '^(\\d+)+$', '\\d*\\d*\\d*x', '(.*a){12}'];
    for (const pattern of evil) {
      for (const value of ['1'.repeat(29) + 'x', 'a'.repeat(MAX_MASK_INPUT) + 'b', '1'.repeat(MAX_MASK_INPUT)]) {
        const started = performance.now();
        applyMask(spec(pattern, '*'), value);
        expect(performance.now() - started).toBeLessThan(500);
      }
    }
  });

  it('validate patterns at config load, naming the pattern', () => {
    const bad = maskSpec.safeParse({ regex: { pattern: '[unclosed', replace: '*' } });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error!.issues)).toContain('invalid mask pattern \\"[unclosed\\"');
    const good = maskSpec.parse({ regex: { pattern: '\\d', replace: '*' } });
    expect(good).toEqual({ regex: { pattern: '\\d', replace: '*', unmatched: 'full' } });
    expect(maskSpec.parse({ round: { to: 100 } })).toEqual({ round: { to: 100 } });
    expect(maskSpec.safeParse({ bucket: { size: 0 } }).success).toBe(false);
    expect(maskSpec.parse('date_to_month')).toBe('date_to_month');
  });
});
