/**
 * A lexer for MySQL/MariaDB statement text, as the server's own splits it: quoted strings
 * (with or without backslash escapes), identifiers in backticks, comments (an executable
 * comment `/*!50100 … *\/` or `/*M!100500 … *\/` is code to the server, so only its markers
 * are comments), numbers, words and single punctuation characters.
 */

export type TokenKind = 'word' | 'identifier' | 'string' | 'number' | 'punct' | 'comment';

export interface Token {
  kind: TokenKind;
  /** Offsets of the token in the statement: `[start, end)`. */
  start: number;
  end: number;
  /** Identifiers: the name without its backticks; other tokens: their text. */
  text: string;
  /** A string or an identifier whose closing quote is missing: it runs to the end of the statement. */
  open?: true;
}

export interface LexOptions {
  /** Backslash escapes a character in strings: false under sql_mode NO_BACKSLASH_ESCAPES. */
  backslashEscapes: boolean;
}

/** Characters of an unquoted name or a word (MySQL allows U+0080 and up in unquoted names). */
const NAME_CHAR = /[A-Za-z0-9_$\u0080-\uFFFF]/;
/** Whitespace to the server: ASCII only (U+00A0 and up may stand in an unquoted name). */
const WHITESPACE = /[ \t\n\r\v\f]/;
const NUMBER = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/;

function isNameChar(c: string | undefined): boolean {
  return c !== undefined && NAME_CHAR.test(c);
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

/** The tokens of `sql`, whitespace left out, comments included. */
export function* sqlTokens(sql: string, options: LexOptions): Generator<Token> {
  let i = 0;
  /** Executable comments open: their closing `*\/` is a comment marker too. */
  let executable = 0;
  let previous: Token | undefined;
  const emit = (kind: TokenKind, start: number, end: number, text = sql.slice(start, end), open?: true): Token => {
    const token: Token = open ? { kind, start, end, text, open } : { kind, start, end, text };
    if (kind !== 'comment') previous = token;
    return token;
  };
  while (i < sql.length) {
    const c = sql[i]!;
    const next = sql[i + 1];
    const start = i;
    if (WHITESPACE.test(c)) {
      i++;
    } else if (c === '/' && next === '*') {
      const marker = /^\/\*M?!\d*/.exec(sql.slice(i, i + 12));
      if (marker) {
        executable++;
        i += marker[0].length;
        yield emit('comment', start, i);
      } else {
        const end = sql.indexOf('*/', i + 2);
        i = end < 0 ? sql.length : end + 2;
        yield emit('comment', start, i);
      }
    } else if (c === '*' && next === '/' && executable > 0) {
      executable--;
      i += 2;
      yield emit('comment', start, i);
    } else if (c === '#' || (c === '-' && next === '-' && (i + 2 >= sql.length || sql.charCodeAt(i + 2) <= 0x20))) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end;
      yield emit('comment', start, i);
    } else if (c === "'" || c === '"') {
      const end = quotedEnd(sql, i, c, options.backslashEscapes);
      i = end ?? sql.length;
      yield emit('string', start, i, undefined, end === null ? true : undefined);
    } else if (c === '`') {
      const end = quotedEnd(sql, i, '`', false);
      i = end ?? sql.length;
      yield emit('identifier', start, i, sql.slice(start + 1, end === null ? i : i - 1).replaceAll('``', '`'), end === null ? true : undefined);
    } else if (isDigit(c) || (c === '.' && isDigit(next) && !qualifies(previous, i))) {
      i = numberOrWordEnd(sql, i);
      const text = sql.slice(start, i);
      yield emit(NUMBER.test(text) ? 'number' : 'word', start, i);
    } else if (isNameChar(c)) {
      while (isNameChar(sql[i])) i++;
      yield emit('word', start, i);
    } else {
      i++;
      yield emit('punct', start, i);
    }
  }
}

/** A `.` right after a name (no space between) qualifies it: `civil.5x` is a name, `DEFAULT .5` a number. */
function qualifies(previous: Token | undefined, dot: number): boolean {
  return previous !== undefined && previous.end === dot && (previous.kind === 'word' || previous.kind === 'identifier');
}

/** The end (after the closing quote) of the quoted text starting at `start`, or null when it is never closed. */
function quotedEnd(sql: string, start: number, quote: string, backslashEscapes: boolean): number | null {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i]!;
    if (backslashEscapes && c === '\\') {
      i += 2;
    } else if (c === quote) {
      // A doubled quote is one quote inside.
      if (sql[i + 1] === quote) i += 2;
      else return i + 1;
    } else {
      i++;
    }
  }
  return null;
}

/** The end of a number (`12`, `1.5`, `.5`, `2e-3`) or of a name that starts with digits (`1st`, `0xCAFE`). */
function numberOrWordEnd(sql: string, start: number): number {
  let i = start;
  while (isNameChar(sql[i])) i++;
  const run = sql.slice(start, i);
  if (/^\d*$/.test(run) && sql[i] === '.' && (run !== '' || isDigit(sql[i + 1]))) {
    i++;
    while (isDigit(sql[i])) i++;
    if ((sql[i] === 'e' || sql[i] === 'E') && (isDigit(sql[i + 1]) || (/[-+]/.test(sql[i + 1] ?? '') && isDigit(sql[i + 2])))) {
      i += 2;
      while (isDigit(sql[i])) i++;
    }
  } else if (/^\d+[eE]$/.test(run) && /[-+]/.test(sql[i] ?? '') && isDigit(sql[i + 1])) {
    i += 2;
    while (isDigit(sql[i])) i++;
  }
  return i;
}
