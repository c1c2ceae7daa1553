import { definitionOf, type TargetConfig } from '@cityshare/sink/targets';
import type { ReadRow, ReadSpec, TableReadBack } from '@cityshare/sink/target';
import { CdcError, canonicalOfText, comparable, isCdcError, keyText, openDepartmentValue, rowDigest, type KeyProvider, type Logger, type TableSchema } from '@cityshare/shared';
import { grantedColumns, type Granted } from './granted-columns.js';
import type { GrantView } from './source-side.js';

/** A row as the department holds it, in comparable form. */
export interface HeldRow {
  key: string;
  digest: Buffer;
  /** The source position of the change that last wrote it (`__version`). */
  version: string;
  /** The key as the share record had it (`{column: value}` in grant order): what a repair by department key names. */
  shareKey: string;
}

/**
 * What a department holds of one table, read back from its target (table targets only:
 * PostgreSQL, MySQL/MariaDB, an export's staging), in the same comparable form as
 * policy(source). Values the department holds encrypted are opened here with its key,
 * bound to their row as the transformer bound them: a ciphertext moved to another row, or
 * that does not open, compares as different, never as its plain value.
 */
export class DepartmentSide {
  private readonly spec: ReadSpec;
  private readonly granted: Granted[];
  private readonly keyColumns: Granted[];
  /** The key columns in the order the share record's key names them (the grant's). */
  private readonly shareKeyOrder: string[];
  rowsRead = 0;

  private constructor(
    private readonly reader: TableReadBack,
    private readonly where: { source: string; department: string; db: string; table: string },
    targetTable: string,
    schema: TableSchema,
    view: GrantView,
    private readonly keys: KeyProvider,
  ) {
    ({ granted: this.granted, keys: this.keyColumns } = grantedColumns(schema, view));
    this.shareKeyOrder = view.rules.map((r) => r.column).filter((c) => schema.primaryKey.includes(c));
    this.spec = {
      table: targetTable,
      columns: this.granted.map((g) => g.column.name),
      primaryKey: schema.primaryKey,
      sealed: this.granted.filter((g) => g.rule.action === 'encrypt').map((g) => g.column.name),
    };
  }

  static open(target: TargetConfig, where: { source: string; department: string; db: string; table: string }, targetTable: string, schema: TableSchema, view: GrantView, keys: KeyProvider, logger: Logger): DepartmentSide {
    const definition = definitionOf(target);
    if (!definition.readBack) {
      throw new CdcError('CONFIG_INVALID', `department ${where.department} receives its data through a ${target.kind} target, which keeps no table to read back: compare on its side with the digests of \`cdc verify --digests\` (docs/verify.md)`);
    }
    return new DepartmentSide(definition.readBack(target, { logger }), where, targetTable, schema, view, keys);
  }

  /** false while the department has received nothing of the table. */
  exists(): Promise<boolean> {
    return this.reader.exists(this.spec.table);
  }

  /** Every row the department holds (soft-deleted ones are not held). */
  async scan(onPage: (rows: HeldRow[]) => void | Promise<void>, pageRows = 2_000): Promise<void> {
    await this.reader.scan(this.spec, async (rows) => {
      this.rowsRead += rows.length;
      await onPage(rows.filter((r) => !r.deleted).map((r) => this.held(r)));
    }, pageRows);
  }

  /** The rows the department holds of these keys (keyText of each). */
  async byKeys(keys: string[]): Promise<Map<string, HeldRow>> {
    const rows = await this.reader.byKeys(this.spec, keys.map((k) => (JSON.parse(k) as Array<string | null>).map((v) => v ?? '')));
    this.rowsRead += rows.length;
    return new Map(rows.filter((r) => !r.deleted).map((r) => this.held(r)).map((h) => [h.key, h]));
  }

  private held(r: ReadRow): HeldRow {
    const key = keyText(this.keyColumns.map((g) => this.text(g, r.values[g.column.name])));
    // The share record's key, only where a value is bound to it (encrypted columns) or a repair names it.
    const shareKey = () => this.shareKeyOf(r);
    let bound: Record<string, string> | undefined;
    const values = this.granted.map((g) => (g.rule.action === 'encrypt' ? this.opened(g, r.values[g.column.name], (bound ??= shareKey()), r.version) : this.text(g, r.values[g.column.name])));
    return { key, digest: rowDigest(key, values), version: r.version, get shareKey() { return JSON.stringify(bound ?? shareKey()); } };
  }

  /** The key as the share record had it: passed columns as their canonical values' text, tokens as they are, in the grant's order. */
  private shareKeyOf(r: ReadRow): Record<string, string> {
    const shareKey: Record<string, string> = {};
    for (const name of this.shareKeyOrder) {
      const g = this.keyColumns.find((k) => k.column.name === name)!;
      const v = r.values[name];
      shareKey[name] = g.rule.action === 'pass' ? String(canonicalOfText(g.column.type, String(v))) : String(v);
    }
    return shareKey;
  }

  private text(g: Granted, value: unknown): string | null {
    if (value === null || value === undefined) return null;
    return g.rule.action === 'mask' || g.rule.action === 'tokenize' ? String(value) : comparable(g.column.type, value);
  }

  /** A value the department holds encrypted, opened with its key inside the verifier. */
  private opened(g: Granted, value: unknown, key: Record<string, string>, version: string): string | null {
    if (value === null || value === undefined) return null;
    try {
      const plain = openDepartmentValue(this.keys, Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'binary'), { ...this.where, column: g.column.name, key: Object.keys(key).length > 0 ? key : { __version: version } });
      return comparable(g.column.type, plain);
    } catch (err) {
      if (!isCdcError(err, 'DECRYPT_FAILED') && !isCdcError(err, 'KEY_NOT_FOUND')) throw err;
      // Not the value that belongs there: it differs from every plain value.
      return '\u0000undecryptable';
    }
  }

  close(): Promise<void> {
    return this.reader.close();
  }
}
