import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '@cityshare/shared';
import { ROLES } from './roles.js';

/**
 * What the control API takes and answers, once: Fastify validates each request and each
 * answer against these schemas (fastify-type-provider-zod), and services/control/openapi.yaml
 * is generated from the same ones (`npm run docs`). A schema with an `id` is a component of
 * that document. Request schemas check shapes only; what a value means (a class, an action,
 * a filter) is the workflows' to judge, so a refusal lists every problem at once.
 */

const errorCodes = Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]];

export const ErrorAnswer = z.object({
  code: z.enum(errorCodes).describe('a code of the error catalogue (docs/errors.md)'),
  message: z.string(),
  action: z.string().describe("the catalogue's action for the code: what to do"),
  problems: z.array(z.string()).optional().describe('400: every problem found; nothing was applied'),
  correlationId: z.string().optional().describe('500 only: the id of the control log line with the real error'),
}).meta({ id: 'Error' });

/** A refusal's answer in a route's schema: the error body, with what the status means there. */
export const refusal = (description: string) => ({ description, content: { 'application/json': { schema: ErrorAnswer } } });

const dryRunAndReason = {
  dryRun: z.boolean().optional().describe('show the diff only; nothing changes'),
  reason: z.string().optional().describe('why (kept in the audit ledger)'),
};

// ---------------------------------------------------------------------------- catalog

export const CatalogView = z.object({
  sources: z.array(z.object({
    name: z.string(),
    connection: z.object({ host: z.string().optional(), port: z.union([z.number(), z.string()]).optional(), user: z.string().optional() }).optional().describe('`${ENV}` references as written, never resolved; no password. Not shown to a department'),
    serverId: z.union([z.number(), z.string()]).optional(),
    tables: z.array(z.object({ name: z.string().describe('db.table'), columns: z.record(z.string(), z.string()).describe('column -> class (public, internal, personal, secret)'), appendOnly: z.boolean().optional() })),
  })),
  departments: z.array(z.object({ name: z.string(), target: z.object({ kind: z.string() }) })),
}).meta({ id: 'Catalog', description: 'The catalog with `${ENV}` references as written (never resolved) and no secrets (no passwords, no target addresses). A department sees sources with their tables and classes only, and itself.' });

const CatalogChange = z.object({
  op: z.enum(['add', 'remove', 'change']),
  kind: z.enum(['setting', 'source', 'table', 'column', 'department']),
  subject: z.string().describe('e.g. cityhub.civil.citizens.phone'),
  before: z.string().optional().describe("a column's class before"),
  after: z.string().optional().describe("a column's class after"),
  fields: z.array(z.string()).optional().describe('fields that changed (values are not shown; they may be secret)'),
  beforeSha256: z.string().nullable().optional().describe('settings and targets: SHA-256 of the canonical JSON of the value before (null: absent)'),
  afterSha256: z.string().nullable().optional().describe('settings and targets: SHA-256 of the value after (null: removed)'),
}).meta({ id: 'CatalogChange' });

export const CatalogResult = z.object({
  changes: z.array(CatalogChange),
  applied: z.boolean().describe('false for a dry run, when nothing changes, or when the change waits for a security officer'),
  pending: z.object({ id: z.number().int() }).optional().describe('the change touches settings or targets: it waits as this catalog change (POST /changes/{id}/approve)'),
  needsApproval: z.boolean().optional().describe('a dry run of a change that would wait for a security officer'),
}).meta({ id: 'CatalogResult' });

export const CatalogChangeRequest = z.object({
  id: z.number().int(),
  status: z.enum(['requested', 'approved', 'rejected']),
  requestedBy: z.string(),
  requestedAt: z.string(),
  reason: z.string().nullable(),
  changes: z.array(CatalogChange),
  decidedBy: z.string().nullable(),
  decidedAt: z.string().nullable(),
  decisionReason: z.string().nullable(),
}).meta({ id: 'CatalogChangeRequest', description: 'A change of settings or targets waiting for (or decided by) a security officer; differences and digests only, never the values.' });

export const ApplyBody = z.object({ pipeline: z.string().min(1).describe('the YAML text'), ...dryRunAndReason });
export const RegisterBody = z.object({
  source: z.string().min(1),
  table: z.string().min(1).describe('db.table'),
  columns: z.record(z.string(), z.string()).describe('column -> class (public, internal, personal, secret)'),
  appendOnly: z.boolean().optional(),
  ...dryRunAndReason,
});
export const ClassifyBody = z.object({ source: z.string().min(1), table: z.string().min(1), columns: z.record(z.string(), z.string().nullable()).describe('column -> class, or null to seal the column again'), ...dryRunAndReason });
export const UnregisterBody = z.object({ source: z.string().min(1), table: z.string().min(1), ...dryRunAndReason });

// ---------------------------------------------------------------------------- grants

