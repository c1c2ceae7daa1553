import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { CdcError } from '@cityshare/shared';
import type { AclKeeper } from './acl-keeper.js';
import * as S from './api-schemas.js';
import { sameTable, type CatalogWorkflow } from './catalog-workflow.js';
import { previewGrant } from './grant-preview.js';
import type { GrantWorkflow } from './grants.js';
import type { KeyAdmin } from './keys.js';
import type { AuditLedger } from './ledger.js';
import type { PipelineStatusReader } from './pipeline-status.js';
import { authorize, type Principal } from './roles.js';

/** What the operations act on. */
export interface OperationDeps {
  grants: GrantWorkflow;
  catalog: CatalogWorkflow;
  keys: KeyAdmin;
  ledger: AuditLedger;
  acls: AclKeeper;
  /** The control plane at a glance: catalog and grant counts, the published policy, the last ledger verification. */
  status: () => Promise<unknown>;
  /** The signed policy last published, for services on other hosts; none before the first publication. */
  policy?: () => { text: string; sha256: string } | undefined;
  /** The pipeline as `cdc status` shows it (Kafka, sources, the services' metrics); absent: GET /pipeline/status answers 404. */
  pipelineStatus?: Pick<PipelineStatusReader, 'read'>;
}

interface Operation<B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType, R extends z.ZodType> {
  method: 'GET' | 'POST';
  url: string;
  summary: string;
  tags: string[];
  /** The answer's status when it succeeds. */
  status?: 200 | 201;
  body?: B;
  query?: Q;
  params?: P;
  response: R;
  /** The refusals worth naming for this operation (every one may also answer 401, 413, 429 and 500). */
  refusals?: Record<number, string>;
  handle: (who: Principal, input: { body: z.output<B>; query: z.output<Q>; params: z.output<P> }) => Promise<z.input<R>>;
}

/**
 * The control API's operations, by method and path, each with the schemas its request and
 * answer are validated against (and openapi.yaml is generated from). Every one needs a
 * principal (api.ts authenticates it); the workflows check its role and write refusals to the
 * audit ledger.
 */
