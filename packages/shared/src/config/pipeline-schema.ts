import { z } from 'zod';
import { MAX_MASK_INPUT } from '../policy/mask.js';
import { MAX_PATTERN_LENGTH, patternProblem } from '../policy/user-pattern.js';
import { compileRowFilter } from '../policy/row-filter.js';
import { anyTarget, type AnyTarget, type TargetSettings } from './pipeline-targets.js';

/**
 * The declarative pipeline file (pipeline.yaml): sources and their tables with column
 * classes, departments with their targets and grants, and the shared infrastructure.
 * This schema is the reference documentation: `npm run config:docs` renders it.
 */
/** Metadata of a setting that holds a secret: the JSON schema flags it, so tools can redact it. */
export const secretSetting = { secret: true } as const;
const secret = secretSetting;
/** A name in the pipeline file (source, department, schema): lower-case letters, digits and _. */
export const configName = z.string().regex(/^[a-z][a-z0-9_]*$/, 'lower-case letters, digits and _; starts with a letter');
const name = configName;
const identifier = z.string().regex(/^[A-Za-z0-9_$]+$/, 'a MySQL identifier (letters, digits, _ and $)');

export const columnClass = z
  .enum(['public', 'internal', 'personal', 'secret'])
  .describe('public and internal travel in clear inside the pipeline; personal and secret are encrypted from the reader on');

export const maskKind = z
  .enum(['phone', 'id_card', 'name', 'email', 'bank_card', 'address', 'plate', 'date_to_year', 'date_to_month', 'full'])
  .describe(
    'built-in mask: phone (138****1234, +86 138-****-1234; landlines keep area code and last 4), ' +
      'id_card (18 digits keep region and check digit: 110101***********X; 15-digit legacy keeps region; anything else fully masked), ' +
      'name (keeps the surname, compound ones too: 张**, 欧阳**; Latin names keep initials: J*** S****), ' +
      'email (a****@example.gov.cn), bank_card (16-19 digits, keeps first 6 and last 4: 622202******7890), ' +
      'address (keeps province/city/district: 北京市海淀区*******; else the first 6 characters), ' +
      'plate (京A***45, new energy 京A****45), date_to_year (DATE, DATETIME or TIMESTAMP -> 1990), ' +
      'date_to_month (-> 1990-05), full (every character becomes *)',
  );

export const maskSpec = z
  .union([
    maskKind,
    z
      .strictObject({
        keep: z.strictObject({
          first: z.number().int().min(0).default(0).describe('characters kept at the start'),
          last: z.number().int().min(0).default(0).describe('characters kept at the end'),
          char: z.string().length(1).default('*').describe('character that replaces the others'),
        }),
      })
      .describe('keeps the first and last characters (code points), replaces the others'),
    z
      .strictObject({
        regex: z.strictObject({
          pattern: z
            .string()
            .superRefine((pattern, ctx) => {
              const problem = patternProblem(pattern);
              if (problem) ctx.addIssue({ code: 'custom', message: `invalid mask pattern ${JSON.stringify(pattern)}: ${problem}` });
            })
            .describe(`regular expression in RE2 syntax (at most ${MAX_PATTERN_LENGTH} characters; linear-time matching, so no lookarounds or backreferences), replacing every match`),
          replace: z.string().max(MAX_PATTERN_LENGTH).describe('replacement for every match; $1, $<name> and $& refer to the match'),
          unmatched: z
            .enum(['full', 'pass'])
            .default('full')
            .describe('a value the pattern does not match: full masks every character (default), pass delivers it unchanged'),
        }),
      })
      .describe(`regular-expression mask on the text of the value (its first ${MAX_MASK_INPUT} characters; the rest is dropped)`),
    z
      .strictObject({
        round: z.strictObject({
          to: z.number().positive().describe('rounds to the nearest multiple (half away from zero), e.g. 100 or 0.01'),
        }),
      })
      .describe("numbers and decimal strings rounded exactly, as a string with the fraction digits of `to`: 12345.67 to 100 -> '12300'"),
    z
      .strictObject({
        bucket: z.strictObject({
          size: z.number().int().positive().describe('width of each range'),
        }),
      })
      .describe("numbers replaced by their range [lo, lo+size): age 37 with size 10 -> '30-39'"),
  ])
  .describe('irreversible mask; null stays null');