const GrantSpec = z.object({
  columns: z.record(z.string(), z.unknown()).describe('column -> action, as in a pipeline grant: pass, encrypt, tokenize, {mask: …}, {tokenize: …}, {encrypt: …}'),
  filter: z.string().optional().describe('row filter expression'),
  filterReads: z.array(z.string()).optional().describe('columns the filter reads that the department does not receive; approved by name'),
});

export const Grant = z.object({
  id: z.number().int(),
  department: z.string(),
  table: z.string().describe('source.db.table'),
  spec: GrantSpec,
  purpose: z.string(),
  expiresAt: z.string().nullable().describe('ISO 8601, UTC'),
  status: z.enum(['requested', 'approved', 'rejected', 'revoked', 'expired']),
  requestedBy: z.string(),
  decidedBy: z.string().nullable(),
  reason: z.string().nullable(),
}).meta({ id: 'Grant' });

export const GrantRequestBody = z.object({
  department: z.string().optional().describe("the requesting department's own name (taken from the token when absent)"),
  table: z.string().min(1).describe('source.db.table'),
  columns: z.record(z.string(), z.unknown()),
  filter: z.string().optional(),
  filterReads: z.array(z.string()).optional(),
  purpose: z.string().min(1),
  expiresAt: z.string().optional().describe('ISO 8601, e.g. 2026-12-31T00:00:00Z'),
});

export const GrantCheck = z.object({
  ok: z.literal(true),
  columns: z.array(z.object({ column: z.string(), class: z.string().nullable(), action: z.string() })).describe('what the department would receive, column by column, with the class of each'),
}).meta({ id: 'GrantCheck', description: 'The request would make a valid policy with the grants in force; a 400 lists every problem otherwise.' });

export const GrantPreview = z.object({
  grant: z.number().int(),
  columns: z.array(z.object({
    column: z.string(),
    class: z.string().nullable().describe('null: not classified, so not delivered'),
    action: z.string().describe('pass, mask, tokenize or encrypt, with its options'),
    sample: z.string().describe('a synthetic value (never a real one)'),
    delivered: z.string().nullable().describe('what the department would receive for the sample; tokens and ciphertexts under a throwaway key'),
  })),
  filter: z.string().nullable(),
  filterReads: z.array(z.string()),
}).meta({ id: 'GrantPreview', description: 'What a grant delivers, shown on synthetic values with throwaway keys: no real value or key is used.' });

export const Decision = z.object({ reason: z.string().optional().describe('required to reject or revoke') });
export const IdParam = z.object({ id: z.coerce.number().int().min(1) });

// ---------------------------------------------------------------------------- keys, audit, status

export const KeyVersion = z.object({
  name: z.string().describe('key list, e.g. department:health'),
  id: z.string(),
  created: z.string().nullable(),
  active: z.boolean().describe('the key that encrypts new data'),
  rotatedBy: z.string().nullable(),
}).meta({ id: 'KeyVersion' });
export const RotateBody = z.object({ name: z.string().min(1), reason: z.string().min(1) });

export const LedgerEntry = z.object({
  seq: z.number().int(),
  at: z.string().describe('ISO time with microseconds, UTC'),
  actor: z.string(),
  role: z.string(),
  action: z.string().describe('e.g. catalog.column.change, grant.approve, key.rotate, delivery.batch, denied:<operation>'),
  subject: z.string(),
  details: z.record(z.string(), z.unknown()).describe('never a personal value; counts, key ids and digests'),
  prevHash: z.string(),
  hash: z.string(),
}).meta({ id: 'LedgerEntry' });

export const AuditQuery = z.object({
  after: z.coerce.number().int().min(0).default(0).describe('entries after this seq, oldest first'),
  before: z.coerce.number().int().min(1).optional().describe('entries before this seq, newest first (paging back from the end)'),
  limit: z.coerce.number().int().min(1).default(1000).transform((n) => Math.min(n, 10_000)).describe('at most 10000'),
  actor: z.string().optional().describe('exactly this actor'),
  action: z.string().optional().describe('exactly this action'),
  subject: z.string().optional().describe('subjects starting with this text, e.g. delivery/health/'),
  since: z.iso.datetime({ offset: true }).optional().describe('entries at or after this time'),
  until: z.iso.datetime({ offset: true }).optional().describe('entries before this time'),
});

export const VerificationResult = z.object({
  entries: z.number().int(),
  head: z.object({ seq: z.number().int(), hash: z.string() }).describe('the signed head, for an auditor to note down'),
  rehashed: z.number().int(),
  full: z.boolean(),
  problems: z.array(z.object({ seq: z.number().int(), kind: z.string(), message: z.string() })).describe('empty when intact'),
}).meta({ id: 'Verification' });

export const ControlStatus = z.object({
  catalog: z.object({ sources: z.number().int(), tables: z.number().int(), departments: z.number().int() }).optional(),
  grants: z.record(z.string(), z.number().int()).optional().describe('grant requests by status'),
  policy: z.object({ file: z.string(), sha256: z.string().nullable() }).optional(),
  audit: z.object({ at: z.string(), entries: z.number().int(), problems: z.number().int(), head: z.object({ seq: z.number().int(), hash: z.string() }), full: z.boolean() }).optional().describe('the last scheduled verification'),
  refused: z.object({ grants: z.number().int(), settings: z.string().nullable() }).optional(),
}).meta({ id: 'ControlStatus' });

