import type { CanonicalValue } from '../column-types.js';
import { CdcError } from '../errors.js';
import { compareExactDecimals, exactDecimal, type ExactDecimal } from './mask.js';

/**
 * Row filters of grants: a small, safe expression language over the columns of one row,
 * parsed by hand (no eval), e.g.
 *
 *     district == "海淀" && fee >= 100
 *     district in ["东城", "西城"] and birth_date < "2000-01-01"
 *     not (clinic == "X") || diagnosis is null
 *     name starts_with "王"
 *
 * Grammar (keywords are case-insensitive; a column named like a keyword needs backticks):
 *
 *     filter     := or
 *     or         := and (("||" | "or") and)*
 *     and        := unary (("&&" | "and") unary)*
 *     unary      := ("!" | "not") unary | predicate
 *     predicate  := "(" or ")"
 *                 | operand [ ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
 *                           | ["not"] "in" "[" [literal ("," literal)*] "]"
 *                           | "is" ["not"] "null"
 *                           | ("starts_with" | "ends_with" | "contains") operand ]
 *     operand    := literal | column
 *     literal    := string | number | "true" | "false" | "null"
 *     string     := "..." | '...'  with \\ \" \' \n \r \t \b \f \0 \uXXXX \u{X..}
 *     number     := ["-"] digits ["." digits]
 *     column     := letter-or-_$ (letter | digit | _ | $)*  |  `back-ticked` (`` for `)
 *
 * `!`/`not` apply to the predicate that follows: `not a == 1` is `not (a == 1)`.
 * A bare operand as a condition is true when it is true or a non-zero number.
 *
 * Semantics are SQL's WHERE: three-valued logic with null (unknown). Any comparison with
 * null is unknown, `not unknown` is unknown, and a row matches only when the filter is
 * true: `x != 1` and `not (x == 1)` both drop a row whose x is null; `x is null` tests
 * it. A column absent from the row counts as null.
 *
 * Comparisons are exact on canonical values:
 * - numbers: when one side is a number (a number literal or a JS number in the row) and
 *   the other a number or a decimal string (BIGINT, DECIMAL travel as strings), both are
 *   compared as exact decimals: `id > 9007199254740992` holds for id '9007199254740993'.
 *   Two string columns that both hold decimals are compared as decimals too.
 * - strings: by Unicode code point. A quoted literal is text: `fee >= "100"` compares
 *   text; write numbers unquoted. DATE, DATETIME and TIMESTAMP canonical strings sort
 *   chronologically as text: `birth_date < "2000-01-01"`.
 * - booleans: false < true; against numbers they are 0 and 1.
 * - values of unrelated types (a number and a non-numeric string) are never equal, and
 *   ordering them is unknown.
 * `starts_with`, `ends_with` and `contains` work on the text of strings and numbers.
 */
export interface RowFilter {
  /** The expression as written. */
  source: string;
  /** Columns the expression reads, in order of first use; validate them against the table. */
  columns: string[];
  /** True when the row passes the filter; a column missing from the row is null. */
  matches(row: Readonly<Record<string, CanonicalValue>>): boolean;
}

export const MAX_ROW_FILTER_LENGTH = 2000;
export const MAX_ROW_FILTER_DEPTH = 32;

// ---------------------------------------------------------------------------------
// Tokens

type Keyword = 'and' | 'or' | 'not' | 'in' | 'is' | 'null' | 'true' | 'false' | 'starts_with' | 'ends_with' | 'contains';
const KEYWORDS: ReadonlySet<string> = new Set<Keyword>(['and', 'or', 'not', 'in', 'is', 'null', 'true', 'false', 'starts_with', 'ends_with', 'contains']);
type Punct = '==' | '!=' | '<' | '<=' | '>' | '>=' | '&&' | '||' | '!' | '(' | ')' | '[' | ']' | ',';

type Token =
  | { kind: 'string'; value: string; at: number }
  | { kind: 'number'; text: string; at: number }
  | { kind: 'column'; name: string; at: number }
  | { kind: 'keyword'; word: Keyword; at: number }
  | { kind: 'punct'; op: Punct; at: number }
  | { kind: 'end'; at: number };

class FilterSyntaxError extends Error {
  constructor(
    readonly what: string,
    readonly at: number,
  ) {
    super(what);
  }
}

