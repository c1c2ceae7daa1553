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

  static async load(conn: Connection, source: SourceConfig): Promise<TableCatalog> {
    const catalog = new TableCatalog();
    const problems: CdcError[] = [];
    for (const t of source.tables) {
      const [db, table] = t.name.split('.') as [string, string];
      const [rows] = await conn.query(
        `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY, CHARACTER_SET_NAME
           FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
        [db, table],
      );
      const columns = rows as ColumnRow[];
      if (columns.length === 0) {
        problems.push(new CdcError('TABLE_NOT_FOUND', `table ${t.name} does not exist on source ${source.name} (or the reader may not see it)`));
        continue;
      }
      const primaryKey = columns.filter((c) => c.COLUMN_KEY === 'PRI').map((c) => c.COLUMN_NAME);
      if (primaryKey.length === 0) {
        problems.push(new CdcError('TABLE_WITHOUT_KEY', `table ${t.name} on source ${source.name} has no primary key`));
        continue;
      }
      catalog.tables.set(t.name, {
        db,
        table,
        primaryKey,
        columns: columns.map((c): ColumnSchema => ({
          name: c.COLUMN_NAME,
          type: logicalTypeOf(c.COLUMN_TYPE, c.CHARACTER_SET_NAME),
          sourceType: c.COLUMN_TYPE,
          nullable: c.IS_NULLABLE === 'YES',
        })),
      });
    }
    if (problems.length === 1) throw problems[0];
    if (problems.length > 1) {
      throw new CdcError(problems[0]!.code, problems.map((p) => `${p.code}: ${p.message}`).join('\n  '), { details: { problems: problems.map((p) => p.code) } });
    }
    return catalog;
  }

  get(db: string, table: string): TableSchema | undefined {
    return this.tables.get(`${db}.${table}`);
  }

  names(): string[] {
    return [...this.tables.keys()];
  }
}
