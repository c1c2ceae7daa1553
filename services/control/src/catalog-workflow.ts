import { createHash } from 'node:crypto';
import type { Pool, PoolConnection } from 'mysql2/promise';
import { CdcError } from '@cityshare/shared';
import { CatalogChangeRequests, needsApproval, sha256Of, withDigests, type CatalogChangeRequest } from './catalog-changes.js';
import { catalogFromPipelineText, diffCatalog, type CatalogChange, type CatalogDocument, type CatalogStore } from './catalog.js';
import type { AuditLedger } from './ledger.js';
import { authorize, forbidden, type Operation, type Principal } from './roles.js';
import { inTransaction } from './transaction.js';
import { assertState } from './decision-state.js';
import type { TableAt } from './source-probe.js';

/** What `list` shows: names and classes, never a secret; `${ENV}` references as written, never resolved. */
export interface CatalogView {
  sources: Array<{ name: string; connection?: { host?: string; port?: number | string; user?: string }; serverId?: number | string; tables: Array<{ name: string; columns: Record<string, string>; appendOnly?: boolean }> }>;
  departments: Array<{ name: string; target: { kind: string } }>;
}

export interface CatalogResult {
  changes: CatalogChange[];
  /** False for a dry run, when there was nothing to change, and when the change waits for a security officer. */
  applied: boolean;
  /** The change touches settings or targets: it waits for a security officer (`cdc changes approve <id>`). */
  pending?: { id: number };
  /** A dry run of a change that would wait for a security officer. */
  needsApproval?: boolean;
}

/**
 * Every change of the catalog — a whole pipeline file applied, a table registered, columns
 * classified — goes the same way: under one lock, the catalog is read, edited, compared
 * (the diff is the answer, also for a dry run), checked as a whole with the grants in force
 * (every problem listed, nothing changed on any), then written with one ledger entry per
 * difference in one transaction. A change of settings (kafka, schemaRegistry, keyring) or of
 * departments' targets is not written: it waits, whole, for a security officer, who
 * approves it (applied then, atomically, if the catalog has not changed meanwhile) or
 * rejects it. Only a catalog whose settings and targets are the ones approved last is
 * handed out for publication (`approved`).
 */
export class CatalogWorkflow {
  private readonly requests: CatalogChangeRequests;

  constructor(
    private readonly pool: Pool,
    private readonly ledger: AuditLedger,
    private readonly store: CatalogStore,
    /** Throws CONFIG_INVALID listing every problem when the catalog with the grants in force is not a valid pipeline. */
    private readonly validate: (doc: CatalogDocument) => Promise<void>,
    private readonly checks: {
      /** Checks on the source the tables a change adds or reclassifies (source-probe.ts); absent: not checked. */
      probe?: (doc: CatalogDocument, tables: TableAt[]) => Promise<void>;
      /** The grants in force, to say which ones keep a table registered. */
      grantsInForce?: () => Promise<Array<{ id: number; department: string; table: string }>>;
    } = {},
  ) {
    this.requests = new CatalogChangeRequests(pool, ledger);
  }

  /** Applies a pipeline file (without grants): what it declares replaces the catalog. */
  apply(who: Principal, text: string, o: { dryRun?: boolean; reason?: string } = {}): Promise<CatalogResult> {
    return this.change(who, 'catalog.apply', 'catalog', () => catalogFromPipelineText(text), { ...o, digest: createHash('sha256').update(text).digest('hex') });
  }

  /**
   * The first start's import of CONTROL_BASE_PIPELINE into an empty catalog: applied at once,
   * its settings and targets recorded as approved (whoever sets the control plane's
   * environment vouches for them).
   */
  importBase(who: Principal, text: string, reason: string): Promise<CatalogResult> {
    return this.change(who, 'catalog.apply', 'catalog', () => catalogFromPipelineText(text), { reason, digest: createHash('sha256').update(text).digest('hex'), vouched: true });
  }

  /** Records the catalog's settings and targets as they are as approved (the start that adds approvals to an existing catalog). */
  async attestCurrent(who: Principal, reason: string): Promise<void> {
    await this.requests.seal(who, 'catalog.settings.attest', await this.store.load(), { reason });
  }

  /** The catalog to publish: throws SETTINGS_TAMPERED when its settings or targets are not the ones a security officer approved last. */
  async approved(): Promise<CatalogDocument> {
    const doc = await this.store.load();
    const problem = await this.requests.sealProblem(doc);
    if (problem) throw new CdcError('SETTINGS_TAMPERED', `the catalog is not published: ${problem}`);
    return doc;
  }

  /** Changes of settings and targets, requested and decided (differences and digests only). */
  async changeRequests(who: Principal): Promise<CatalogChangeRequest[]> {
    await authorize(this.ledger, who, 'change.list', 'catalog-changes');
    return this.requests.list();
  }

