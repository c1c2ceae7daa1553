import { RE2JS } from 're2js';
import { CdcError } from '../errors.js';

/** Longest pattern a DBA or an officer may write into policy (a mask, a data-quality rule). */
export const MAX_PATTERN_LENGTH = 200;

/**
 * A regular expression someone writes into policy, run by RE2JS (a port of RE2): matching
 * takes time linear in the input whatever the pattern, so no pattern of an approved grant
 * or a quality rule can hang the transformer (a backtracking engine takes seconds, then
 * years, on `^((?:[0-9]|\d))*$` against 30 digits and an `x`). The price is RE2's syntax:
 * no lookarounds and no backreferences, repeat counts up to 1000, `\s` ASCII whitespace only,
 * `.` matching `\r`; `\p{Han}`, `\x{1F600}` (or JavaScript's `\u4e00`), named groups `(?<name>…)`.
 */
export type UserPattern = RE2JS;

const CONSTRUCT_HINTS: Array<[RegExp, string]> = [
  [/\(\?<?[=!]/, 'lookarounds ((?=…), (?!…), (?<=…), (?<!…)) are not supported: patterns run on RE2, which matches in linear time'],
  [/\\[1-9]|\\k</, 'backreferences are not supported: patterns run on RE2, which matches in linear time'],
  [/\\p\{(?:Script|sc|General_Category|gc)=/, 'write a Unicode class as \\p{Han} or \\p{L} (RE2 syntax), without Script= or gc='],
];

/**
 * The pattern in RE2's spelling: JavaScript's `\uXXXX` and `\u{…}` escapes become `\x{…}`
 * (written by people used to JavaScript, e.g. `[\u4e00-\u9fa5]` for Chinese characters).
 */
function re2Spelling(pattern: string): string {
  return pattern.replace(/\\(?:u\{([0-9A-Fa-f]{1,6})\}|u([0-9A-Fa-f]{4})|[\s\S])/g, (escape, braced?: string, four?: string) => {
    const hex = braced ?? four;
    return hex === undefined ? escape : `\\x{${hex}}`;
  });
}

function compile(pattern: string): UserPattern {
  return RE2JS.compile(re2Spelling(pattern));
}

/** Why `pattern` cannot be a policy pattern, or null when it can. */
export function patternProblem(pattern: string): string | null {
  if (pattern.length === 0) return 'the pattern is empty';
  if (pattern.length > MAX_PATTERN_LENGTH) return `the pattern is ${pattern.length} characters, at most ${MAX_PATTERN_LENGTH} are allowed`;
  try {
    compile(pattern);
    return null;
  } catch (err) {
    const hint = CONSTRUCT_HINTS.find(([construct]) => construct.test(pattern))?.[1];
    return hint ?? (err as Error).message.replace(/^error parsing regexp: /, '');
  }
}

const compiled = new Map<string, UserPattern>();

/** The compiled pattern (cached); throws with what is wrong when `patternProblem` would refuse it. */
export function userPattern(pattern: string): UserPattern {
  let re = compiled.get(pattern);
  if (!re) {
    const problem = patternProblem(pattern);
    if (problem) throw new CdcError('CONFIG_INVALID', `invalid pattern ${JSON.stringify(pattern)}: ${problem}`);
    re = compile(pattern);
    if (compiled.size >= 256) compiled.clear();
    compiled.set(pattern, re);
  }
  return re;
}
