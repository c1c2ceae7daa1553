import { sqlTokens, type LexOptions, type Token } from './sql-lexer.js';

/**
 * DDL statements of the binlog, read only as far as the schema-change topic needs: whether
 * a statement is DDL, which tables it changes, and its text without literals. Everything
 * else a source runs as a statement (CREATE USER … IDENTIFIED BY '…', GRANT, CREATE
 * DATABASE) is none of the pipeline's business and never leaves the reader.
 *
 * Only a statement's head is parsed (verb, object, names; in ALTER TABLE the clauses that
 * name another table), over the tokens of sql-lexer.ts: a whole-statement SQL parser
 * (node-sql-parser, sql-parser-cst) was tried and refuses MariaDB forms a source writes
 * (ALTER ONLINE TABLE, CREATE OR REPLACE TABLE, UUID and INET6 columns, RENAME … WAIT n,
 * SYSTEM VERSIONING, partitioning clauses), and every column definition it cannot read
 * would hide the table name it needs.
 */

/** A table a statement changes: `table` null when it changes every table of `db` (DROP DATABASE). */
export interface ChangedTable {
  db: string;
  table: string | null;
}

const DDL_VERBS = new Set(['ALTER', 'CREATE', 'DROP', 'RENAME', 'TRUNCATE']);

/** The lexing the server uses unless sql_mode has NO_BACKSLASH_ESCAPES (which the binlog event does not tell here). */
const DEFAULT_MODE: LexOptions = { backslashEscapes: true };

/** True when the statement (after any comment) starts with a DDL verb; only its first token is read. */
export function isDdl(statement: string): boolean {
  for (const token of sqlTokens(statement, DEFAULT_MODE)) {
    if (token.kind === 'comment') continue;
    return token.kind === 'word' && DDL_VERBS.has(token.text.toUpperCase());
  }
  return false;
}

/** Reads the head of a statement: words compared case-insensitively, names as the server resolves them. */
class Head {
  private i = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly defaultDb: string,
  ) {}

  get done(): boolean {
    return this.i >= this.tokens.length;
  }

  private isWord(token: Token | undefined, word: string): boolean {
    return token?.kind === 'word' && token.text.toUpperCase() === word;
  }

  /** Takes the next token when it is one of `words`; returns which. */
  word(...words: string[]): string | undefined {
    const found = words.find((w) => this.isWord(this.tokens[this.i], w));
    if (found) this.i++;
    return found;
  }

  /** Takes `words` when they come next, in order (`IF NOT EXISTS`). */
  words(...words: string[]): boolean {
    if (!words.every((w, k) => this.isWord(this.tokens[this.i + k], w))) return false;
    this.i += words.length;
    return true;
  }

  punct(c: string): boolean {
    if (this.tokens[this.i]?.kind !== 'punct' || this.tokens[this.i]!.text !== c) return false;
    this.i++;
    return true;
  }

  /** One name part: unquoted, in backticks, or in double quotes (an identifier under ANSI_QUOTES; no string can stand here). */
  part(): string | undefined {
    const t = this.tokens[this.i];
    if (!t || t.open) return undefined;
    const name = t.kind === 'word' ? t.text : t.kind === 'identifier' ? t.text : t.kind === 'string' && t.text.startsWith('"') ? t.text.slice(1, -1).replaceAll('""', '"') : undefined;
    if (name === undefined || name === '') return undefined;
    this.i++;
    return name;
  }

  /** `table` or `db.table`, resolved against the session's database. */
  table(): ChangedTable | undefined {
    const first = this.part();
    if (first === undefined) return undefined;
    if (!this.punct('.')) return { db: this.defaultDb, table: first };
    const second = this.part();
    return second === undefined ? undefined : { db: first, table: second };
  }

  /** `WAIT n` or `NOWAIT` (MariaDB lock timeouts), when they come next. */
  lockWait(): void {
    if (this.word('NOWAIT')) return;
    if (this.isWord(this.tokens[this.i], 'WAIT') && this.tokens[this.i + 1]?.kind === 'number') this.i += 2;
  }

  /**
   * What the rest of an ALTER TABLE names besides its table, outside parentheses:
   * `RENAME [TO|AS] name` (not RENAME COLUMN/INDEX/KEY), and `TABLE name` (EXCHANGE
   * PARTITION … WITH TABLE, CONVERT PARTITION … TO TABLE, CONVERT TABLE … TO PARTITION).
   */
  alteredAlso(): ChangedTable[] {
    const also: ChangedTable[] = [];
    let depth = 0;
    while (!this.done) {
      if (this.punct('(')) depth++;
      else if (this.punct(')')) depth = Math.max(0, depth - 1);
      else if (depth === 0 && this.word('RENAME')) {
        if (this.word('COLUMN', 'INDEX', 'KEY', 'CONSTRAINT')) continue;
        this.word('TO', 'AS');
        const to = this.table();
        if (to) also.push(to);
      } else if (depth === 0 && this.word('TABLE')) {
        const other = this.table();
        if (other) also.push(other);
      } else this.i++;
    }
    return also;
  }
}