  /**
   * A security officer approves a requested change: it is applied as the DBA requested it,
   * with one ledger entry per difference (digests of old and new values) and the approval,
   * which seals the new settings and targets; refused when the catalog changed since.
   */
  async approveChange(who: Principal, id: number, reason?: string): Promise<CatalogChangeRequest> {
    const subject = `catalog-change/${id}`;
    await authorize(this.ledger, who, 'change.approve', subject);
    const requested = await this.requests.get(id);
    if (requested.requestedBy === who.name) {
      const err = forbidden(who, 'change.approve', 'a change is approved by someone other than who requested it');
      await this.ledger.append({ actor: who.name, role: who.role, action: 'denied:change.approve', subject, details: { reason: err.message } });
      throw err;
    }
    await inTransaction(this.pool, async (conn) => {
      await this.store.lock(conn);
      const c = await this.requests.get(id, conn);
      assertState('catalog change', id, c.status, 'requested', 'approved');
      const problem = await this.requests.documentProblem(c);
      if (problem) throw new CdcError('SETTINGS_TAMPERED', `catalog change ${id} is not approved: ${problem}`);
      const before = await this.store.load(conn);
      if (sha256Of(before) !== c.baseSha256) throw new CdcError('CONFIG_INVALID', `the catalog changed since catalog change ${id} was requested, so it may not do what was shown; reject it, and the DBA applies the file again`);
      await this.validate(c.document);
      await this.store.save(conn, c.document);
      await this.requests.decide(conn, id, 'approved', who, reason ?? null);
      await this.record(conn, { name: c.requestedBy, role: 'dba' }, c.changes, { via: 'change.approve', change: id, approvedBy: who.name, reason: c.reason });
      await this.requests.seal(who, 'catalog.change.approve', c.document, { change: id, requestedBy: c.requestedBy, reason: reason ?? null }, conn);
    });
    return this.requests.get(id);
  }

  /** A security officer rejects a requested change, with a reason: it never applies. */
  async rejectChange(who: Principal, id: number, reason: string): Promise<CatalogChangeRequest> {
    const subject = `catalog-change/${id}`;
    await authorize(this.ledger, who, 'change.reject', subject);
    if (!reason.trim()) throw new CdcError('CONFIG_INVALID', 'rejecting a change needs a reason');
    await inTransaction(this.pool, async (conn) => {
      const c = await this.requests.get(id, conn);
      assertState('catalog change', id, c.status, 'requested', 'rejected');
      await this.requests.decide(conn, id, 'rejected', who, reason);
      await this.ledger.append({ actor: who.name, role: who.role, action: 'catalog.change.reject', subject, details: { reason, requestedBy: c.requestedBy } }, conn);
    });
    return this.requests.get(id);
  }

  /** Registers a source table with the classes of its columns (`appendOnly` for tables without a key). */
  registerTable(who: Principal, r: { source: string; table: string; columns: Record<string, string>; appendOnly?: boolean; dryRun?: boolean; reason?: string }): Promise<CatalogResult> {
    return this.change(who, 'table.register', `${r.source}.${r.table}`, (doc) => {
      const source = sourceOf(doc, r.source);
      if (source.tables.some((t) => sameTable(t.name, r.table))) throw new CdcError('CONFIG_INVALID', `${r.source}.${r.table} is registered already; classify its columns instead`);
      source.tables.push({ name: r.table, columns: r.columns, ...(r.appendOnly ? { appendOnly: true } : {}) });
      return doc;
    }, r);
  }

  /** Sets the class of columns of a registered table; a null class takes the column out (it is sealed again). */
  classify(who: Principal, r: { source: string; table: string; columns: Record<string, string | null>; dryRun?: boolean; reason?: string }): Promise<CatalogResult> {
    return this.change(who, 'table.classify', `${r.source}.${r.table}`, (doc) => {
      const table = registered(doc, r.source, r.table);
      for (const [column, cls] of Object.entries(r.columns)) {
        if (cls === null) delete table.columns[column];
        else table.columns[column] = cls;
      }
      return doc;
    }, r);
  }

