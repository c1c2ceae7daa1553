import { createConnection, type Connection } from 'mysql2/promise';
import { ChunkReader } from '@cityshare/cdc-reader/chunk-reader';
import { binlogEnd } from '@cityshare/cdc-reader/source-check';
import { grantedColumns, type Granted } from './granted-columns.js';
import { exactValueOptions } from '@cityshare/cdc-reader/source-values';
import { CdcError, applyRule, comparable, keyText, rowDigest, sourceConnectionOptions, toCanonical, type BinlogPosition, type CanonicalValue, type ColumnRule, type DataKey, type Row, type RowFilter, type SourceConfig, type TableSchema } from '@cityshare/shared';

/** One department's grant on one table, as the verifier applies it. */
export interface GrantView {
  department: string;
  rules: ColumnRule[];
  filter?: RowFilter | undefined;
}

/** A row as the department should hold it: policy(source), in comparable form. */
export interface ExpectedRow {
  /** The department's key (keyText of its key columns, passed or tokenized). */
  key: string;
  digest: Buffer;
  /** The source's primary key (canonical values, key order): what a repair asks the reader for. */
  sourceKey: CanonicalValue[];
}

/**
 * Where a consistent read of the source stands in its binlog: every change at or before
 * `low` is in it, none after `high`. MariaDB states the exact position of a consistent
 * snapshot (`binlog_snapshot_file/position`): low = high. Elsewhere the binlog end before
 * and after the snapshot opened bound it.
 */
export interface SnapshotPosition {
  low: BinlogPosition;
  high: BinlogPosition;
}

/**
 * policy(source) for one department and table: the source's rows read without locks inside
 * one consistent snapshot (InnoDB MVCC, as mysqldump --single-transaction reads), each put
 * through the department's row filter and column rules (applyRule, as the transformer does),
 * in comparable form. Encrypted columns are compared as their plain values: the department's
 * ciphertexts are opened on the verifier's side (department-side.ts), never the other way.
 */
export class SourceSide {
  private readonly chunks: ChunkReader;
  private readonly granted: Granted[];
  private readonly keyRules: Granted[];
  /** Source rows read (the load this puts on the source). */
  rowsRead = 0;
  queries = 0;

  private constructor(
    private readonly conn: Connection,
    readonly schema: TableSchema,
    readonly view: GrantView,
    private readonly tokenKey: (domain: string | undefined) => DataKey,
  ) {
    this.chunks = new ChunkReader(conn);
    ({ granted: this.granted, keys: this.keyRules } = grantedColumns(schema, view));
  }

  static async open(source: SourceConfig, schema: TableSchema, view: GrantView, tokenKey: (domain: string | undefined) => DataKey): Promise<SourceSide> {
    const conn = await createConnection({ ...sourceConnectionOptions(source), ...exactValueOptions }).catch((cause: Error) => {
      throw new CdcError('SOURCE_UNREACHABLE', `source ${source.name} is not reachable: ${(cause as { code?: string }).code ?? 'connection failed'}`, { cause });
    });
    conn.on('error', () => undefined);
    return new SourceSide(conn, schema, view, tokenKey);
  }

  /** The granted columns in source order: the order of a row's values in its digest. */
  get columns(): string[] {
    return this.granted.map((g) => g.column.name);
  }

  /** Starts a consistent snapshot; what this side reads until `end()` is the source at its position. */
  async begin(): Promise<SnapshotPosition> {
    const low = await binlogEnd(this.conn);
    await this.conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    await this.conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    const [status] = await this.conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'");
    const vars = new Map((status as Array<{ Variable_name: string; Value: string }>).map((r) => [r.Variable_name, r.Value]));
    const file = vars.get('binlog_snapshot_file');
    const pos = Number(vars.get('binlog_snapshot_position'));
    this.queries += 3;
    if (file && Number.isFinite(pos) && pos > 0) return { low: { file, pos }, high: { file, pos } };
    return { low, high: await binlogEnd(this.conn) };
  }

  async end(): Promise<void> {
    await this.conn.query('COMMIT');
  }

  /** Where the source's binlog ends now (outside any snapshot). */
  async binlogEnd(): Promise<BinlogPosition> {
    this.queries++;
    return binlogEnd(this.conn);
  }

  /** Every row of the table in key order, a chunk at a time; rows outside the department's filter are left out. */
  async scan(onPage: (rows: ExpectedRow[]) => void | Promise<void>, chunkRows = 2_000): Promise<number> {
    let read = 0;
    let next: Promise<Array<Record<string, unknown>>> | undefined = this.chunks.readChunk(this.schema, null, chunkRows);
    while (next) {
      const rows: Array<Record<string, unknown>> = await next;
      this.queries++;
      read += rows.length;
      this.rowsRead += rows.length;
      // The next chunk is asked for before this one is worked on: the source reads while the verifier hashes.
      const last = rows[rows.length - 1];
      next = rows.length < chunkRows || !last ? undefined : this.chunks.readChunk(this.schema, this.schema.primaryKey.map((k) => last[k]), chunkRows);
      const page: ExpectedRow[] = [];
      for (const raw of rows) {
        const expected = this.project(raw);
        if (expected) page.push(expected);
      }
      await onPage(page);
    }
    return read;
  }

  /** The rows of these source keys, each null when the source has no such row (or the filter leaves it out). */
  async byKeys(keys: CanonicalValue[][]): Promise<Map<string, ExpectedRow | null>> {
    const out = new Map<string, ExpectedRow | null>(keys.map((k) => [JSON.stringify(k), null]));
    for (let i = 0; i < keys.length; i += 500) {
      const rows = await this.chunks.readKeys(this.schema, keys.slice(i, i + 500).map((k) => Object.fromEntries(this.schema.primaryKey.map((c, j) => [c, k[j] ?? null]))));
      this.queries++;
      this.rowsRead += rows.length;
      for (const raw of rows) {
        const row = this.canonical(raw);
        const id = JSON.stringify(this.schema.primaryKey.map((k) => row[k] ?? null));
        out.set(id, this.projectRow(row));
      }
    }
    return out;
  }

  private canonical(raw: Record<string, unknown>): Row {
    const row: Row = {};
    for (const c of this.schema.columns) row[c.name] = toCanonical(c.type, raw[c.name]);
    return row;
  }

  private project(raw: Record<string, unknown>): ExpectedRow | null {
    return this.projectRow(this.canonical(raw));
  }

  /** The department's view of one source row, or null when its filter leaves the row out. */
  private projectRow(row: Row): ExpectedRow | null {
    if (this.view.filter && !this.view.filter.matches(row)) return null;
    const key = keyText(this.keyRules.map((g) => this.valueOf(g, row)));
    return { key, digest: rowDigest(key, this.granted.map((g) => this.valueOf(g, row))), sourceKey: this.schema.primaryKey.map((k) => row[k] ?? null) };
  }

  private valueOf(g: Granted, row: Row): string | null {
    const plain = row[g.column.name] ?? null;
    if (plain === null) return null;
    const out = applyRule(g.rule, plain, this.tokenKey);
    return out.as === 'text' ? out.text : comparable(g.column.type, plain);
  }

  async close(): Promise<void> {
    await this.conn.end().catch(() => undefined);
  }
}
