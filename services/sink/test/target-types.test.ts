import { describe, expect, it } from 'vitest';
import { deriveShareSchema, type TableSchema } from '@cityshare/shared';
import { pgTypeOf } from '../src/targets/pg-types.js';
import { mysqlTypeOf } from '../src/targets/mysql.target.js';
import { targetColumns } from '../src/targets/target.js';

describe('target type mapping', () => {
  it('maps Avro types and logical types to exact PostgreSQL types', () => {
    expect(pgTypeOf({ type: 'bytes', logicalType: 'decimal', precision: 65, scale: 30 })).toBe('numeric(65,30)');
    expect(pgTypeOf({ type: 'long', logicalType: 'timestamp-micros' })).toBe('timestamptz');
    expect(pgTypeOf({ type: 'long', logicalType: 'local-timestamp-micros' })).toBe('timestamp');
    expect(pgTypeOf({ type: 'string', logicalType: 'cityshare-json' })).toBe('jsonb');
    expect(pgTypeOf({ type: 'bytes', logicalType: 'cityshare-sealed' })).toBe('bytea');
    expect(pgTypeOf(['null', 'long'])).toBe('bigint');
  });

  it('maps them to exact MySQL/MariaDB types, with bounded types for key columns', () => {
    expect(mysqlTypeOf({ type: 'bytes', logicalType: 'decimal', precision: 65, scale: 30 })).toBe('DECIMAL(65,30)');
    expect(mysqlTypeOf({ type: 'long', logicalType: 'timestamp-micros' })).toBe('DATETIME(6)');
    expect(mysqlTypeOf({ type: 'string', logicalType: 'cityshare-json' })).toBe('JSON');
    expect(mysqlTypeOf({ type: 'bytes', logicalType: 'cityshare-sealed' })).toBe('LONGBLOB');
    expect(mysqlTypeOf('string')).toBe('LONGTEXT');
    expect(mysqlTypeOf('string', true)).toBe('VARCHAR(768)');
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
      { name: 'id', type: 'int', nullable: false },
      { name: 'born', type: { type: 'int', logicalType: 'date' }, nullable: true },
    ]);
  });
});