export const grantAction = z
  .union([
    z.literal('pass').describe('deliver the value as it is'),
    z.literal('encrypt').describe("envelope encryption for the department (AES-256-GCM data keys wrapped by the department's key); the department decrypts with its keyring"),
    z
      .strictObject({
        encrypt: z.strictObject({
          suite: z.enum(['aes-256-gcm', 'sm4-ctr-hmac-sm3']).default('aes-256-gcm').describe('cipher suite: AES-256-GCM, or SM4-CTR with HMAC-SM3 (encrypt-then-MAC) for national-standard deployments'),
        }),
      })
      .describe('envelope encryption with a chosen cipher suite, e.g. { encrypt: { suite: sm4-ctr-hmac-sm3 } }'),
    z.literal('tokenize').describe("keyed HMAC-SHA256 token in the department's own token domain, equal for equal values"),
    z
      .strictObject({
        tokenize: z
          .strictObject({
            domain: name
              .optional()
              .describe("token domain; its key is `token:<domain>` in the keyring. Departments given tokens of the same domain can join on them. Omitted: the department's own domain"),
            algorithm: z.enum(['hmac-sha256', 'hmac-sm3']).default('hmac-sha256').describe('HMAC hash: SHA-256 or SM3 (GB/T 32905)'),
            format: z
              .enum(['opaque', 'digits', 'preserve'])
              .default('opaque')
              .describe(
                'opaque: tok:<keyId>:<base64url>; digits: as many digits as the value has; preserve: digits, letters (with case) and Han characters replaced in kind. ' +
                  'digits and preserve are HMAC-derived, not reversible, carry no key id: rotating the domain key changes every token',
              ),
          })
          .describe('deterministic keyed token in a token domain'),
      })
      .describe('keyed token with options, in a named (shared) token domain, e.g. { tokenize: { domain: citizen } }'),
    z.strictObject({ mask: maskSpec }).describe('irreversible mask, e.g. 138****1234'),
  ])
  .describe('what the department receives for this column; a column not listed is not shared');

export const qualityRule = z
  .strictObject({
    notNull: z.boolean().optional().describe('the value must not be null'),
    regex: z
      .string()
      .optional()
      .superRefine((pattern, ctx) => {
        const problem = pattern === undefined ? null : patternProblem(pattern);
        if (problem) ctx.addIssue({ code: 'custom', message: `invalid quality pattern ${JSON.stringify(pattern)}: ${problem}` });
      })
      .describe(`the value, as text, must contain a match (regular expression in RE2 syntax, at most ${MAX_PATTERN_LENGTH} characters; anchor with ^…$ for the whole value)`),
    min: z.union([z.number(), z.string()]).optional().describe('lowest allowed value: numbers compare exactly, other values (dates) as text'),
    max: z.union([z.number(), z.string()]).optional().describe('highest allowed value'),
    enum: z.array(z.union([z.string(), z.number()])).min(1).optional().describe('the allowed values'),
  })
  .describe('data-quality rule of a column: a change breaking it goes to the dead-letter topic instead of any department');

export const tableSpec = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_$]+\.[A-Za-z0-9_$]+$/, 'db.table').describe('database.table on the source'),
  columns: z.record(identifier, columnClass).describe('class of each column; an unlisted column counts as secret'),
  appendOnly: z
    .boolean()
    .default(false)
    .describe('for a table without a primary key: delivered as a change log (every change appended downstream, identified by its source position) instead of being refused; such a table is not snapshotted'),
  quality: z.record(identifier, qualityRule).optional().describe('data-quality rules per column, checked on every new row image before any department receives it'),
});

export const pemFile = (what: string) => z.string().min(1).describe(`${what}: PEM file, relative to the pipeline file`);
const clientCertificate = {
  cert: pemFile('client certificate, for accounts that require one (X509)').optional(),
  key: pemFile('private key of cert (read once at start, never logged)').optional(),
};
const certWithKey = (t: { cert?: string | undefined; key?: string | undefined }) => (t.cert === undefined) === (t.key === undefined);
const certWithKeyMessage = { message: 'cert and key go together: set both for a client certificate, or neither' };

