import type { MaskSpec } from '../config/pipeline-schema.js';

/**
 * Irreversible masks for personal data. They work on code points (Chinese characters
 * and emoji count as one), keep the part a recipient legitimately needs (region of an
 * ID card, carrier prefix of a phone), and always return a string.
 */
const STAR = '*';

function keep(value: string, first: number, last: number, char = STAR): string {
  const chars = Array.from(value);
  if (chars.length <= first + last) return char.repeat(chars.length);
  return chars.slice(0, first).join('') + char.repeat(chars.length - first - last) + chars.slice(chars.length - last).join('');
}

const HAN = /\p{Script=Han}/u;

export const masks = {
  /** 13812341234 -> 138****1234; +8613812341234 -> +86138****1234. */
  phone(value: string): string {
    const m = /^(\+?\d{1,3}[ -]?)?(\d{11})$/.exec(value.trim());
    if (m) return (m[1] ?? '') + keep(m[2]!, 3, 4);
    return keep(value, 0, Math.min(4, Math.floor(Array.from(value).length / 3)));
  },
  /** 18-digit resident ID: keep the 6-digit region code and the check digit. */
  id_card(value: string): string {
    const v = value.trim();
    if (/^\d{17}[\dXx]$/.test(v)) return keep(v, 6, 1);
    if (/^\d{15}$/.test(v)) return keep(v, 6, 0);
    return keep(v, 1, 1);
  },
  /** 张三丰 -> 张**; John Smith -> J*** S****. */
  name(value: string): string {
    const v = value.trim();
    if (HAN.test(v)) return keep(v, 1, 0);
    return v.split(/(\s+)/).map((part) => (/\s/.test(part) ? part : keep(part, 1, 0))).join('');
  },
  /** alice@example.gov.cn -> a****@example.gov.cn. */
  email(value: string): string {
    const at = value.lastIndexOf('@');
    if (at <= 0) return keep(value, 1, 0);
    return keep(value.slice(0, at), 1, 0) + value.slice(at);
  },
  /** Keep the issuer (first 6) and the last 4 digits. */
  bank_card(value: string): string {
    const digits = value.replace(/[\s-]/g, '');
    return keep(digits, 6, 4);
  },
  /** Keep the first 6 characters (province, city, district), hide the rest. */
  address(value: string): string {
    return keep(value, 6, 0);
  },
  /** 京A12345 -> 京A***45. */
  plate(value: string): string {
    return keep(value, 2, 2);
  },
  /** 1990-05-17 -> 1990. */
  date_to_year(value: string): string {
    return /^\d{4}/.exec(value)?.[0] ?? keep(value, 0, 0);
  },
  full(value: string): string {
    return STAR.repeat(Array.from(value).length);
  },
} satisfies Record<string, (v: string) => string>;

export function applyMask(spec: MaskSpec, value: string | number | boolean): string {
  const text = String(value);
  if (typeof spec === 'string') return masks[spec](text);
  return keep(text, spec.keep.first, spec.keep.last, spec.keep.char);
}
