import { createHash } from 'node:crypto';
import type { Pool, PoolConnection } from 'mysql2/promise';
import { parse, stringify } from 'yaml';
import { CdcError, isCdcError, parsePipeline } from '@cityshare/shared';
import { pipelineTargets } from '@cityshare/sink/targets';

/**
 * The catalog as the control plane keeps it: what a pipeline file declares except grants
 * (Kafka and registry settings, the keyring, sources with their tables and column classes,
 * departments with their targets), exactly as written — `${ENV}` references stay references,
 * so secrets can stay in the services' environment. Grants come only from the workflow.
 */
export interface CatalogDocument {
  settings: Record<string, unknown>;
  sources: SourceEntry[];
  departments: DepartmentEntry[];
}

export interface TableEntry {
  name: string;
  columns: Record<string, string>;
  [option: string]: unknown;
}

export interface SourceEntry {
  name: string;
  tables: TableEntry[];
  [field: string]: unknown;
}

export interface DepartmentEntry {
  name: string;
  [field: string]: unknown;
}

/** One difference between two catalogs, as `apply` shows it and the ledger records it. */
export interface CatalogChange {
  op: 'add' | 'remove' | 'change';
  kind: 'setting' | 'source' | 'table' | 'column' | 'department';
  /** e.g. `cityhub`, `cityhub.civil.citizens`, `cityhub.civil.citizens.phone`, `health`. */
  subject: string;
  /** A column's class before and after; other kinds name the fields that changed (values may be secret). */
  before?: string;
  after?: string;
  fields?: string[];
  /** For a setting or a department's target (values that may hold credentials): SHA-256 of the value before and after (null: absent). */
  beforeSha256?: string | null;
  afterSha256?: string | null;
}

const SETTINGS = ['kafka', 'schemaRegistry', 'keyring'] as const;

/**
 * Reads a pipeline file's text as a catalog. Every problem is listed at once: the whole
 * file must load as a pipeline (with the control plane's environment), and it may not
 * declare grants — those are requested and approved through the workflow.
 */