const IDENT_START = /[\p{L}_$]/u;
const IDENT_PART = /[\p{L}\p{N}\p{M}_$]/u;
const SIMPLE_ESCAPES: Record<string, string> = { '\\': '\\', '"': '"', "'": "'", n: '\n', r: '\r', t: '\t', b: '\b', f: '\f', '0': '\0' };

function describe(token: Token): string {
  switch (token.kind) {
    case 'string': return `string ${JSON.stringify(token.value.length > 20 ? token.value.slice(0, 20) + '…' : token.value)}`;
    case 'number': return `number ${token.text}`;
    case 'column': return `column ${token.name}`;
    case 'keyword': return `"${token.word}"`;
    case 'punct': return `"${token.op}"`;
    case 'end': return 'the end of the expression';
  }
}

function tokenizeFilter(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const at = i;
    const two = src.slice(i, i + 2);
    if (two === '==' || two === '!=' || two === '<=' || two === '>=' || two === '&&' || two === '||') {
      tokens.push({ kind: 'punct', op: two, at });
      i += 2;
      continue;
    }
    if (two === '<>') throw new FilterSyntaxError('unexpected "<>" (use != for inequality)', at);
    if (c === '=') throw new FilterSyntaxError('unexpected "=" (use == for equality)', at);
    if (c === '&' || c === '|') throw new FilterSyntaxError(`unexpected "${c}" (use ${c}${c})`, at);
    if ('<>!()[],'.includes(c)) {
      tokens.push({ kind: 'punct', op: c as Punct, at });
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      let value = '';
      i++;
      for (;;) {
        if (i >= src.length) throw new FilterSyntaxError('unterminated string', at);
        const d = src[i]!;
        if (d === c) break;
        if (d !== '\\') {
          value += d;
          i++;
          continue;
        }
        const e = src[i + 1];
        if (e === undefined) throw new FilterSyntaxError('unterminated string', at);
        if (Object.hasOwn(SIMPLE_ESCAPES, e)) {
          value += SIMPLE_ESCAPES[e];
          i += 2;
          continue;
        }
        if (e === 'u') {
          const m = /^\\u(?:([0-9a-fA-F]{4})|\{([0-9a-fA-F]{1,6})\})/.exec(src.slice(i));
          const cp = m ? parseInt(m[1] ?? m[2]!, 16) : NaN;
          if (!m || cp > 0x10ffff) throw new FilterSyntaxError('invalid \\u escape (\\uXXXX or \\u{X...})', i);
          value += String.fromCodePoint(cp);
          i += m[0].length;
          continue;
        }
        throw new FilterSyntaxError(`unknown escape "\\${e}"`, i);
      }
      i++;
      tokens.push({ kind: 'string', value, at });
      continue;
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      const m = /^-?\d+(?:\.\d+)?/.exec(src.slice(i));
      if (!m) throw new FilterSyntaxError('"-" must start a number', at);
      const end = i + m[0].length;
      const after = src[end];
      if (after !== undefined && (after === '.' || IDENT_PART.test(after))) throw new FilterSyntaxError(`invalid number "${src.slice(i, end + 1)}"`, at);
      tokens.push({ kind: 'number', text: m[0], at });
      i = end;
      continue;
    }
    if (c === '`') {
      let name = '';
      i++;
      for (;;) {
        if (i >= src.length) throw new FilterSyntaxError('unterminated `quoted` column name', at);
        if (src[i] === '`') {
          if (src[i + 1] === '`') {
            name += '`';
            i += 2;
            continue;
          }
          break;
        }
        name += src[i];
        i++;
      }
      i++;
      if (name === '') throw new FilterSyntaxError('empty column name', at);
      tokens.push({ kind: 'column', name, at });
      continue;
    }
    const cp = String.fromCodePoint(src.codePointAt(i)!);
    if (IDENT_START.test(cp)) {
      let end = i + cp.length;
      while (end < src.length) {
        const next = String.fromCodePoint(src.codePointAt(end)!);
        if (!IDENT_PART.test(next)) break;
        end += next.length;
      }
      const word = src.slice(i, end);
      const lower = word.toLowerCase();
      if (KEYWORDS.has(lower)) tokens.push({ kind: 'keyword', word: lower as Keyword, at });
      else tokens.push({ kind: 'column', name: word, at });
      i = end;
      continue;
    }
    throw new FilterSyntaxError(`unexpected character ${JSON.stringify(cp)}`, at);
  }
  tokens.push({ kind: 'end', at: src.length });
  return tokens;
}

// ---------------------------------------------------------------------------------
// Syntax tree

