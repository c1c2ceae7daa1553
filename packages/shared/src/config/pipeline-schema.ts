import { z } from 'zod';

/**
 * The declarative pipeline file (pipeline.yaml): sources and their tables with column
 * classes, departments with their targets and grants, and the shared infrastructure.
 * This schema is the reference documentation: `npm run config:docs` renders it.
 */
const secret = { secret: true } as const;
const name = z.string().regex(/^[a-z][a-z0-9_]*$/, 'lower-case letters, digits and _; starts with a letter');
const identifier = z.string().regex(/^[A-Za-z0-9_$]+$/, 'a MySQL identifier (letters, digits, _ and $)');

export const columnClass = z
  .enum(['public', 'internal', 'personal', 'secret'])
  .describe('public and internal travel in clear inside the pipeline; personal and secret are encrypted from the reader on');

export const maskKind = z.enum(['phone', 'id_card', 'name', 'email', 'bank_card', 'address', 'plate', 'date_to_year', 'full']);

export const maskSpec = z.union([
  maskKind,
  z.strictObject({
    keep: z.strictObject({
      first: z.number().int().min(0).default(0),
      last: z.number().int().min(0).default(0),
      char: z.string().length(1).default('*'),
    }),
  }),
]);

export const grantAction = z
  .union([
    z.literal('pass').describe('deliver the value as it is'),
    z.literal('encrypt').describe("AES-256-GCM under the department's key; the department decrypts"),
    z.literal('tokenize').describe('keyed HMAC-SHA256 token, equal for equal values'),
    z.strictObject({ mask: maskSpec }).describe('irreversible mask, e.g. 138****1234'),
  ])
  .describe('what the department receives for this column; a column not listed is not shared');

export const tableSpec = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_$]+\.[A-Za-z0-9_$]+$/, 'db.table').describe('database.table on the source'),
  columns: z.record(identifier, columnClass).describe('class of each column; an unlisted column counts as secret'),
  appendOnly: z
    .boolean()
    .default(false)
    .describe('for a table without a primary key: delivered as a change log (every change appended downstream, identified by its source position) instead of being refused; such a table is not snapshotted'),
});

export const sourceSpec = z.strictObject({
  name,
  connection: z.strictObject({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(3306),
    user: z.string().min(1),
    password: z.string().default('').meta(secret),
  }),
  serverId: z.number().int().min(1).max(4294967295).describe('replica server id the reader uses; unique in the replication topology'),
  tables: z.array(tableSpec).min(1),
});

export const postgresTarget = z.strictObject({
  kind: z.literal('postgres'),
  url: z.string().min(1).describe('postgres:// connection string').meta(secret),
  schema: name.describe('schema the department tables live in; created when missing'),
});

export const grantSpec = z.strictObject({
  table: z.string().regex(/^[a-z][a-z0-9_]*\.[A-Za-z0-9_$]+\.[A-Za-z0-9_$]+$/, 'source.db.table'),
  columns: z.record(identifier, grantAction),
  targetTable: identifier.optional().describe('table name at the target; defaults to the source table name'),
});

export const departmentSpec = z.strictObject({
  name,
  target: postgresTarget,
  grants: z.array(grantSpec).default([]),
});

export const pipelineSchema = z.strictObject({
  kafka: z.strictObject({
    brokers: z.array(z.string().min(1)).min(1),
    topicPrefix: name.default('cityshare'),
    partitions: z.number().int().min(1).default(3),
    replicationFactor: z.number().int().min(1).default(1),
  }),
  schemaRegistry: z.strictObject({
    url: z.string().url().describe('Confluent-compatible API, e.g. http://host:8081/apis/ccompat/v7 for Apicurio'),
    username: z.string().optional(),
    password: z.string().optional().meta(secret),
  }),
  keyring: z.strictObject({
    file: z.string().min(1).describe('keyring JSON file, relative to the pipeline file'),
  }),
  sources: z.array(sourceSpec).min(1),
  departments: z.array(departmentSpec).default([]),
});

export type PipelineConfig = z.infer<typeof pipelineSchema>;
export type SourceConfig = PipelineConfig['sources'][number];
export type TableConfig = SourceConfig['tables'][number];
export type DepartmentConfig = PipelineConfig['departments'][number];
export type GrantConfig = DepartmentConfig['grants'][number];
export type GrantAction = z.infer<typeof grantAction>;
export type MaskSpec = z.infer<typeof maskSpec>;
export type ColumnClass = z.infer<typeof columnClass>;