/** TLS to a MySQL/MariaDB server (mysql2's `ssl`). */
export const mysqlTls = z
  .strictObject({
    ca: pemFile('CA certificate(s) the server certificate must chain to'),
    ...clientCertificate,
    verifyIdentity: z.boolean().default(true).describe('the server certificate must name the host connected to (DNS name or IP address); false checks the chain only'),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).optional().describe('lowest TLS version accepted (default TLSv1.2)'),
  })
  .refine(certWithKey, certWithKeyMessage)
  .describe('TLS: the server is authenticated by the CA, the connection is encrypted; absent = in clear');

/** TLS to PostgreSQL (pg's `ssl`), named like libpq's sslmode. */
export const postgresTls = z
  .strictObject({
    mode: z
      .enum(['verify-full', 'verify-ca', 'require'])
      .default('verify-full')
      .describe('verify-full: the certificate chains to ca and names the host; verify-ca: chains to ca, any name; require: encrypted but the server is not authenticated (not for production)'),
    ca: pemFile('CA certificate(s) the server certificate must chain to; absent = the system CAs').optional(),
    ...clientCertificate,
  })
  .refine(certWithKey, certWithKeyMessage)
  .describe('TLS to PostgreSQL; absent = as the URL says (in clear unless it sets sslmode)');

export const sourceSpec = z.strictObject({
  name,
  connection: z.strictObject({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(3306),
    user: z.string().min(1),
    password: z.string().default('').meta(secret),
    ssl: mysqlTls.optional().describe('TLS for the binlog stream and every query of the reader; absent = in clear (the reader warns at start)'),
  }),
  serverId: z.number().int().min(1).max(4294967295).optional().describe("replica server id the reader uses, unique among the source's replicas. Leave it out (the default): every reader start picks a random one of its own, so no two readers, standbys or restarts collide; READER_SERVER_ID sets it per instance. A collision is SERVER_ID_CONFLICT: the reader keeps its checkpoint and retries"),
  tables: z.array(tableSpec).min(1),
});

