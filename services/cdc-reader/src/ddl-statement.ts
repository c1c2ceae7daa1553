/**
 * DDL statements of the binlog, read only as far as the schema-change topic needs: which
 * tables a statement changes, and its text without literals. Everything else a source runs
 * as a statement (CREATE USER … IDENTIFIED BY '…', GRANT, CREATE DATABASE) is none of the
 * pipeline's business and never leaves the reader.
 */

// Unquoted names may hold any non-ASCII letter (MySQL allows U+0080 and up).
const NAME = String.raw`(?:\x60(?:[^\x60]|\x60\x60)+\x60|[A-Za-z0-9_$\u0080-\uFFFF]+)`;
const QUALIFIED = String.raw`${NAME}(?:\s*\.\s*${NAME})?`;
const LIST = String.raw`${QUALIFIED}(?:\s*,\s*${QUALIFIED})*`;

/** Statements that change tables, each with the part that names them (`names`, or `renames`). */
const TABLE_DDL: RegExp[] = [
  new RegExp(String.raw`^(?:CREATE|ALTER|DROP)\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?(?:ONLINE\s+|OFFLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?<names>${LIST})`, 'i'),
  new RegExp(String.raw`^TRUNCATE\s+(?:TABLE\s+)?(?<names>${QUALIFIED})`, 'i'),
  new RegExp(String.raw`^(?:CREATE(?:\s+OR\s+REPLACE)?(?:\s+(?:UNIQUE|FULLTEXT|SPATIAL))?|DROP)\s+INDEX\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?${NAME}\s+(?:USING\s+\w+\s+)?ON\s+(?<names>${QUALIFIED})`, 'i'),
  new RegExp(String.raw`^RENAME\s+TABLES?\s+(?:IF\s+EXISTS\s+)?(?<renames>${QUALIFIED}(?:\s+(?:WAIT\s+\d+|NOWAIT))?\s+TO\s+${QUALIFIED}(?:\s*,\s*${QUALIFIED}(?:\s+(?:WAIT\s+\d+|NOWAIT))?\s+TO\s+${QUALIFIED})*)`, 'i'),
];

/** DROP DATABASE: every table of it changes. */
const DROP_DATABASE = new RegExp(String.raw`^DROP\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+EXISTS\s+)?(?<db>${NAME})`, 'i');

/**
 * Quoted text, identifiers in backticks and comments, in the order they start. A quote left
 * open runs to the end (redacted whole): a literal never leaks by mis-pairing.
 */
const TOKENS = /(?<literal>'(?:[^'\\]|\\[\s\S]|'')*(?:'|$)|"(?:[^"\\]|\\[\s\S]|"")*(?:"|$))|(?<identifier>\x60(?:[^\x60]|\x60\x60)*\x60)|\/\*[\s\S]*?\*\/|(?:--\s|#)[^\n]*/g;

/** The statement with comments dropped and, when `literal` is given, every quoted literal replaced by it. */
function rewrite(statement: string, literal?: string): string {
  return statement
    .replace(TOKENS, (_match, quoted: string | undefined, identifier: string | undefined) => identifier ?? (quoted === undefined ? ' ' : (literal ?? quoted)))
    .replace(/\s+$/, '')
    .replace(/^\s+/, '');
}

function unquote(name: string): string {
  return name.startsWith('`') ? name.slice(1, -1).replaceAll('``', '`') : name;
}

function qualify(name: string, defaultDb: string): string {
  const parts = name.match(new RegExp(NAME, 'g'))!.map(unquote);
  return parts.length === 2 ? `${parts[0]}.${parts[1]}` : `${defaultDb}.${parts[0]}`;
}

/**
 * The `db.table` names a DDL statement changes (both names of a rename), resolved against
 * the session's database, or `db.*` when it drops a whole database; null when the statement
 * does not change a table.
 */
export function ddlTables(statement: string, defaultDb: string): string[] | null {
  const text = rewrite(statement);
  const dropped = DROP_DATABASE.exec(text);
  if (dropped) return [`${unquote(dropped.groups!.db!)}.*`];
  for (const pattern of TABLE_DDL) {
    const m = pattern.exec(text);
    if (!m) continue;
    const names = m.groups!.names ?? m.groups!.renames!;
    return names.split(/\s*,\s*|\s+TO\s+/i).map((n) => qualify(n.replace(/\s+(?:WAIT\s+\d+|NOWAIT)$/i, '').trim(), defaultDb));
  }
  return null;
}

/**
 * The statement as the schema-change topic carries it: comments dropped, every quoted
 * literal (DEFAULT and COMMENT values, CHECK constants, ENUM members) replaced by '?', and so
 * are numeric DEFAULTs and hex or bit literals. Identifiers, types and their lengths stay;
 * a bare number in a CHECK or a partition bound stays too.
 */
export function redactDdl(statement: string): string {
  // Outside quotes, values are numbers: a DEFAULT, a hex or bit literal (type lengths stay).
  return rewrite(statement, "'?'").replace(/\b0x[0-9A-Fa-f]+\b|\b0b[01]+\b/g, '?').replace(/\b(DEFAULT\s+)[-+]?[0-9][0-9.eE+-]*/gi, '$1?');
}
