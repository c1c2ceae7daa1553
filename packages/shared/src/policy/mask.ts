import type { MaskSpec } from '../config/pipeline-schema.js';
import { userPattern } from './user-pattern.js';

/**
 * Irreversible masks for personal data. They work on code points (Chinese characters
 * and emoji count as one), keep the part a recipient legitimately needs (region of an
 * ID card, carrier prefix of a phone, district of an address, year of a birth date),
 * and always return a string. A value a mask does not recognise is hidden more, never
 * less: an invalid ID card is masked in full, not passed through.
 */
const STAR = '*';

function keep(value: string, first: number, last: number, char = STAR): string {
  const chars = Array.from(value);
  if (chars.length <= first + last) return char.repeat(chars.length);
  return chars.slice(0, first).join('') + char.repeat(chars.length - first - last) + chars.slice(chars.length - last).join('');
}

function stars(value: string): string {
  return STAR.repeat(Array.from(value).length);
}

/** Masks the digits of `value` except the first `first` and last `last` digits; other characters stay. */
function maskDigits(value: string, first: number, last: number): string {
  const total = value.replace(/\D/g, '').length;
  let seen = 0;
  return value.replace(/\d/g, (d) => {
    seen++;
    return seen <= first || seen > total - last ? d : STAR;
  });
}

const HAN = /\p{Script=Han}/u;

/**
 * Compound surnames (复姓), simplified and traditional. A name of three or more
 * characters that starts with one keeps both characters; 欧阳 alone (two characters)
 * is read as surname 欧 and given name 阳, as people write it.
 */
export const COMPOUND_SURNAMES: ReadonlySet<string> = new Set([
  '欧阳', '太史', '端木', '上官', '司马', '东方', '独孤', '南宫', '万俟', '闻人', '夏侯', '诸葛', '尉迟', '公羊',
  '赫连', '澹台', '皇甫', '宗政', '濮阳', '公冶', '太叔', '申屠', '公孙', '慕容', '仲孙', '钟离', '长孙', '宇文',
  '司徒', '鲜于', '司空', '闾丘', '子车', '亓官', '司寇', '巫马', '公西', '颛孙', '壤驷', '公良', '漆雕', '乐正',
  '宰父', '谷梁', '拓跋', '夹谷', '轩辕', '令狐', '段干', '百里', '呼延', '东郭', '南门', '羊舌', '微生', '梁丘',
  '左丘', '东门', '西门', '第五', '公仪', '公乘', '南荣', '东里', '即墨', '达奚', '褚师', '单于', '呼衍', '纳兰',
  '歐陽', '司馬', '東方', '獨孤', '南宮', '聞人', '諸葛', '尉遲', '公孫', '鍾離', '長孫', '鮮于', '閭丘', '顓孫',
  '壤駟', '樂正', '穀梁', '軒轅', '東郭', '南門', '東門', '單于', '納蘭', '澹臺',
]);

/** Separators kept inside names: spaces and the middle dots of transliterated names (买买提·艾力). */
const NAME_SEPARATOR = /^[\s·•・‧.]$/u;

/** Plate: province abbreviation, issuing letter, optional separator, 5 (fuel) or 6 (new energy) characters, optional class suffix. */
const PLATE = /^([京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领])([A-Z])([·•.\s-]?)([A-Z0-9]{4,6})([挂学警港澳领试超使]?)$/u;

/** Canonical DATE, DATETIME and TIMESTAMP values (and YEAR, which travels as a number). */
const DATE_LIKE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?)?)?$/;

/**
 * Administrative division names: the first character may be anything but a digit, space or
 * division suffix (镇江市, 道里区, 路南区, 乡宁县 exist); later characters may not be those
 * that start a town, street, village or building (镇 乡 街 路 道 号 村 ...), so a match never
 * runs past the district into a street. Unusual names are hidden rather than kept.
 */
const FIRST = '[^\\s\\d０-９市区县旗]';
const REST = '[^\\s\\d０-９市区县旗镇乡街路道号村巷弄楼栋室社组]';
const COUNTRY = /^(?:中华人民共和国|中国)/u;
const MUNICIPALITY = /^(?:北京|上海|天津|重庆)(?:市)?/u;
const PROVINCE = new RegExp(`^${FIRST}${REST}{1,8}?(?:省|自治区|特别行政区)`, 'u');
const CITY = new RegExp(`^${FIRST}${REST}{0,9}?(?:市|自治州|地区|盟)`, 'u');
const DISTRICT = new RegExp(`^${FIRST}${REST}{0,8}?[区县市旗](?![场政委])`, 'u');