export const grantSpec = z.strictObject({
  table: z.string().regex(/^[a-z][a-z0-9_]*\.[A-Za-z0-9_$]+\.[A-Za-z0-9_$]+$/, 'source.db.table'),
  columns: z.record(identifier, grantAction),
  targetTable: identifier.optional().describe('table name at the target; defaults to the source table name'),
  filter: z
    .string()
    .superRefine((expression, ctx) => {
      try {
        compileRowFilter(expression);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })
    .optional()
    .describe(
      'row filter: only rows for which it is true are shared, e.g. district in ["东城", "西城"] && fee >= 100. ' +
        'Comparisons == != < <= > >=, in [..], not in [..], is null, is not null, starts_with, ends_with, contains; && || ! (and or not), parentheses. ' +
        'Columns by name (`back-ticked` if needed); "quoted" values are text, unquoted numbers compare exactly as numbers. ' +
        'SQL null semantics: a comparison with null is never true',
    ),
  filterReads: z
    .array(identifier)
    .optional()
    .describe(
      'columns the filter reads that the department does not receive and that are not public: which rows arrive tells something of their values (`diagnosis contains "HIV"`), so the grant names them and the security officer approves them by name',
    ),
});

/** A file path in the pipeline file: relative to the pipeline file, like keyring.file. */
const filePath = z.string().min(1);

export const kafkaSsl = z
  .strictObject({
    ca: filePath.optional().describe("PEM file of the CA(s) that signed the brokers' certificates; absent: the system's trusted CAs"),
    cert: filePath.optional().describe('PEM client certificate (mutual TLS: the principal is its subject)'),
    key: filePath.optional().describe('PEM private key of cert').meta(secret),
    verifyHostname: z.boolean().default(true).describe("check that each broker's certificate names the address it was reached at"),
  })
  .refine((s) => Boolean(s.cert) === Boolean(s.key), 'cert and key go together')
  .describe('TLS to every broker; without it the Kafka hop is in clear');

export const kafkaSasl = z
  .strictObject({
    mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512', 'oauthbearer']).describe('SASL mechanism the brokers accept; plain only over TLS'),
    username: z.string().min(1).optional().describe('the principal (plain, scram); one per service: e.g. "${KAFKA_USERNAME}" so each service names its own'),
    password: z.string().min(1).optional().describe('its password, e.g. "${KAFKA_PASSWORD}"').meta(secret),
    passwordFile: filePath.optional().describe('file holding the password (read at start), e.g. "${KAFKA_PASSWORD_FILE}"'),
    tokenFile: filePath.optional().describe('oauthbearer: file holding the current access token, re-read at every authentication (a sidecar refreshes it)'),
  })
  .superRefine((s, ctx) => {
    const problem = (message: string) => ctx.addIssue({ code: 'custom', message });
    if (s.mechanism === 'oauthbearer') {
      if (!s.tokenFile) problem('oauthbearer needs tokenFile');
      return;
    }
    if (!s.username) problem(`${s.mechanism} needs username`);
    if (Boolean(s.password) === Boolean(s.passwordFile)) problem(`${s.mechanism} needs exactly one of password and passwordFile`);
  })
  .describe('SASL authentication of this process at every broker');

export const kafkaPrincipalNames = z
  .strictObject({
    reader: z.string().default('User:reader-{source}').describe('principal of the reader of each source ({source} is its name)'),
    transformer: z.string().default('User:transformer'),
    sink: z.string().default('User:sink-{department}').describe('principal of the sink of each department'),
    department: z.string().default('User:department-{department}').describe("a department's own principal, for reading its share topics directly"),
    control: z.string().default('User:control').describe('the control plane: reads delivery records, sends reader signals, keeps the ACLs in step'),
    verifier: z.string().default('User:verifier').describe('the verifier (`cdc verify`, `cdc repair`): reads checkpoints and the stages\' offsets, sends repair signals'),
  })
  .describe('Kafka principals per role, for the ACLs the catalog implies (`cdc acls plan`); SCRAM users are User:<username>');

/**
 * The pipeline file's schema with these department targets (see pipeline-targets.ts): the
 * sink's registry passes every kind it delivers to; `pipelineSchema` knows none.
 */
export function pipelineSchemaOf<T extends z.ZodType<TargetSettings>>(target: T) {
  return z.strictObject({
    kafka: z.strictObject({
      brokers: z
        .array(z.string().min(1))
        .min(1)
        // One entry may list several, so one environment variable can name a whole cluster.
        .transform((list) => list.flatMap((entry) => entry.split(',')).map((b) => b.trim()).filter((b) => b !== ''))
        .pipe(z.array(z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'a broker is host:port (an IPv6 host in brackets)')).min(1))
        .describe('bootstrap brokers as host:port; an entry may be a comma-separated list, e.g. "${KAFKA_BROKERS}"'),
      topicPrefix: name.default('cityshare'),
      partitions: z.number().int().min(1).default(3),
      replicationFactor: z.number().int().min(1).default(1),
      ssl: kafkaSsl.optional(),
      sasl: kafkaSasl.optional(),
      principals: kafkaPrincipalNames.prefault({}),
    }),
    schemaRegistry: z.strictObject({
      url: z.string().url().describe('Confluent-compatible API, e.g. http://host:8081/apis/ccompat/v7 for Apicurio'),
      username: z.string().optional().describe('basic-auth user, sent on every registry call'),
      password: z.string().optional().meta(secret),
      ca: pemFile('CA certificate(s) of an https:// registry not signed by a system CA').optional(),
    }).refine((r) => r.ca === undefined || r.url.startsWith('https://'), { path: ['ca'], message: 'ca needs an https:// url' }),
    keyring: z.strictObject({
      file: z.string().min(1).describe('keyring JSON file, relative to the pipeline file'),
    }),
    sources: z.array(sourceSpec).min(1),
    departments: z.array(z.strictObject({ name, target, grants: z.array(grantSpec).default([]) })).default([]),
  });
}

export const pipelineSchema = pipelineSchemaOf(anyTarget.schema);

/** The pipeline file as loaded; `T`: its department targets, as the targets it was loaded with know them. */
export type PipelineConfig<T extends TargetSettings = AnyTarget> = z.output<ReturnType<typeof pipelineSchemaOf<z.ZodType<T>>>>;
export type SourceConfig = PipelineConfig['sources'][number];
export type TableConfig = SourceConfig['tables'][number];
export type DepartmentConfig<T extends TargetSettings = AnyTarget> = PipelineConfig<T>['departments'][number];
export type GrantConfig = DepartmentConfig['grants'][number];
export type GrantAction = z.infer<typeof grantAction>;
export type MaskSpec = z.infer<typeof maskSpec>;
export type ColumnClass = z.infer<typeof columnClass>;
export type QualityRule = z.infer<typeof qualityRule>;