type Literal =
  | { kind: 'string'; value: string }
  | { kind: 'number'; text: string; value: ExactDecimal }
  | { kind: 'boolean'; value: boolean }
  | { kind: 'null' };

type Operand = { kind: 'literal'; literal: Literal; value: Value } | { kind: 'column'; name: string };
type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=';
type TextOp = 'starts_with' | 'ends_with' | 'contains';

type Node =
  | { kind: 'or'; items: Node[] }
  | { kind: 'and'; items: Node[] }
  | { kind: 'not'; item: Node }
  | { kind: 'compare'; op: CompareOp; left: Operand; right: Operand }
  | { kind: 'in'; negated: boolean; operand: Operand; list: Value[] }
  | { kind: 'is_null'; negated: boolean; operand: Operand }
  | { kind: 'text'; op: TextOp; left: Operand; right: Operand }
  | { kind: 'truth'; operand: Operand };

const COMPARE_OPS: ReadonlySet<string> = new Set<CompareOp>(['==', '!=', '<', '<=', '>', '>=']);
const TEXT_OPS: ReadonlySet<string> = new Set<TextOp>(['starts_with', 'ends_with', 'contains']);

class Parser {
  private pos = 0;
  private depth = 0;
  readonly columns: string[] = [];

  constructor(private readonly tokens: Token[]) {}

  parse(): Node {
    const node = this.or();
    const rest = this.peek();
    if (rest.kind !== 'end') throw new FilterSyntaxError(`unexpected ${describe(rest)} (expected &&, || or the end)`, rest.at);
    return node;
  }

  private peek(): Token {
    return this.tokens[this.pos]!;
  }

  private take(): Token {
    const t = this.tokens[this.pos]!;
    if (t.kind !== 'end') this.pos++;
    return t;
  }

  private isPunct(op: Punct): boolean {
    const t = this.peek();
    return t.kind === 'punct' && t.op === op;
  }

  private isKeyword(word: Keyword): boolean {
    const t = this.peek();
    return t.kind === 'keyword' && t.word === word;
  }

  private expectPunct(op: Punct, context: string): void {
    const t = this.peek();
    if (t.kind !== 'punct' || t.op !== op) throw new FilterSyntaxError(`expected "${op}" ${context}, found ${describe(t)}`, t.at);
    this.pos++;
  }

  private enter(at: number): void {
    if (++this.depth > MAX_ROW_FILTER_DEPTH) throw new FilterSyntaxError(`nesting deeper than ${MAX_ROW_FILTER_DEPTH} levels`, at);
  }

  private or(): Node {
    const items = [this.and()];
    while (this.isPunct('||') || this.isKeyword('or')) {
      this.pos++;
      items.push(this.and());
    }
    return items.length === 1 ? items[0]! : { kind: 'or', items };
  }

  private and(): Node {
    const items = [this.unary()];
    while (this.isPunct('&&') || this.isKeyword('and')) {
      this.pos++;
      items.push(this.unary());
    }
    return items.length === 1 ? items[0]! : { kind: 'and', items };
  }

  private unary(): Node {
    if (this.isPunct('!') || this.isKeyword('not')) {
      this.enter(this.take().at);
      const item = this.unary();
      this.depth--;
      return { kind: 'not', item };
    }
    return this.predicate();
  }

  private predicate(): Node {
    if (this.isPunct('(')) {
      this.enter(this.take().at);
      const inner = this.or();
      this.expectPunct(')', 'to close "("');
      this.depth--;
      return inner;
    }
    const operand = this.operand();
    const t = this.peek();
    if (t.kind === 'punct' && COMPARE_OPS.has(t.op)) {
      this.pos++;
      return { kind: 'compare', op: t.op as CompareOp, left: operand, right: this.operand() };
    }
    if (t.kind === 'keyword') {
      if (TEXT_OPS.has(t.word)) {
        this.pos++;
        return { kind: 'text', op: t.word as TextOp, left: operand, right: this.operand() };
      }
      if (t.word === 'in') {
        this.pos++;
        return { kind: 'in', negated: false, operand, list: this.list() };
      }
      if (t.word === 'not' && this.tokens[this.pos + 1]?.kind === 'keyword' && (this.tokens[this.pos + 1] as { word: Keyword }).word === 'in') {
        this.pos += 2;
        return { kind: 'in', negated: true, operand, list: this.list() };
      }
      if (t.word === 'is') {
        this.pos++;
        const negated = this.isKeyword('not');
        if (negated) this.pos++;
        const n = this.peek();
        if (n.kind !== 'keyword' || n.word !== 'null') throw new FilterSyntaxError(`expected "null" after "is${negated ? ' not' : ''}", found ${describe(n)}`, n.at);
        this.pos++;
        return { kind: 'is_null', negated, operand };
      }
    }
    return { kind: 'truth', operand };
  }