export function registerOperations(api: FastifyInstance, o: OperationDeps): void {
  const app = api.withTypeProvider<ZodTypeProvider>();
  const operation = <B extends z.ZodType = z.ZodUndefined, Q extends z.ZodType = z.ZodUndefined, P extends z.ZodType = z.ZodUndefined, R extends z.ZodType = z.ZodType>(op: Operation<B, Q, P, R>) => {
    const status = op.status ?? 200;
    app.route({
      method: op.method,
      url: op.url,
      schema: {
        summary: op.summary,
        tags: op.tags,
        ...(op.body ? { body: op.body } : {}),
        ...(op.query ? { querystring: op.query } : {}),
        ...(op.params ? { params: op.params } : {}),
        response: { [status]: op.response, ...Object.fromEntries(Object.entries(op.refusals ?? {}).map(([code, what]) => [code, S.refusal(what)])) },
      },
      handler: async (req, reply) => {
        const result = await op.handle(req.principal!, { body: req.body as z.output<B>, query: req.query as z.output<Q>, params: req.params as z.output<P> });
        return reply.code(status).send(result);
      },
    });
  };
  const forbidden = (what: string) => ({ 403: `the role may not ${what} (written to the audit ledger)` });
  const reasonOf = (b: { reason?: string | undefined }) => (b.reason ? { reason: b.reason } : {});

  // ------------------------------------------------------------------ catalog
  operation({
    method: 'GET', url: '/catalog', tags: ['catalog'], response: S.CatalogView,
    summary: 'The catalog (every role but service; a department sees tables, classes and itself only)',
    handle: (who) => o.catalog.list(who),
  });
  operation({
    method: 'POST', url: '/catalog/apply', tags: ['catalog'], body: S.ApplyBody, response: S.CatalogResult,
    summary: 'Apply a pipeline file (no grants) to the catalog, or with dryRun show the diff only (role dba)',
    refusals: { 400: 'refused as a whole: every problem listed in `problems`', ...forbidden('apply') },
    handle: (who, { body }) => o.catalog.apply(who, body.pipeline, { dryRun: body.dryRun === true, ...reasonOf(body) }),
  });
  operation({
    method: 'POST', url: '/catalog/tables', tags: ['catalog'], body: S.RegisterBody, response: S.CatalogResult,
    summary: 'Register a source table with its column classes (role dba)',
    refusals: { 400: 'invalid, already registered, a column the source table does not have, or a table without a key (TABLE_WITHOUT_KEY)', ...forbidden('register'), 404: "the table does not exist on the source, or the reader's account cannot see it (TABLE_NOT_FOUND)", 503: 'the source did not answer, so the table could not be checked (SOURCE_UNREACHABLE)' },
    handle: (who, { body }) => o.catalog.registerTable(who, { source: body.source, table: body.table, columns: body.columns, appendOnly: body.appendOnly === true, dryRun: body.dryRun === true, ...reasonOf(body) }),
  });
  operation({
    method: 'POST', url: '/catalog/tables/classify', tags: ['catalog'], body: S.ClassifyBody, response: S.CatalogResult,
    summary: 'Set column classes of a registered table; null seals a column again (role dba). Refused while an approved grant uses a column it would unclassify.',
    refusals: { 400: 'invalid', ...forbidden('classify'), 404: 'table not registered' },
    handle: (who, { body }) => o.catalog.classify(who, { source: body.source, table: body.table, columns: body.columns, dryRun: body.dryRun === true, ...reasonOf(body) }),
  });
  operation({
    method: 'POST', url: '/catalog/tables/unregister', tags: ['catalog'], body: S.UnregisterBody, response: S.CatalogResult,
    summary: 'Take a table out of the catalog; the reader stops capturing it (role dba). Refused while a grant in force reads it.',
    refusals: { 400: 'a grant in force reads the table', ...forbidden('unregister'), 404: 'table not registered' },
    handle: (who, { body }) => o.catalog.unregisterTable(who, { source: body.source, table: body.table, dryRun: body.dryRun === true, ...reasonOf(body) }),
  });
  operation({
    method: 'GET', url: '/changes', tags: ['catalog'], response: z.array(S.CatalogChangeRequest),
    summary: 'Changes of settings and targets, requested and decided (roles security-officer, dba, auditor)',
    refusals: forbidden('list changes'),
    handle: (who) => o.catalog.changeRequests(who),
  });
  for (const decision of ['approve', 'reject'] as const) {
    operation({
      method: 'POST', url: `/changes/:id/${decision}`, tags: ['catalog'], params: S.IdParam, body: S.Decision, response: S.CatalogChangeRequest,
      summary: decision === 'approve' ? 'Approve a requested change: applied then, atomically (role security-officer, not the requester)' : 'Reject a requested change with a reason: never applied (role security-officer)',
      refusals: { 400: 'not requested any more, no reason, the catalog changed since it was requested, or it would not make a valid policy', ...forbidden('decide, or the officer requested it'), 404: 'no such change (UNKNOWN_ID)', 409: 'SETTINGS_TAMPERED: the stored change differs from what was requested' },
      handle: (who, { params, body }) => (decision === 'approve' ? o.catalog.approveChange(who, params.id, body.reason) : o.catalog.rejectChange(who, params.id, body.reason ?? '')),
    });
  }

  // ------------------------------------------------------------------ grants
  const requestOf = (who: Principal, b: z.output<typeof S.GrantRequestBody>) => ({
    department: b.department ?? who.department ?? '',
    table: b.table,
    spec: { columns: b.columns, ...(b.filter ? { filter: b.filter } : {}), ...(b.filterReads ? { filterReads: b.filterReads } : {}) },
    purpose: b.purpose,
    ...(b.expiresAt ? { expiresAt: validDate(b.expiresAt) } : {}),
  });
  operation({
    method: 'GET', url: '/grants', tags: ['grants'], response: z.array(S.Grant),
    summary: 'List grant requests (a department sees only its own)',
    refusals: forbidden('list grants'),
    handle: (who) => o.grants.list(who),
  });
  operation({
    method: 'POST', url: '/grants', tags: ['grants'], status: 201, body: S.GrantRequestBody, response: S.Grant,
    summary: 'Request a grant (role department, for itself)',
    refusals: { 400: 'invalid', ...forbidden('request') },
    handle: (who, { body }) => o.grants.request(who, requestOf(who, body)),
  });
  operation({
    method: 'POST', url: '/grants/check', tags: ['grants'], body: S.GrantRequestBody, response: S.GrantCheck,
    summary: "Check a grant request without making it: whether it would make a valid policy with the grants in force (the console's live check; role department, for itself)",
    refusals: { 400: 'it would not: every problem listed (an unclassified column, a filter that does not parse or reads a column not named, …)', ...forbidden('request') },
    handle: async (who, { body }) => {
      const request = requestOf(who, body);
      await o.grants.check(who, request);
      const classes = await tableClasses(o.catalog, who, request.table);
      return { ok: true as const, columns: Object.entries(request.spec.columns).map(([column, action]) => ({ column, class: classes?.[column] ?? null, action: typeof action === 'string' ? action : JSON.stringify(action) })) };
    },
  });
  operation({
    method: 'GET', url: '/grants/:id/preview', tags: ['grants'], params: S.IdParam, response: S.GrantPreview,
    summary: 'What a grant delivers, column by column, shown on synthetic values with throwaway keys (roles that list grants; a department its own)',
    refusals: { ...forbidden('see this grant'), 404: 'no such grant (UNKNOWN_ID)' },
    handle: async (who, { params }) => {
      const grant = await o.grants.get(params.id);
      await authorize(o.ledger, who, 'grant.list', `grant/${grant.id}`, grant.department);
      return previewGrant(grant, (await tableClasses(o.catalog, who, grant.table)) ?? {});
    },
  });
  for (const decision of ['approve', 'reject', 'revoke'] as const) {
    operation({
      method: 'POST', url: `/grants/:id/${decision}`, tags: ['grants'], params: S.IdParam, body: S.Decision, response: S.Grant,
      summary: `${decision[0]!.toUpperCase()}${decision.slice(1)} ${decision === 'revoke' ? 'an approved grant' : 'a requested grant'} with a reason (role security-officer)`,
      refusals: { 400: 'no reason, or a grant that would not make a valid policy', ...forbidden('decide'), 404: 'no such grant (UNKNOWN_ID)', 409: 'the grant is not in the state this decision needs (STATE_CONFLICT)' },
      handle: (who, { params, body }) => o.grants[decision](who, params.id, body.reason ?? ''),
    });
  }

  // ------------------------------------------------------------------ keys
  operation({
    method: 'GET', url: '/keys', tags: ['keys'], response: z.array(S.KeyVersion),
    summary: 'Key versions of the pipeline keyring, ids only (roles security-officer, auditor, sre)',
    refusals: forbidden('list keys'),
    handle: (who) => o.keys.list(who),
  });
  operation({
    method: 'POST', url: '/keys/rotate', tags: ['keys'], body: S.RotateBody, response: S.KeyVersion,
    summary: 'Append a new key to a key list; it encrypts from then on, older keys still decrypt (role security-officer)',
    refusals: { ...forbidden('rotate keys'), 404: 'no such key list (KEY_NOT_FOUND)' },
    handle: (who, { body }) => o.keys.rotate(who, body.name, body.reason),
  });

  // ------------------------------------------------------------------ audit, status, ACLs, policy
  operation({
    method: 'GET', url: '/audit', tags: ['audit'], query: S.AuditQuery, response: z.array(S.LedgerEntry),
    summary: 'Ledger entries, oldest first after `after`, or newest first before `before`; filtered by actor, action, subject prefix and time (roles security-officer, auditor)',
    refusals: forbidden('read the ledger'),
    handle: async (who, { query }) => {
      await authorize(o.ledger, who, 'audit.show', 'audit');
      const { after, before, limit, actor, action, subject, since, until } = query;
      return o.ledger.page({ after, limit, ...(before !== undefined ? { before } : {}), ...(actor ? { actor } : {}), ...(action ? { action } : {}), ...(subject ? { subject } : {}), ...(since ? { since: new Date(since) } : {}), ...(until ? { until: new Date(until) } : {}) });
    },
  });
  operation({
    method: 'GET', url: '/audit/verify', tags: ['audit'], response: S.VerificationResult,
    summary: "Verify the audit ledger's chain, signed checkpoints and signed head (roles security-officer, auditor, sre)",
    refusals: forbidden('verify the ledger'),
    handle: async (who) => {
      await authorize(o.ledger, who, 'audit.verify', 'audit');
      return o.ledger.verify();
    },
  });
  operation({
    method: 'GET', url: '/status', tags: ['status'], response: S.ControlStatus,
    summary: 'The control plane at a glance: catalog and grant counts, the published policy, the last ledger verification (roles sre, dba, security-officer)',
    refusals: forbidden('see the status'),
    handle: async (who) => {
      await authorize(o.ledger, who, 'status.show', 'status');
      return (await o.status()) as z.input<typeof S.ControlStatus>;
    },
  });
  operation({
    method: 'GET', url: '/pipeline/status', tags: ['status'], response: S.PipelineStatus,
    summary: "The pipeline as `cdc status` shows it: each source's position and lag, snapshots in progress, each department's lag, paused tables, dead letters by reason, what needs attention (roles sre, dba, security-officer)",
    refusals: { ...forbidden('see the status'), 404: 'nothing published yet (CONFIG_NOT_FOUND)' },
    handle: async (who) => {
      await authorize(o.ledger, who, 'status.show', 'pipeline-status');
      if (!o.pipelineStatus) throw new CdcError('CONFIG_NOT_FOUND', 'this control service computes no pipeline status');
      return o.pipelineStatus.read(await o.status() as z.input<typeof S.ControlStatus>);
    },
  });
  operation({
    method: 'GET', url: '/acls', tags: ['acls'], response: S.AclView,
    summary: 'The Kafka ACLs the published policy implies, and how the cluster differs (roles security-officer, sre, auditor)',
    refusals: forbidden('see the ACLs'),
    handle: (who) => o.acls.show(who),
  });
  operation({
    method: 'POST', url: '/acls/apply', tags: ['acls'], body: z.object({}), response: S.AclDiff,
    summary: 'Make the Kafka ACLs of the prefix what the published policy implies (role security-officer)',
    refusals: forbidden('apply ACLs'),
    handle: (who) => o.acls.apply(who),
  });
  // ------------------------------------------------------------------ consistency
  operation({
    method: 'POST', url: '/verify/runs', tags: ['consistency'], status: 201, body: S.VerifyRun, response: S.Recorded,
    summary: "Record a verification of a department against policy(source) in the audit ledger: counts per table and the report's digest (roles sre, auditor, security-officer, service)",
    refusals: forbidden('record a verification'),
    handle: async (who, { body }) => {
      await authorize(o.ledger, who, 'verify.record', `verify/${body.department}`);
      const entry = await o.ledger.append({ actor: who.name, role: who.role, action: 'verify.run', subject: `verify/${body.department}`, details: { ...body } });
      return { seq: entry.seq, hash: entry.hash };
    },
  });
  operation({
    method: 'POST', url: '/repairs', tags: ['consistency'], status: 201, body: S.RepairRequest, response: S.Recorded,
    summary: "Record a repair sent to the readers (rows delivered again to one department, or deleted there) in the audit ledger (roles sre, security-officer)",
    refusals: forbidden('request a repair'),
    handle: async (who, { body }) => {
      await authorize(o.ledger, who, 'repair.request', `repair/${body.department}`);
      const entry = await o.ledger.append({ actor: who.name, role: who.role, action: 'repair.request', subject: `repair/${body.department}/${body.request}`, details: { ...body } });
      return { seq: entry.seq, hash: entry.hash };
    },
  });

  operation({
    method: 'GET', url: '/policy', tags: ['policy'], response: S.Policy,
    summary: "The signed policy last published, for the pipeline's services on hosts without the control plane's files (role service; CITYSHARE_POLICY_URL). `${…}` references as written; services refuse it unless it verifies under CITYSHARE_POLICY_PUBLIC_KEYS.",
    refusals: { ...forbidden('fetch the policy'), 404: 'nothing published yet (CONFIG_NOT_FOUND)' },
    handle: async (who) => {
      await authorize(o.ledger, who, 'policy.fetch', 'policy');
      const policy = o.policy?.();
      if (!policy) throw new CdcError('CONFIG_NOT_FOUND', 'no policy has been published yet: register a source first (cdc apply)');
      return policy;
    },
  });
}

/** The classes of a registered table's columns as `who` sees the catalog (source.db.table), or undefined. */
async function tableClasses(catalog: CatalogWorkflow, who: Principal, table: string): Promise<Record<string, string> | undefined> {
  const view = await catalog.list(who);
  const [source, ...rest] = table.split('.');
  const name = rest.join('.');
  return view.sources.find((s) => s.name === source)?.tables.find((t) => sameTable(t.name, name))?.columns;
}

function validDate(text: string): Date {
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw new CdcError('CONFIG_INVALID', `expiresAt ${text} is not a date (use ISO 8601, e.g. 2026-12-31T00:00:00Z)`);
  return d;
}