/**
 * The tables a DDL statement changes (both names of a rename), resolved against the
 * session's database; `{ db, table: null }` when it drops a whole database; null when the
 * statement changes no table.
 */
export function ddlTables(statement: string, defaultDb: string): ChangedTable[] | null {
  const tokens = [...sqlTokens(statement, DEFAULT_MODE)].filter((t) => t.kind !== 'comment');
  const head = new Head(tokens, defaultDb);
  const list = (): ChangedTable[] | null => {
    const names: ChangedTable[] = [];
    do {
      const name = head.table();
      if (!name) return null;
      names.push(name);
    } while (head.punct(','));
    return names;
  };
  switch (head.word('CREATE', 'ALTER', 'DROP', 'RENAME', 'TRUNCATE')) {
    case 'CREATE': {
      head.words('OR', 'REPLACE');
      if (head.word('TEMPORARY')) return head.word('TABLE') ? tableAfterExists(head) : null;
      if (head.word('TABLE')) return tableAfterExists(head);
      head.word('ONLINE', 'OFFLINE');
      head.word('UNIQUE', 'FULLTEXT', 'SPATIAL');
      return head.word('INDEX') ? indexTarget(head) : null;
    }
    case 'ALTER': {
      head.word('ONLINE', 'OFFLINE');
      head.word('IGNORE');
      if (!head.word('TABLE')) return null;
      head.words('IF', 'EXISTS');
      const table = head.table();
      return table ? [table, ...head.alteredAlso()] : null;
    }
    case 'DROP': {
      if (head.word('DATABASE', 'SCHEMA')) {
        head.words('IF', 'EXISTS');
        const db = head.part();
        return db === undefined ? null : [{ db, table: null }];
      }
      head.word('ONLINE', 'OFFLINE');
      if (head.word('INDEX')) return indexTarget(head);
      head.word('TEMPORARY');
      if (!head.word('TABLE', 'TABLES')) return null;
      head.words('IF', 'EXISTS');
      return list();
    }
    case 'RENAME': {
      if (!head.word('TABLE', 'TABLES')) return null;
      head.words('IF', 'EXISTS');
      const names: ChangedTable[] = [];
      do {
        const from = head.table();
        head.lockWait();
        const to = head.word('TO') ? head.table() : undefined;
        if (!from || !to) return null;
        names.push(from, to);
      } while (head.punct(','));
      return names;
    }
    case 'TRUNCATE': {
      head.word('TABLE');
      const table = head.table();
      return table ? [table] : null;
    }
    default:
      return null;
  }
}

function tableAfterExists(head: Head): ChangedTable[] | null {
  head.words('IF', 'NOT', 'EXISTS');
  const table = head.table();
  return table ? [table] : null;
}