  /**
   * Takes a table out of the catalog: the reader stops capturing it and nothing of it is
   * shared. Refused while a grant in force reads it (revoke that first); its share topics
   * and department tables stay as they are.
   */
  async unregisterTable(who: Principal, r: { source: string; table: string; dryRun?: boolean; reason?: string }): Promise<CatalogResult> {
    const inForce = (await this.checks.grantsInForce?.()) ?? [];
    return this.change(who, 'table.unregister', `${r.source}.${r.table}`, (doc) => {
      const table = registered(doc, r.source, r.table);
      const reading = inForce.filter((g) => g.table === `${r.source}.${r.table}` || g.table === `${r.source}.${table.name}`);
      if (reading.length > 0) {
        const problems = reading.map((g) => `grant ${g.id} of ${g.department} is in force on it: revoke it first (cdc grants revoke ${g.id} --reason …)`);
        throw new CdcError('CONFIG_INVALID', `${r.source}.${r.table} stays registered:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
      }
      const source = sourceOf(doc, r.source);
      source.tables = source.tables.filter((t) => t !== table);
      return doc;
    }, r);
  }

  /**
   * The catalog as `who` may see it, `${ENV}` references as written (never resolved: they
   * may name secrets of the services' environment) and no secrets (no passwords, no target
   * addresses): a department sees sources' tables and classes and itself only.
   */
  async list(who: Principal): Promise<CatalogView> {
    await authorize(this.ledger, who, 'catalog.list', 'catalog');
    const doc = await this.store.load();
    const own = who.role === 'department';
    return {
      sources: doc.sources.map((s) => {
        const { host, port, user } = (s.connection ?? {}) as { host?: string; port?: number | string; user?: string };
        return {
          name: s.name,
          ...(own ? {} : { connection: { host, port, user }, serverId: s.serverId as number | string }),
          tables: s.tables.map((t) => ({ name: t.name, columns: t.columns, ...(t.appendOnly ? { appendOnly: true } : {}) })),
        };
      }),
      departments: doc.departments.filter((d) => !own || d.name === who.department).map((d) => ({ name: d.name, target: { kind: String((d.target as { kind?: unknown } | undefined)?.kind) } })),
    };
  }

  private async change(who: Principal, operation: Operation, subject: string, edit: (doc: CatalogDocument) => CatalogDocument, o: { dryRun?: boolean; reason?: string; digest?: string; vouched?: boolean }): Promise<CatalogResult> {
    await authorize(this.ledger, who, operation, subject);
    return inTransaction(this.pool, async (conn) => {
      await this.store.lock(conn);
      const before = await this.store.load(conn);
      const after = edit(structuredClone(before));
      const changes = withDigests(diffCatalog(before, after), before, after);
      if (changes.length === 0) return { changes, applied: false };
      await this.validate(after);
      if (!o.vouched) await this.checks.probe?.(after, touchedTables(before, after));
      const approval = !o.vouched && changes.some(needsApproval);
      if (o.dryRun) return { changes, applied: false, ...(approval ? { needsApproval: true } : {}) };
      if (approval) {
        const id = await this.requests.request(conn, who, before, after, changes, { ...(o.reason ? { reason: o.reason } : {}), ...(o.digest ? { fileSha256: o.digest } : {}) });
        return { changes, applied: false, pending: { id } };
      }
      await this.store.save(conn, after);
      await this.record(conn, who, changes, { via: operation, reason: o.reason ?? null, ...(o.digest ? { fileSha256: o.digest } : {}) });
      if (o.vouched) await this.requests.seal(who, 'catalog.settings.attest', after, { reason: o.reason ?? null }, conn);
      return { changes, applied: true };
    });
  }

  /** One ledger entry per difference (for settings and targets: digests of the values, never the values). */
  private async record(conn: PoolConnection, who: Pick<Principal, 'name' | 'role'>, changes: CatalogChange[], details: Record<string, unknown>): Promise<void> {
    for (const c of changes) {
      await this.ledger.append({ actor: who.name, role: who.role, action: `catalog.${c.kind}.${c.op}`, subject: c.subject, details: { ...c, ...details } }, conn);
    }
  }
}

function sourceOf(doc: CatalogDocument, name: string) {
  const source = doc.sources.find((s) => s.name === name);
  if (!source) throw new CdcError('CONFIG_INVALID', `no source named ${name} in the catalog (sources: ${doc.sources.map((s) => s.name).join(', ') || 'none'})`);
  return source;
}

/**
 * Whether a table name as written in the catalog is the name asked for: the same text, or
 * the same once each `${NAME:-default}` reference is read as its default (how the local
 * catalog writes database names that tests and demos vary).
 */
export function sameTable(written: string, asked: string): boolean {
  return written === asked || written.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1') === asked;
}

function registered(doc: CatalogDocument, source: string, name: string) {
  const table = sourceOf(doc, source).tables.find((t) => sameTable(t.name, name));
  if (!table) throw new CdcError('TABLE_NOT_FOUND', `${source}.${name} is not registered (cdc tables list shows what is); register it first`);
  return table;
}

/** The tables of `after` that are new, or whose columns gained or changed a class, or whose kind changed: those to check on the source. */
function touchedTables(before: CatalogDocument, after: CatalogDocument): TableAt[] {
  const out: TableAt[] = [];
  after.sources.forEach((source, s) => {
    const old = before.sources.find((x) => x.name === source.name);
    source.tables.forEach((table, t) => {
      const was = old?.tables.find((x) => x.name === table.name);
      const changed = !was || Boolean(was.appendOnly) !== Boolean(table.appendOnly) || Object.entries(table.columns).some(([c, cls]) => was.columns[c] !== cls);
      if (changed) out.push({ source: s, table: t });
    });
  });
  return out;
}
