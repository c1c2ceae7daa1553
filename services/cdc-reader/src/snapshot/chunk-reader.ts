import type { Connection } from 'mysql2/promise';
import type { TableSchema } from '@cityshare/shared';

const q = (ident: string) => `\`${ident.replace(/`/g, '``')}\``;

/**
 * Reads a table in primary-key order, one bounded chunk at a time (keyset pagination,
 * no OFFSET, no lock), or the rows of named keys (a repair). The connection uses the same
 * value options as the binlog reader and UTC, so snapshot rows and binlog rows of the same
 * data decode identically.
 */
export class ChunkReader {
  constructor(private readonly conn: Connection) {}

  async readChunk(schema: TableSchema, after: unknown[] | null, limit: number): Promise<Array<Record<string, unknown>>> {
    const pk = schema.primaryKey.map(q);
    const where = after ? `WHERE ${keyTuple(schema)} > ${placeholders(pk.length)}` : '';
    const [rows] = await this.conn.query(
      `SELECT ${selectList(schema)} FROM ${q(schema.db)}.${q(schema.table)} ${where} ORDER BY ${pk.join(', ')} LIMIT ${Number(limit)}`,
      after ?? [],
    );
    return rows as Array<Record<string, unknown>>;
  }

  /**
   * The rows of these primary keys (key columns as the source returns them). A value the
   * server compares loosely may bring a neighbour along; the caller keeps rows by their
   * canonical key.
   */
  async readKeys(schema: TableSchema, keys: Array<Record<string, unknown>>): Promise<Array<Record<string, unknown>>> {
    if (keys.length === 0) return [];
    const tuple = placeholders(schema.primaryKey.length);
    const [rows] = await this.conn.query(
      `SELECT ${selectList(schema)} FROM ${q(schema.db)}.${q(schema.table)} WHERE ${keyTuple(schema)} IN (${keys.map(() => tuple).join(', ')})`,
      keys.flatMap((k) => schema.primaryKey.map((c) => k[c])),
    );
    return rows as Array<Record<string, unknown>>;
  }

  async estimateRows(schema: TableSchema): Promise<number> {
    const [rows] = await this.conn.query('SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [schema.db, schema.table]);
    return Number((rows as Array<{ n: number | null }>)[0]?.n ?? 0);
  }
}

function selectList(schema: TableSchema): string {
  return schema.columns.map((c) => {
    // A SELECT prints FLOAT with 6 significant digits; as DOUBLE it is the stored float32 exactly, as in the binlog.
    if (c.type.kind === 'float') return `CAST(${q(c.name)} AS DOUBLE) AS ${q(c.name)}`;
    // GEOMETRY as stored (SRID + WKB), as the binlog carries it, not parsed by the driver.
    if (c.type.kind === 'geometry') return `CAST(${q(c.name)} AS BINARY) AS ${q(c.name)}`;
    return q(c.name);
  }).join(', ');
}

/** The key columns, as one column or a row constructor. */
function keyTuple(schema: TableSchema): string {
  const pk = schema.primaryKey.map(q);
  return pk.length === 1 ? pk[0]! : `(${pk.join(', ')})`;
}

function placeholders(n: number): string {
  return n === 1 ? '?' : `(${Array.from({ length: n }, () => '?').join(', ')})`;
}