/** `[IF [NOT] EXISTS] index [USING type] ON table` of CREATE/DROP INDEX. */
function indexTarget(head: Head): ChangedTable[] | null {
  if (!head.words('IF', 'NOT', 'EXISTS')) head.words('IF', 'EXISTS');
  if (head.part() === undefined) return null;
  if (head.word('USING', 'TYPE')) head.part();
  if (!head.word('ON')) return null;
  const table = head.table();
  return table ? [table] : null;
}

/** The registered `db.table` names (as the pipeline file spells them) a DDL statement changes. */
export function changedRegisteredTables(statement: string, defaultDb: string, registered: readonly string[]): string[] {
  const changed = ddlTables(statement, defaultDb) ?? [];
  return registered.filter((name) => {
    const [db, table] = name.split('.') as [string, string];
    return changed.some((c) => c.db === db && (c.table === null || c.table === table));
  });
}

/** What a character of a statement is in its redacted form. */
const Part = {
  Code: 0,
  /** Dropped: a comment or an executable comment's marker. */
  Comment: 1,
  /** Replaced by `'?'`: a quoted string, or text a quote left open. */
  Literal: 2,
  /** Replaced by `?`: a numeric DEFAULT, a hex or bit literal. */
  Value: 3,
} as const;
type Part = (typeof Part)[keyof typeof Part];

/**
 * The statement as the schema-change topic carries it: comments dropped, every quoted
 * literal (DEFAULT and COMMENT values, CHECK constants, ENUM members) replaced by '?', and so
 * are numeric DEFAULTs and hex or bit literals. Identifiers, types and their lengths stay;
 * a bare number in a CHECK or a partition bound stays too. The text is lexed both with and
 * without backslash escapes (the binlog event does not tell the session's sql_mode here),
 * and what either lexing takes for a literal is redacted: a literal never leaks through a
 * quote paired the other way.
 */
export function redactDdl(statement: string): string {
  const parts = new Uint8Array(statement.length);
  const lexings = [[...sqlTokens(statement, DEFAULT_MODE)], [...sqlTokens(statement, { backslashEscapes: false })]];
  /** Marks `[from, to)` as `part` where it is still `over` or less (a literal outranks a comment; comments and values take only code). */
  const mark = (from: number, to: number, part: Part, over: Part) => {
    for (let k = from; k < to; k++) if (parts[k]! <= over) parts[k] = part;
  };
  for (const tokens of lexings) for (const t of tokens) if (t.kind === 'string' || t.open) mark(t.start, t.end, Part.Literal, Part.Comment);
  for (const tokens of lexings) for (const t of tokens) if (t.kind === 'comment') mark(t.start, t.end, Part.Comment, Part.Code);
  const code = lexings[0]!.filter((t) => t.kind !== 'comment');
  code.forEach((t, k) => {
    if (t.kind === 'word' && /^(?:0x[0-9A-Fa-f]+|0b[01]+)$/.test(t.text)) mark(t.start, t.end, Part.Value, Part.Code);
    if (t.kind !== 'number') return;
    const sign = code[k - 1]?.kind === 'punct' && /^[-+]$/.test(code[k - 1]!.text) ? code[k - 1]! : undefined;
    const before = code[k - (sign ? 2 : 1)];
    if (before?.kind === 'word' && before.text.toUpperCase() === 'DEFAULT') mark((sign ?? t).start, t.end, Part.Value, Part.Code);
  });
  let out = '';
  for (let k = 0; k < statement.length; ) {
    const part = parts[k]!;
    let end = k + 1;
    while (end < statement.length && parts[end] === part) end++;
    out += part === Part.Code ? statement.slice(k, end) : part === Part.Comment ? ' ' : part === Part.Literal ? "'?'" : '?';
    k = end;
  }
  return out.trim();
}

/** The statement's verb and object (`ALTER TABLE`) for a log line: the rest may hold literals. */
export function ddlVerb(statement: string): string {
  return redactDdl(statement).split(/\s+/, 2).join(' ');
}
