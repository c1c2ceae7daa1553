import { describe, expect, it } from 'vitest';
import { deriveShareSchema, type TableSchema } from '@cityshare/shared';
import { pgTypeOf, targetColumns } from '../src/pg-types.js';

describe('PostgreSQL type mapping', () => {
  it('maps Avro types and logical types to exact PostgreSQL types', () => {
    expect(pgTypeOf({ type: 'bytes', logicalType: 'decimal', precision: 65, scale: 30 }).pgType).toBe('numeric(65,30)');
    expect(pgTypeOf({ type: 'long', logicalType: 'timestamp-micros' }).pgType).toBe('timestamptz');
    expect(pgTypeOf({ type: 'long', logicalType: 'local-timestamp-micros' }).pgType).toBe('timestamp');
    expect(pgTypeOf({ type: 'string', logicalType: 'cityshare-json' }).pgType).toBe('jsonb');
    expect(pgTypeOf({ type: 'bytes', logicalType: 'cityshare-sealed' }).pgType).toBe('bytea');
    expect(pgTypeOf(['null', 'long'])).toEqual({ pgType: 'bigint', nullable: true });
  });

  it('takes the data columns of a share schema, not its metadata', () => {
    const table: TableSchema = {
      db: 'd', table: 't', primaryKey: ['id'],
      columns: [
        { name: 'id', type: { kind: 'int', bits: 32, unsigned: false }, sourceType: 'int', nullable: false },
        { name: 'born', type: { kind: 'date' }, sourceType: 'date', nullable: true },
      ],
    };
    const schema = deriveShareSchema('x', table, [{ column: 'id', action: 'pass' }, { column: 'born', action: 'pass' }]);
    expect(targetColumns(schema)).toEqual([
      { name: 'id', pgType: 'integer', nullable: false },
      { name: 'born', pgType: 'date', nullable: true },
    ]);
  });
});
