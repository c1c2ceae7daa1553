import { createHash } from 'node:crypto';
import type { Pool } from 'mysql2/promise';
import { CdcError, parsePipeline } from '@cityshare/shared';
import { catalogFromPipelineText, diffCatalog, pipelineText, type CatalogChange, type CatalogDocument, type CatalogStore } from './catalog.js';
import type { AuditLedger } from './ledger.js';
import { authorize, type Operation, type Principal } from './roles.js';
import { inTransaction } from './transaction.js';

/** What `list` shows: names and classes, never a secret. */
export interface CatalogView {
  sources: Array<{ name: string; connection?: { host: string; port: number; user: string }; serverId?: number; tables: Array<{ name: string; columns: Record<string, string>; appendOnly?: boolean }> }>;
  departments: Array<{ name: string; target: { kind: string } }>;
}

export interface CatalogResult {
  changes: CatalogChange[];
  /** False for a dry run, and when there was nothing to change. */
  applied: boolean;
}

/**
 * Every change of the catalog — a whole pipeline file applied, a table registered, columns
 * classified — goes the same way: under one lock, the catalog is read, edited, compared
 * (the diff is the answer, also for a dry run), checked as a whole with the grants in force
 * (every problem listed, nothing changed on any), then written with one ledger entry per
 * difference in one transaction.
 */
export class CatalogWorkflow {
  constructor(
    private readonly pool: Pool,
    private readonly ledger: AuditLedger,
    private readonly store: CatalogStore,
    /** Throws CONFIG_INVALID listing every problem when the catalog with the grants in force is not a valid pipeline. */
    private readonly validate: (doc: CatalogDocument) => Promise<void>,
  ) {}

  /** Applies a pipeline file (without grants): what it declares replaces the catalog. */
  apply(who: Principal, text: string, o: { dryRun?: boolean; reason?: string } = {}): Promise<CatalogResult> {
    return this.change(who, 'catalog.apply', 'catalog', () => catalogFromPipelineText(text), { ...o, digest: createHash('sha256').update(text).digest('hex') });
  }

  /** Registers a source table with the classes of its columns (`appendOnly` for tables without a key). */
  registerTable(who: Principal, r: { source: string; table: string; columns: Record<string, string>; appendOnly?: boolean; dryRun?: boolean; reason?: string }): Promise<CatalogResult> {
    return this.change(who, 'table.register', `${r.source}.${r.table}`, (doc) => {
      const source = sourceOf(doc, r.source);
      if (source.tables.some((t) => t.name === r.table)) throw new CdcError('CONFIG_INVALID', `${r.source}.${r.table} is registered already; classify its columns instead`);
      source.tables.push({ name: r.table, columns: r.columns, ...(r.appendOnly ? { appendOnly: true } : {}) });
      return doc;
    }, r);
  }

  /** Sets the class of columns of a registered table; a null class takes the column out (it is sealed again). */
  classify(who: Principal, r: { source: string; table: string; columns: Record<string, string | null>; dryRun?: boolean; reason?: string }): Promise<CatalogResult> {
    return this.change(who, 'table.classify', `${r.source}.${r.table}`, (doc) => {
      const table = sourceOf(doc, r.source).tables.find((t) => t.name === r.table);
      if (!table) throw new CdcError('TABLE_NOT_FOUND', `${r.source}.${r.table} is not registered; register it first`);
      for (const [column, cls] of Object.entries(r.columns)) {
        if (cls === null) delete table.columns[column];
        else table.columns[column] = cls;
      }
      return doc;
    }, r);
  }

  /**
   * The catalog as `who` may see it, with environment references resolved and no secrets
   * (no passwords, no target addresses): a department sees sources' tables and classes and
   * itself only.
   */
  async list(who: Principal): Promise<CatalogView> {
    await authorize(this.ledger, who, 'catalog.list', 'catalog');
    const doc = await this.store.load();
    if (doc.sources.length === 0) return { sources: [], departments: [] };
    const config = parsePipeline(pipelineText(doc, () => []));
    const own = who.role === 'department';
    return {
      sources: config.sources.map((s) => ({
        name: s.name,
        ...(own ? {} : { connection: { host: s.connection.host, port: s.connection.port, user: s.connection.user }, serverId: s.serverId }),
        tables: s.tables.map((t) => ({ name: t.name, columns: t.columns, ...(t.appendOnly ? { appendOnly: true } : {}) })),
      })),
      departments: config.departments.filter((d) => !own || d.name === who.department).map((d) => ({ name: d.name, target: { kind: d.target.kind } })),
    };
  }

  private async change(who: Principal, operation: Operation, subject: string, edit: (doc: CatalogDocument) => CatalogDocument, o: { dryRun?: boolean; reason?: string; digest?: string }): Promise<CatalogResult> {
    await authorize(this.ledger, who, operation, subject);
    return inTransaction(this.pool, async (conn) => {
      // One catalog change at a time: the lock is held until this transaction ends.
      await conn.query('SELECT version FROM schema_migrations WHERE version = 3 FOR UPDATE');
      const before = await this.store.load(conn);
      const after = edit(structuredClone(before));
      const changes = diffCatalog(before, after);
      if (changes.length === 0) return { changes, applied: false };
      await this.validate(after);
      if (o.dryRun) return { changes, applied: false };
      await this.store.save(conn, after);
      for (const c of changes) {
        await this.ledger.append({
          actor: who.name, role: who.role, action: `catalog.${c.kind}.${c.op}`, subject: c.subject,
          details: { ...c, via: operation, reason: o.reason ?? null, ...(o.digest ? { fileSha256: o.digest } : {}) },
        }, conn);
      }
      return { changes, applied: true };
    });
  }
}

function sourceOf(doc: CatalogDocument, name: string) {
  const source = doc.sources.find((s) => s.name === name);
  if (!source) throw new CdcError('CONFIG_INVALID', `no source named ${name} in the catalog (sources: ${doc.sources.map((s) => s.name).join(', ') || 'none'})`);
  return source;
}
