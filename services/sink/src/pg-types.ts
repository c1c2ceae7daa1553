import { LOGICAL, META_FIELDS, type AvroFieldType, type AvroRecordSchema } from '@cityshare/shared';

export interface TargetColumn {
  name: string;
  pgType: string;
  nullable: boolean;
}

/** PostgreSQL type of an Avro field of a share schema (see README, "Type mapping"). */
export function pgTypeOf(type: AvroFieldType): { pgType: string; nullable: boolean } {
  if (Array.isArray(type)) {
    const inner = type.find((t) => t !== 'null');
    return { pgType: pgTypeOf(inner!).pgType, nullable: type.includes('null') };
  }
  if (typeof type === 'string') {
    const simple: Record<string, string> = { int: 'integer', long: 'bigint', float: 'real', double: 'double precision', boolean: 'boolean', string: 'text', bytes: 'bytea' };
    return { pgType: simple[type] ?? 'text', nullable: false };
  }
  switch (type.logicalType) {
    case LOGICAL.decimal: return { pgType: `numeric(${Number(type.precision)},${Number(type.scale ?? 0)})`, nullable: false };
    case LOGICAL.date: return { pgType: 'date', nullable: false };
    case LOGICAL.timestampMicros: return { pgType: 'timestamptz', nullable: false };
    case LOGICAL.localTimestampMicros: return { pgType: 'timestamp', nullable: false };
    case LOGICAL.json: return { pgType: 'jsonb', nullable: false };
    case LOGICAL.mysqlTime: return { pgType: 'interval', nullable: false };
    case LOGICAL.sealed: return { pgType: 'bytea', nullable: false };
    default: return pgTypeOf(type.type as AvroFieldType);
  }
}

/** Data columns of a share schema, in order, without the change metadata fields. */
export function targetColumns(schema: AvroRecordSchema): TargetColumn[] {
  const meta = new Set<string>(Object.values(META_FIELDS));
  return schema.fields.filter((f) => !meta.has(f.name)).map((f) => ({ name: f.name, ...pgTypeOf(f.type) }));
}