const AclRule = z.object({ principal: z.string(), resourceType: z.string(), name: z.string(), pattern: z.enum(['literal', 'prefixed']), operation: z.string() }).meta({ id: 'AclRule' });
export const AclDiff = z.object({ add: z.array(AclRule), remove: z.array(AclRule) }).meta({ id: 'AclDiff' });
export const AclView = z.object({ plan: z.array(AclRule), diff: AclDiff });

export const Policy = z.object({ text: z.string().describe('the pipeline file, its last line the cityshare-signature'), sha256: z.string() });

// ---------------------------------------------------------------------------- pipeline status

const Attention = z.object({ code: z.enum(errorCodes), what: z.string(), action: z.string() });

export const PipelineStatus = z.object({
  at: z.string().describe('when this status was computed'),
  pipeline: z.string().nullable().describe('topic prefix of the published policy; null before the first publication'),
  sources: z.array(z.object({
    source: z.string(),
    checkpoint: z.object({ file: z.string(), pos: z.number(), gtid: z.string().nullable(), savedAt: z.string() }).nullable().describe('the newest position the active reader had acknowledged (its metrics), and the source commit time of that transaction'),
    binlogEnd: z.object({ file: z.string(), pos: z.number() }).nullable().describe('null: the source did not answer'),
    lagSeconds: z.number().nullable().describe('cityshare_reader_lag_seconds of the active reader'),
    paused: z.boolean().describe('the binlog stream is paused by backpressure'),
  })),
  snapshots: z.array(z.object({ source: z.string(), table: z.string(), rows: z.number(), remaining: z.number(), etaSeconds: z.number() })).describe('snapshots being read now'),
  departments: z.array(z.object({ department: z.string(), target: z.string(), transformerLag: z.number().int(), sinkLag: z.number().int() })).describe('offsets not yet transformed and not yet delivered'),
  pausedTables: z.array(z.object({ table: z.string(), department: z.string().nullable(), why: z.string() })),
  deadLetters: z.array(z.object({ stage: z.enum(['reader', 'transformer', 'sink']), reason: z.string(), count: z.number(), scope: z.string() })).describe('records sent to dead-letter topics since the services started, by reason'),
  services: z.array(z.object({ target: z.string(), service: z.string().nullable(), up: z.boolean(), dependenciesDown: z.array(z.string()) })).describe('the metrics endpoints of CONTROL_METRICS_TARGETS as last scraped'),
  attention: z.array(Attention).describe('what needs someone now, each with its code and what to do'),
}).meta({ id: 'PipelineStatus', description: 'What `cdc status` shows, computed by the control service from Kafka, the sources and the metrics of the services (CONTROL_METRICS_TARGETS).' });

// ---------------------------------------------------------------------------- console sessions

export const Principal = z.object({
  name: z.string(),
  role: z.enum(ROLES as [string, ...string[]]),
  department: z.string().optional(),
  operations: z.array(z.string()).describe('the operations of the role matrix this principal may call'),
}).meta({ id: 'Principal' });

export const SessionState = z.object({
  principal: Principal.nullable().describe('null: not signed in'),
  csrfToken: z.string().describe('send it as the x-csrf-token header with every change made with the session cookie'),
}).meta({ id: 'SessionState' });

export const LoginBody = z.object({ token: z.string().min(1).max(4096).describe('a token of CONTROL_TOKENS; sent in the body, never in a URL') });

/** A run of `cdc verify` or of the verifier service, as the audit ledger keeps it: counts and the report's digest, never a key. */
export const VerifyRun = z.object({
  department: z.string().min(1),
  startedAt: z.string(),
  finishedAt: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).describe('SHA-256 of the full report (its keys included): who holds the report can show it is the one recorded'),
  tables: z.array(z.object({
    table: z.string(),
    status: z.enum(['equal', 'different', 'unsettled']),
    compared: z.number().int().min(0),
    missing: z.number().int().min(0),
    extra: z.number().int().min(0),
    different: z.number().int().min(0),
    unsettled: z.number().int().min(0),
  })),
}).meta({ id: 'VerifyRun' });

/** A repair sent to the readers (`cdc repair --apply`), as the audit ledger keeps it. */
export const RepairRequest = z.object({
  department: z.string().min(1),
  request: z.string().min(1),
  fromVerify: z.string().regex(/^[0-9a-f]{64}$/).describe('sha256 of the verification report the repair acts on'),
  tables: z.array(z.object({ table: z.string(), deliver: z.number().int().min(0), delete: z.number().int().min(0) })),
}).meta({ id: 'RepairRequest' });

export const Recorded = z.object({ seq: z.number().int(), hash: z.string() });