/**
 * Length of the administrative prefix of an address (country, province, city, district),
 * or 0 when none is recognised.
 */
function divisionPrefix(address: string): number {
  let at = 0;
  let matched = 0;
  const step = (re: RegExp): boolean => {
    const m = re.exec(address.slice(at));
    if (!m) return false;
    at += m[0].length;
    matched = at;
    return true;
  };
  const country = COUNTRY.exec(address);
  if (country) at = country[0].length;
  if (step(MUNICIPALITY)) {
    step(DISTRICT);
    return matched;
  }
  step(PROVINCE);
  const afterProvince = at;
  if (step(CITY)) {
    // A county-level city directly under its province (湖北省仙桃市) is already the district level.
    step(DISTRICT);
    return matched;
  }
  at = afterProvince;
  step(DISTRICT);
  return matched;
}

export const masks = {
  /**
   * Mobile phone: keeps the country prefix as written, the first 3 and the last 4 digits
   * of the 11-digit number and every separator: 13812341234 -> 138****1234,
   * +86 138-1234-1234 -> +86 138-****-1234. Landline (010-62345678): keeps the area code
   * and the last 4 digits. Anything else: keeps at most the last 4 characters.
   */
  phone(value: string): string {
    const v = value.trim();
    const mobile = /^(\(?(?:\+|00)?86\)?[\s-]?)?(1\d{2}[\s-]?\d{4}[\s-]?\d{4})$/.exec(v);
    if (mobile) return (mobile[1] ?? '') + maskDigits(mobile[2]!, 3, 4);
    const landline = /^(\(?0\d{2,3}\)?[\s-]?)(\d{7,8})((?:[\s-]|转|ext\.?)\d{1,6})?$/i.exec(v);
    if (landline) return landline[1]! + maskDigits(landline[2]!, 0, 4) + maskDigits(landline[3] ?? '', 0, 0);
    return keep(v, 0, Math.min(4, Math.floor(Array.from(v).length / 3)));
  },
  /**
   * Resident ID card: 18 characters keep the 6-digit region code and the check digit
   * (x upper-cased); the legacy 15-digit form keeps the region code. Spaces inside are
   * ignored. Anything else (passport numbers, typos) is masked in full.
   */
  id_card(value: string): string {
    const v = value.replace(/\s/g, '');
    if (/^\d{17}[\dXx]$/.test(v)) return keep(v.toUpperCase(), 6, 1);
    if (/^\d{15}$/.test(v)) return keep(v, 6, 0);
    return stars(v);
  },
  /**
   * Chinese names keep the surname (compound surnames such as 欧阳, 司马, 诸葛 for names
   * of three or more characters): 张三丰 -> 张**, 欧阳娜娜 -> 欧阳**. Latin names keep the
   * initial of each word: John Smith -> J*** S****. Spaces and middle dots stay.
   */
  name(value: string): string {
    const v = value.trim();
    const chars = Array.from(v);
    if (HAN.test(v)) {
      const surname = chars.length >= 3 && COMPOUND_SURNAMES.has(chars[0]! + chars[1]!) ? 2 : 1;
      if (chars.length <= surname) return stars(v);
      return chars.map((c, i) => (i < surname || NAME_SEPARATOR.test(c) ? c : STAR)).join('');
    }
    return v.split(/(\s+)/).map((part) => (/\s/.test(part) ? part : keep(part, 1, 0))).join('');
  },
  /** alice@example.gov.cn -> a****@example.gov.cn; the domain stays, the local part keeps its first character. */
  email(value: string): string {
    const v = value.trim();
    const at = v.lastIndexOf('@');
    if (at <= 0) return keep(v, 1, 0);
    return keep(v.slice(0, at), 1, 0) + v.slice(at);
  },
  /**
   * Bank card (16 to 19 digits, spaces and dashes ignored): keeps the issuer number (first
   * 6) and the last 4 digits: 622202******7890. Other input keeps at most its last 4 characters.
   */
  bank_card(value: string): string {
    const digits = value.replace(/[\s-]/g, '');
    if (/^\d{16,19}$/.test(digits)) return keep(digits, 6, 4);
    const chars = Array.from(digits).length;
    return keep(digits, 0, chars >= 12 ? 4 : 0);
  },
  /**
   * Keeps the administrative divisions down to the district or county (北京市海淀区,
   * 广东省深圳市南山区, 湖北省仙桃市, 新疆维吾尔自治区阿勒泰地区布尔津县) and hides the rest;
   * an address without a recognisable division keeps its first 6 characters.
   */
  address(value: string): string {
    const v = value.trim();
    const prefix = divisionPrefix(v);
    if (prefix === 0) return keep(v, 6, 0);
    return v.slice(0, prefix) + stars(v.slice(prefix));
  },
  /**
   * Vehicle plate: keeps the province, the issuing letter, separators and the last 2
   * characters: 京A12345 -> 京A***45, new-energy 京AD12345 -> 京A****45. Unrecognised
   * plates shorter than 7 characters are masked in full.
   */
  plate(value: string): string {
    const v = value.trim().toUpperCase();
    const m = PLATE.exec(v);
    if (m) {
      const tail = m[4]! + m[5]!;
      const tailChars = Array.from(tail);
      return m[1]! + m[2]! + m[3]! + STAR.repeat(tailChars.length - 2) + tailChars.slice(-2).join('');
    }
    return Array.from(v).length < 7 ? stars(v) : keep(v, 2, 2);
  },
  /** 1990-05-17, 1990-05-17T08:30:00, 1990-05-17T08:30:00.123456Z and YEAR 1990 -> 1990 (the year as written, UTC for TIMESTAMP). */
  date_to_year(value: string): string {
    const m = DATE_LIKE.exec(value.trim());
    return m ? m[1]! : stars(value);
  },
  /** 1990-05-17 (DATE, DATETIME, TIMESTAMP) -> 1990-05; a bare year stays a year. */
  date_to_month(value: string): string {
    const m = DATE_LIKE.exec(value.trim());
    if (!m) return stars(value);
    return m[2] === undefined ? m[1]! : `${m[1]}-${m[2]}`;
  },
  /** Every character becomes *. */
  full(value: string): string {
    return stars(value);
  },
} satisfies Record<string, (v: string) => string>;

