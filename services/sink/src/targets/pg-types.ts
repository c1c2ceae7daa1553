import { LOGICAL, type AvroFieldType } from '@cityshare/shared';

/** PostgreSQL type of an Avro field of a share schema (see docs/capture.md, "Type mapping"). */
export function pgTypeOf(type: AvroFieldType): string {
  if (Array.isArray(type)) return pgTypeOf(type.find((t) => t !== 'null')!);
  if (typeof type === 'string') {
    const simple: Record<string, string> = { int: 'integer', long: 'bigint', float: 'real', double: 'double precision', boolean: 'boolean', string: 'text', bytes: 'bytea' };
    return simple[type] ?? 'text';
  }
  switch (type.logicalType) {
    case LOGICAL.decimal: return `numeric(${Number(type.precision)},${Number(type.scale ?? 0)})`;
    case LOGICAL.date: return 'date';
    case LOGICAL.timestampMicros: return 'timestamptz';
    case LOGICAL.localTimestampMicros: return 'timestamp';
    case LOGICAL.json: return 'jsonb';
    case LOGICAL.mysqlTime: return 'interval';
    case LOGICAL.sealed: return 'bytea';
    default: return pgTypeOf(type.type as AvroFieldType);
  }
}