  private list(): Value[] {
    this.expectPunct('[', 'after "in"');
    const items: Value[] = [];
    if (this.isPunct(']')) {
      this.pos++;
      return items;
    }
    for (;;) {
      const t = this.peek();
      const operand = this.operand();
      if (operand.kind !== 'literal') throw new FilterSyntaxError(`a list holds values, not columns (found ${describe(t)})`, t.at);
      items.push(operand.value);
      if (this.isPunct(',')) {
        this.pos++;
        continue;
      }
      this.expectPunct(']', 'to close the list');
      return items;
    }
  }

  private operand(): Operand {
    const t = this.take();
    const literal = (l: Literal): Operand => ({ kind: 'literal', literal: l, value: literalValue(l) });
    switch (t.kind) {
      case 'string': return literal({ kind: 'string', value: t.value });
      case 'number': return literal({ kind: 'number', text: t.text, value: exactDecimal(t.text)! });
      case 'column':
        if (!this.columns.includes(t.name)) this.columns.push(t.name);
        return { kind: 'column', name: t.name };
      case 'keyword':
        if (t.word === 'true' || t.word === 'false') return literal({ kind: 'boolean', value: t.word === 'true' });
        if (t.word === 'null') return literal({ kind: 'null' });
        break;
      default:
        break;
    }
    throw new FilterSyntaxError(`expected a column or a value, found ${describe(t)}`, t.at);
  }
}

// ---------------------------------------------------------------------------------
// Evaluation (three-valued: true, false, null = unknown)

type Truth = boolean | null;

type Value =
  | { kind: 'null' }
  | { kind: 'boolean'; value: boolean }
  | { kind: 'number'; value: ExactDecimal; text: string | number }
  | { kind: 'string'; value: string; literal: boolean };

const NULL: Value = { kind: 'null' };

function literalValue(literal: Literal): Value {
  switch (literal.kind) {
    case 'string': return { kind: 'string', value: literal.value, literal: true };
    case 'number': return { kind: 'number', value: literal.value, text: literal.text };
    case 'boolean': return literal;
    case 'null': return NULL;
  }
}

function rowValue(v: CanonicalValue | undefined): Value {
  if (v === null || v === undefined) return NULL;
  if (typeof v === 'boolean') return { kind: 'boolean', value: v };
  if (typeof v === 'number') {
    const d = exactDecimal(v);
    return d ? { kind: 'number', value: d, text: v } : NULL;
  }
  if (typeof v === 'string') return { kind: 'string', value: v, literal: false };
  return NULL; // not a canonical value
}

/** UTF-16 code unit adjusted so that comparing units orders strings by code point. */
function unitOrder(u: number): number {
  return u >= 0xe000 ? u - 0x800 : u >= 0xd800 ? u + 0x2000 : u;
}