export type MaskKind = keyof typeof masks;

// ---------------------------------------------------------------------------------
// Exact decimals, for number masks (and row filters): no float rounding anywhere.

/** value = coef / 10^scale, exactly. */
export interface ExactDecimal {
  coef: bigint;
  scale: number;
}

const DECIMAL_TEXT = /^(-?)(\d+)(?:\.(\d+))?$/;
const NUMBER_TEXT = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/;
const MAX_DECIMAL_CHARS = 4096;

/**
 * Exact decimal of a canonical value: a JS number (its shortest round-trip decimal form)
 * or a plain decimal string as DECIMAL and BIGINT travel ('-12.50', '18446744073709551615').
 * Exponent notation in strings, booleans, and everything else: null.
 */
export function exactDecimal(value: unknown): ExactDecimal | null {
  let m: RegExpExecArray | null;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return null;
    if (Number.isSafeInteger(value)) return { coef: BigInt(value), scale: 0 };
    m = NUMBER_TEXT.exec(String(value));
  } else if (typeof value === 'string') {
    if (value.length > MAX_DECIMAL_CHARS) return null;
    m = DECIMAL_TEXT.exec(value);
  } else {
    return null;
  }
  if (!m) return null;
  const [, sign, int, frac = '', exp = '0'] = m;
  let coef = BigInt(int! + frac);
  let scale = frac.length - Number(exp);
  if (scale < 0) {
    coef *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { coef: sign === '-' ? -coef : coef, scale };
}

function rescale(d: ExactDecimal, scale: number): bigint {
  return d.coef * 10n ** BigInt(scale - d.scale);
}

