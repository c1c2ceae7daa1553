import type { Connection } from 'mysql2/promise';
import { CdcError, logicalTypeOf, type ColumnSchema, type SourceConfig, type TableSchema } from '@cityshare/shared';

interface ColumnRow {
  TABLE_SCHEMA: string;
  TABLE_NAME: string;
  COLUMN_NAME: string;
  COLUMN_TYPE: string;
  IS_NULLABLE: string;
  COLUMN_KEY: string;
  CHARACTER_SET_NAME: string | null;
}

/**
 * The registered tables as the source's information_schema describes them now. Used to
 * refuse unknown tables and tables without a key before streaming, and to supply what
 * binlog table maps cannot say (nullability, MariaDB UUID/INET types).
 */
export class TableCatalog {
  private readonly tables = new Map<string, TableSchema>();
  /** Tables registered append-only: accepted without a key. */
  private readonly appendOnly = new Set<string>();

  static async load(conn: Connection, source: SourceConfig): Promise<TableCatalog> {
    const catalog = new TableCatalog();
    const problems: CdcError[] = [];
    for (const t of source.tables) {
      const [db, table] = t.name.split('.') as [string, string];
      if (t.appendOnly) catalog.appendOnly.add(t.name);
      const described = await describeTable(conn, source.name, db, table, t.appendOnly);
      if (described instanceof CdcError) problems.push(described);
      else catalog.tables.set(t.name, described);
    }
    if (problems.length === 1) throw problems[0];
    if (problems.length > 1) {
      throw new CdcError(problems[0]!.code, problems.map((p) => `${p.code}: ${p.message}`).join('\n  '), { details: { problems: problems.map((p) => p.code) } });
    }
    return catalog;
  }

  /** Re-reads one registered table after DDL; keeps the previous description if it is gone or keyless. */
  async reload(conn: Connection, sourceName: string, db: string, table: string): Promise<CdcError | undefined> {
    if (!this.tables.has(`${db}.${table}`)) return undefined;
    const described = await describeTable(conn, sourceName, db, table, this.appendOnly.has(`${db}.${table}`));
    if (described instanceof CdcError) return described;
    // An unchanged table keeps its schema object, and with it what was compiled for it.
    if (JSON.stringify(described) !== JSON.stringify(this.tables.get(`${db}.${table}`))) this.tables.set(`${db}.${table}`, described);
    return undefined;
  }

  get(db: string, table: string): TableSchema | undefined {
    return this.tables.get(`${db}.${table}`);
  }

  names(): string[] {
    return [...this.tables.keys()];
  }
}

async function describeTable(conn: Connection, sourceName: string, db: string, table: string, appendOnly = false): Promise<TableSchema | CdcError> {
  const [rows] = await conn.query(
    `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY, CHARACTER_SET_NAME
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
    [db, table],
  );
  const columns = rows as ColumnRow[];
  if (columns.length === 0) {
    return new CdcError('TABLE_NOT_FOUND', `table ${db}.${table} does not exist on source ${sourceName} (or the reader may not see it)`);
  }
  const primaryKey = columns.filter((c) => c.COLUMN_KEY === 'PRI').map((c) => c.COLUMN_NAME);
  if (primaryKey.length === 0 && !appendOnly) {
    return new CdcError('TABLE_WITHOUT_KEY', `table ${db}.${table} on source ${sourceName} has no primary key`);
  }
  const json = await mariadbJsonColumns(conn, db, table);
  return {
    db,
    table,
    primaryKey,
    columns: columns.map((c): ColumnSchema => ({
      name: c.COLUMN_NAME,
      type: json.has(c.COLUMN_NAME) ? { kind: 'json' } : logicalTypeOf(c.COLUMN_TYPE, c.CHARACTER_SET_NAME),
      sourceType: json.has(c.COLUMN_NAME) ? 'json' : c.COLUMN_TYPE,
      nullable: c.IS_NULLABLE === 'YES',
    })),
  };
}

/**
 * MariaDB stores JSON as LONGTEXT with a `json_valid(col)` column check; that check is
 * the only trace of the declared type. (MySQL reports json directly; the query finds nothing.)
 */
async function mariadbJsonColumns(conn: Connection, db: string, table: string): Promise<Set<string>> {
  try {
    const [rows] = await conn.query(
      "SELECT CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CHECK_CLAUSE LIKE 'json_valid(%'",
      [db, table],
    );
    return new Set((rows as Array<{ clause: string }>).map((r) => /^json_valid\(`(.+)`\)$/.exec(r.clause)?.[1]).filter((c): c is string => c !== undefined));
  } catch {
    return new Set();
  }
}