function compareText(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return unitOrder(x) < unitOrder(y) ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

const ZERO: ExactDecimal = { coef: 0n, scale: 0 };
const ONE: ExactDecimal = { coef: 1n, scale: 0 };

function asDecimal(v: Value, other: Value): ExactDecimal | null {
  switch (v.kind) {
    case 'number': return v.value;
    case 'boolean': return other.kind === 'number' || other.kind === 'string' ? (v.value ? ONE : ZERO) : null;
    case 'string': return exactDecimal(v.value);
    case 'null': return null;
  }
}

/** -1, 0, 1; or null when either side is null or the types do not compare. */
function compare(a: Value, b: Value): number | null {
  if (a.kind === 'null' || b.kind === 'null') return null;
  if (a.kind === 'string' && b.kind === 'string') {
    if (!a.literal && !b.literal) {
      const x = exactDecimal(a.value);
      const y = exactDecimal(b.value);
      if (x && y) return compareExactDecimals(x, y);
    }
    return compareText(a.value, b.value);
  }
  if (a.kind === 'boolean' && b.kind === 'boolean') return a.value === b.value ? 0 : a.value ? 1 : -1;
  if (a.kind === 'number' || b.kind === 'number') {
    const x = asDecimal(a, b);
    const y = asDecimal(b, a);
    return x && y ? compareExactDecimals(x, y) : null;
  }
  return null; // boolean against string
}

function compareTruth(op: CompareOp, a: Value, b: Value): Truth {
  if (a.kind === 'null' || b.kind === 'null') return null;
  const c = compare(a, b);
  if (c === null) return op === '==' ? false : op === '!=' ? true : null;
  switch (op) {
    case '==': return c === 0;
    case '!=': return c !== 0;
    case '<': return c < 0;
    case '<=': return c <= 0;
    case '>': return c > 0;
    case '>=': return c >= 0;
  }
}

function textOf(v: Value): string | null {
  if (v.kind === 'string') return v.value;
  if (v.kind === 'number') return String(v.text);
  return null;
}

function truthOf(v: Value): Truth {
  switch (v.kind) {
    case 'boolean': return v.value;
    case 'number': return v.value.coef !== 0n;
    case 'string': {
      const d = exactDecimal(v.value);
      return d ? d.coef !== 0n : null;
    }
    case 'null': return null;
  }
}

type AnyRow = Readonly<Record<string, CanonicalValue>>;

function valueOf(operand: Operand, row: AnyRow): Value {
  if (operand.kind === 'literal') return operand.value;
  return Object.hasOwn(row, operand.name) ? rowValue(row[operand.name]) : NULL;
}

function evaluate(node: Node, row: AnyRow): Truth {
  switch (node.kind) {
    case 'or': {
      let result: Truth = false;
      for (const item of node.items) {
        const t = evaluate(item, row);
        if (t === true) return true;
        if (t === null) result = null;
      }
      return result;
    }
    case 'and': {
      let result: Truth = true;
      for (const item of node.items) {
        const t = evaluate(item, row);
        if (t === false) return false;
        if (t === null) result = null;
      }
      return result;
    }
    case 'not': {
      const t = evaluate(node.item, row);
      return t === null ? null : !t;
    }
    case 'compare':
      return compareTruth(node.op, valueOf(node.left, row), valueOf(node.right, row));
    case 'in': {
      const v = valueOf(node.operand, row);
      if (v.kind === 'null') return null;
      let result: Truth = false;
      for (const item of node.list) {
        const t = compareTruth('==', v, item);
        if (t === true) {
          result = true;
          break;
        }
        if (t === null) result = null;
      }
      return node.negated ? (result === null ? null : !result) : result;
    }
    case 'is_null': {
      const isNull = valueOf(node.operand, row).kind === 'null';
      return node.negated ? !isNull : isNull;
    }
    case 'text': {
      const a = textOf(valueOf(node.left, row));
      const b = textOf(valueOf(node.right, row));
      if (a === null || b === null) return null;
      return node.op === 'starts_with' ? a.startsWith(b) : node.op === 'ends_with' ? a.endsWith(b) : a.includes(b);
    }
    case 'truth':
      return truthOf(valueOf(node.operand, row));
  }
}

// ---------------------------------------------------------------------------------

function quoted(expression: string): string {
  const chars = Array.from(expression);
  return JSON.stringify(chars.length > 120 ? chars.slice(0, 120).join('') + '…' : expression);
}

/** 1-based position in characters (code points) of a UTF-16 offset. */
function position(expression: string, offset: number): number {
  return Array.from(expression.slice(0, offset)).length + 1;
}

/**
 * Parses a row filter. Throws CdcError CONFIG_INVALID `row filter "<expr>": <what> at
 * position N` (N counts characters from 1) on any syntax error or limit.
 */
export function compileRowFilter(expression: string): RowFilter {
  const fail = (what: string, offset: number): never => {
    const at = position(expression, offset);
    throw new CdcError('CONFIG_INVALID', `row filter ${quoted(expression)}: ${what} at position ${at}`, {
      details: { position: at, problem: what },
    });
  };
  if (expression.length > MAX_ROW_FILTER_LENGTH) {
    fail(`expression longer than ${MAX_ROW_FILTER_LENGTH} characters`, MAX_ROW_FILTER_LENGTH);
  }
  let root: Node;
  let columns: string[];
  try {
    const tokens = tokenizeFilter(expression);
    if (tokens.length === 1) throw new FilterSyntaxError('empty expression', 0);
    const parser = new Parser(tokens);
    root = parser.parse();
    columns = parser.columns;
  } catch (err) {
    if (err instanceof FilterSyntaxError) return fail(err.what, err.at);
    throw err;
  }
  return {
    source: expression,
    columns: [...columns],
    matches: (row) => evaluate(root, row) === true,
  };
}