/** -1, 0 or 1, exactly. */
export function compareExactDecimals(a: ExactDecimal, b: ExactDecimal): number {
  if (a.scale === b.scale) return a.coef < b.coef ? -1 : a.coef > b.coef ? 1 : 0;
  const scale = Math.max(a.scale, b.scale);
  const x = rescale(a, scale);
  const y = rescale(b, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Canonical text: no exponent, exactly `scale` fraction digits, no negative zero. */
export function formatExactDecimal(d: ExactDecimal): string {
  const negative = d.coef < 0n;
  const digits = (negative ? -d.coef : d.coef).toString().padStart(d.scale + 1, '0');
  const int = digits.slice(0, digits.length - d.scale);
  const frac = digits.slice(digits.length - d.scale);
  return (negative ? '-' : '') + int + (d.scale > 0 ? '.' + frac : '');
}

/** Integer division rounding half away from zero (四舍五入). den > 0. */
function divRoundHalfUp(num: bigint, den: bigint): bigint {
  const q = num / den;
  const r = num % den;
  const twice = (r < 0n ? -r : r) * 2n;
  if (twice >= den) return num < 0n ? q - 1n : q + 1n;
  return q;
}

/** Integer division rounding towards negative infinity. den > 0. */
function divFloor(num: bigint, den: bigint): bigint {
  const q = num / den;
  return num % den !== 0n && num < 0n ? q - 1n : q;
}

/**
 * Rounds to the nearest multiple of `to` (half away from zero); the result has as many
 * fraction digits as `to`: 12345.67 to 100 -> '12300', '0.125' to 0.01 -> '0.13'.
 */
export function roundTo(value: unknown, to: number): string | null {
  const v = exactDecimal(value);
  const step = exactDecimal(to);
  if (!v || !step || step.coef <= 0n) return null;
  // value / step = (v.coef * 10^step.scale) / (step.coef * 10^v.scale)
  const n = divRoundHalfUp(v.coef * 10n ** BigInt(step.scale), step.coef * 10n ** BigInt(v.scale));
  return formatExactDecimal({ coef: n * step.coef, scale: step.scale });
}

/** Integer bucket [lo, lo + size) labelled 'lo-(lo+size-1)': 37 with size 10 -> '30-39'. */
export function bucketOf(value: unknown, size: number): string | null {
  const v = exactDecimal(value);
  if (!v || !Number.isSafeInteger(size) || size <= 0) return null;
  const s = BigInt(size);
  const lo = divFloor(v.coef, s * 10n ** BigInt(v.scale)) * s;
  return `${lo}-${lo + s - 1n}`;
}

// ---------------------------------------------------------------------------------
// Regex masks.

/** Code points of a value a regex mask processes; the rest of a longer value is dropped, never passed through. */
export const MAX_MASK_INPUT = 4096;

/**
 * Applies `pattern` (RE2 syntax, linear time: user-pattern.ts) to every match in the first
 * MAX_MASK_INPUT code points, with `replace` ($1, $<name>, $& as in String.prototype.replace). A value the pattern
 * does not match at all is masked in full unless `unmatched` is 'pass'.
 */
export function regexMask(value: string, pattern: string, replace: string, unmatched: 'full' | 'pass' = 'full'): string {
  const re = userPattern(pattern);
  const chars = Array.from(value);
  const input = chars.length > MAX_MASK_INPUT ? chars.slice(0, MAX_MASK_INPUT).join('') : value;
  if (!re.test(input)) return unmatched === 'pass' ? input : stars(input);
  return re.matcher(input).replaceAll(replace);
}

// ---------------------------------------------------------------------------------

/**
 * The masked text of a non-null canonical value. Text masks see `String(value)`; the
 * number masks (round, bucket) read numbers and decimal strings exactly and mask any
 * other value in full.
 */
export function applyMask(spec: MaskSpec, value: string | number | boolean): string {
  const text = String(value);
  if (typeof spec === 'string') return masks[spec](text);
  if ('keep' in spec) return keep(text, spec.keep.first ?? 0, spec.keep.last ?? 0, spec.keep.char ?? STAR);
  if ('regex' in spec) return regexMask(text, spec.regex.pattern, spec.regex.replace, spec.regex.unmatched ?? 'full');
  if ('round' in spec) return typeof value === 'boolean' ? stars(text) : (roundTo(value, spec.round.to) ?? stars(text));
  if ('bucket' in spec) return typeof value === 'boolean' ? stars(text) : (bucketOf(value, spec.bucket.size) ?? stars(text));
  // Exhaustiveness: the pipeline schema admits only the masks above, so no input reaches this line.
  const never: never = spec;
  throw new Error(`unknown mask ${JSON.stringify(never)}`);
}