export function catalogFromPipelineText(text: string, env: NodeJS.ProcessEnv = process.env): CatalogDocument {
  const problems: string[] = [];
  let raw: Record<string, unknown>;
  try {
    raw = (parse(text) ?? {}) as Record<string, unknown>;
  } catch (cause) {
    throw new CdcError('CONFIG_INVALID', `pipeline file is not valid YAML: ${(cause as Error).message}`, { cause });
  }
  try {
    // Every target setting checked, as the sink will (the registry of target kinds is the sink's).
    parsePipeline(text, env, pipelineTargets);
  } catch (err) {
    if (!isCdcError(err)) throw err;
    problems.push(...((err.details?.problems as string[] | undefined) ?? [err.message]));
  }
  const departments = (Array.isArray(raw.departments) ? raw.departments : []) as DepartmentEntry[];
  for (const d of departments) {
    if (Array.isArray(d.grants) && d.grants.length > 0) {
      problems.push(`departments.${d.name}.grants: grants are requested and approved through the control plane (cdc grants request / approve); remove them from the file`);
    }
  }
  if (problems.length > 0) {
    throw new CdcError('CONFIG_INVALID', `the pipeline file cannot be applied:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  const settings: Record<string, unknown> = {};
  for (const s of SETTINGS) if (raw[s] !== undefined) settings[s] = raw[s];
  return {
    settings,
    sources: (raw.sources as SourceEntry[]).map((s) => ({ ...s, tables: s.tables.map((t) => ({ ...t })) })),
    departments: departments.map(({ grants: _grants, ...d }) => d as DepartmentEntry),
  };
}

/** The pipeline file the services run: the catalog with each department's grants. */
export function pipelineText(doc: CatalogDocument, grantsOf: (department: string) => unknown[]): string {
  const file = {
    ...doc.settings,
    sources: doc.sources,
    departments: doc.departments.map((d) => ({ ...d, grants: grantsOf(d.name) })),
  };
  return stringify(file);
}

const digest = (v: unknown) => createHash('sha256').update(JSON.stringify(v ?? null)).digest('hex').slice(0, 16);
const changedFields = (a: Record<string, unknown>, b: Record<string, unknown>, skip: string[] = []) =>
  [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !skip.includes(k) && digest(a[k]) !== digest(b[k])).sort();

/** What `after` changes in `before`, entity by entity, in a stable order. */
export function diffCatalog(before: CatalogDocument, after: CatalogDocument): CatalogChange[] {
  const changes: CatalogChange[] = [];
  for (const s of [...new Set([...Object.keys(before.settings), ...Object.keys(after.settings)])].sort()) {
    const a = before.settings[s];
    const b = after.settings[s];
    if (a === undefined) changes.push({ op: 'add', kind: 'setting', subject: s });
    else if (b === undefined) changes.push({ op: 'remove', kind: 'setting', subject: s });
    else if (digest(a) !== digest(b)) changes.push({ op: 'change', kind: 'setting', subject: s, fields: changedFields(a as Record<string, unknown>, b as Record<string, unknown>) });
  }
  const byName = <T extends { name: string }>(list: T[]) => new Map(list.map((x) => [x.name, x]));
  const beforeSources = byName(before.sources);
  const afterSources = byName(after.sources);
  for (const name of [...new Set([...beforeSources.keys(), ...afterSources.keys()])].sort()) {
    const a = beforeSources.get(name);
    const b = afterSources.get(name);
    if (!a || !b) changes.push({ op: a ? 'remove' : 'add', kind: 'source', subject: name });
    else {
      const fields = changedFields(a, b, ['tables']);
      if (fields.length > 0) changes.push({ op: 'change', kind: 'source', subject: name, fields });
    }
    const beforeTables = byName(a?.tables ?? []);
    const afterTables = byName(b?.tables ?? []);
    for (const t of [...new Set([...beforeTables.keys(), ...afterTables.keys()])].sort()) {
      const ta = beforeTables.get(t);
      const tb = afterTables.get(t);
      const ref = `${name}.${t}`;
      if (!ta || !tb) changes.push({ op: ta ? 'remove' : 'add', kind: 'table', subject: ref });
      else {
        const fields = changedFields(ta, tb, ['columns']);
        if (fields.length > 0) changes.push({ op: 'change', kind: 'table', subject: ref, fields });
      }
      const ca = ta?.columns ?? {};
      const cb = tb?.columns ?? {};
      for (const c of [...new Set([...Object.keys(ca), ...Object.keys(cb)])].sort()) {
        if (ca[c] === cb[c]) continue;
        const op = ca[c] === undefined ? 'add' : cb[c] === undefined ? 'remove' : 'change';
        changes.push({ op, kind: 'column', subject: `${ref}.${c}`, ...(ca[c] !== undefined ? { before: ca[c] } : {}), ...(cb[c] !== undefined ? { after: cb[c] } : {}) });
      }
    }
  }
  const beforeDepts = byName(before.departments);
  const afterDepts = byName(after.departments);
  for (const name of [...new Set([...beforeDepts.keys(), ...afterDepts.keys()])].sort()) {
    const a = beforeDepts.get(name);
    const b = afterDepts.get(name);
    if (!a || !b) changes.push({ op: a ? 'remove' : 'add', kind: 'department', subject: name });
    else {
      const fields = changedFields(a, b);
      if (fields.length > 0) changes.push({ op: 'change', kind: 'department', subject: name, fields });
    }
  }
  return changes;
}

/** `+ column cityhub.civil.citizens.phone (personal)`, `~ department health: target`. */
export function describeChange(c: CatalogChange): string {
  const sign = { add: '+', remove: '-', change: '~' }[c.op];
  if (c.kind === 'column') return `${sign} column ${c.subject} ${c.op === 'change' ? `${c.before} -> ${c.after}` : `(${c.after ?? c.before})`}`;
  return `${sign} ${c.kind} ${c.subject}${c.fields?.length ? `: ${c.fields.join(', ')}` : ''}`;
}

export const EMPTY_CATALOG: CatalogDocument = { settings: {}, sources: [], departments: [] };

/**
 * The catalog tables (migration 3): settings, sources, tables, columns with their classes,
 * departments with their targets, each row's non-key fields as JSON. A change replaces them
 * in one transaction with its ledger entries.
 */
export class CatalogStore {
  constructor(private readonly pool: Pool) {}

  /** One catalog change at a time: held until the caller's transaction ends. */
  async lock(conn: PoolConnection): Promise<void> {
    await conn.query('SELECT version FROM schema_migrations WHERE version = 3 FOR UPDATE');
  }

  async load(conn: Pick<Pool, 'query'> = this.pool): Promise<CatalogDocument> {
    const rows = async <T>(sql: string) => (await conn.query(sql))[0] as T[];
    const settings = Object.fromEntries((await rows<{ name: string; value: string }>('SELECT name, value FROM catalog_settings ORDER BY name')).map((r) => [r.name, JSON.parse(r.value)]));
    const columns = await rows<{ source: string; table_name: string; column_name: string; class: string }>('SELECT source, table_name, column_name, class FROM catalog_columns ORDER BY ordinal');
    const tables = (await rows<{ source: string; name: string; spec: string }>('SELECT source, name, spec FROM catalog_tables ORDER BY ordinal')).map((t) => ({
      source: t.source,
      entry: { name: t.name, ...JSON.parse(t.spec), columns: Object.fromEntries(columns.filter((c) => c.source === t.source && c.table_name === t.name).map((c) => [c.column_name, c.class])) } as TableEntry,
    }));
    const sources = (await rows<{ name: string; spec: string }>('SELECT name, spec FROM catalog_sources ORDER BY ordinal')).map((s) => ({
      name: s.name,
      ...JSON.parse(s.spec),
      tables: tables.filter((t) => t.source === s.name).map((t) => t.entry),
    })) as SourceEntry[];
    const departments = (await rows<{ name: string; spec: string }>('SELECT name, spec FROM catalog_departments ORDER BY ordinal')).map((d) => ({ name: d.name, ...JSON.parse(d.spec) })) as DepartmentEntry[];
    return { settings, sources, departments };
  }

  /** Replaces the whole catalog inside the caller's transaction. */
  async save(conn: PoolConnection, doc: CatalogDocument): Promise<void> {
    for (const t of ['catalog_settings', 'catalog_sources', 'catalog_tables', 'catalog_columns', 'catalog_departments']) await conn.query(`DELETE FROM ${t}`);
    const insert = async (table: string, rows: unknown[][]) => {
      if (rows.length > 0) await conn.query(`INSERT INTO ${table} VALUES ?`, [rows]);
    };
    await insert('catalog_settings', Object.entries(doc.settings).map(([k, v]) => [k, JSON.stringify(v)]));
    await insert('catalog_sources', doc.sources.map(({ name, tables: _t, ...spec }, i) => [name, i, JSON.stringify(spec)]));
    const tables = doc.sources.flatMap((s) => s.tables.map((t) => ({ source: s.name, t })));
    await insert('catalog_tables', tables.map(({ source, t: { name, columns: _c, ...spec } }, i) => [source, name, i, JSON.stringify(spec)]));
    let ordinal = 0;
    await insert('catalog_columns', tables.flatMap(({ source, t }) => Object.entries(t.columns).map(([c, cls]) => [source, t.name, c, cls, ordinal++])));
    await insert('catalog_departments', doc.departments.map(({ name, ...spec }, i) => [name, i, JSON.stringify(spec)]));
  }
}
