import { createHash } from 'node:crypto';
import type { Pool, PoolConnection, ResultSetHeader } from 'mysql2/promise';
import { CdcError, canonicalJson } from '@cityshare/shared';
import type { CatalogChange, CatalogDocument } from './catalog.js';
import type { AuditLedger } from './ledger.js';
import type { Principal } from './roles.js';

/** SHA-256 of a value as canonical JSON: what the ledger keeps of values that may hold credentials. */
export const sha256Of = (value: unknown): string => createHash('sha256').update(canonicalJson(value)).digest('hex');

/**
 * Where the data goes: the Kafka, registry and keyring settings and each department's
 * target. A change of any of them waits for a security officer.
 */
export function routeOf(doc: CatalogDocument): { settings: Record<string, unknown>; targets: Record<string, unknown> } {
  return { settings: doc.settings, targets: Object.fromEntries(doc.departments.map((d) => [d.name, d.target ?? null])) };
}

/** A setting added, changed or removed; a department (its target) added or removed, or its target changed. */
export function needsApproval(c: CatalogChange): boolean {
  return c.kind === 'setting' || (c.kind === 'department' && (c.op !== 'change' || (c.fields ?? []).includes('target')));
}

/** The changes, those that need approval with the digests of their value before and after. */
export function withDigests(changes: CatalogChange[], before: CatalogDocument, after: CatalogDocument): CatalogChange[] {
  const valueIn = (doc: CatalogDocument, c: CatalogChange) => (c.kind === 'setting' ? doc.settings[c.subject] : doc.departments.find((d) => d.name === c.subject)?.target);
  return changes.map((c) => (needsApproval(c)
    ? { ...c, beforeSha256: c.op === 'add' ? null : sha256Of(valueIn(before, c)), afterSha256: c.op === 'remove' ? null : sha256Of(valueIn(after, c)) }
    : c));
}

/** A change of settings or targets as a security officer decides it: the differences and their digests, never the values. */
export interface CatalogChangeRequest {
  id: number;
  status: 'requested' | 'approved' | 'rejected';
  requestedBy: string;
  requestedAt: string;
  reason: string | null;
  changes: CatalogChange[];
  decidedBy: string | null;
  decidedAt: string | null;
  decisionReason: string | null;
}

/** The stored request with what it would apply (never returned by the API). */
export interface StoredChangeRequest extends CatalogChangeRequest {
  document: CatalogDocument;
  baseSha256: string;
}

/** Ledger entries that say which settings and targets a security officer approved last; the latest one counts. */
const SEAL_SUBJECT = 'catalog/settings';
const SEAL_PURPOSE = 'catalog.change.approve';

const ISO = (col: string) => `DATE_FORMAT(${col}, '%Y-%m-%dT%H:%i:%s.%fZ')`;
const COLUMNS = `id, status, document, changes, base_sha256 AS baseSha256, requested_by AS requestedBy, ${ISO('requested_at')} AS requestedAt, reason, decided_by AS decidedBy, ${ISO('decided_at')} AS decidedAt, decision_reason AS decisionReason`;

/**
 * Pending changes of settings and targets (`catalog_changes`), and the seal on what was
 * approved: every approval (and the first-start import) records in the ledger the SHA-256
 * of the catalog's settings and targets, attested under the audit key. Only a catalog whose
 * settings and targets match the latest seal is published, so a value changed in the
 * database without an approval is refused (SETTINGS_TAMPERED).
 */
export class CatalogChangeRequests {
  constructor(
    private readonly pool: Pool,
    private readonly ledger: AuditLedger,
  ) {}

  /** Stores a DBA's change for a security officer, with its ledger entry (the document's digest binds what is approved later). */
  async request(conn: PoolConnection, who: Principal, before: CatalogDocument, after: CatalogDocument, changes: CatalogChange[], o: { reason?: string; fileSha256?: string }): Promise<number> {
    const baseSha256 = sha256Of(before);
    const [res] = await conn.query<ResultSetHeader>('INSERT INTO catalog_changes (status, document, changes, base_sha256, requested_by, requested_at, reason) VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6), ?)', [
      'requested', JSON.stringify(after), JSON.stringify(changes), baseSha256, who.name, o.reason ?? null,
    ]);
    await this.ledger.append({
      actor: who.name, role: who.role, action: 'catalog.change.request', subject: `catalog-change/${res.insertId}`,
      details: { changes, reason: o.reason ?? null, baseSha256, documentSha256: sha256Of(after), ...(o.fileSha256 ? { fileSha256: o.fileSha256 } : {}) },
    }, conn);
    return res.insertId;
  }

  async list(): Promise<CatalogChangeRequest[]> {
    const [rows] = await this.pool.query(`SELECT ${COLUMNS} FROM catalog_changes ORDER BY id`);
    return (rows as Array<Record<string, unknown>>).map((r) => {
      const { document: _document, baseSha256: _base, ...shown } = rowOf(r);
      return shown;
    });
  }

  async get(id: number, conn: Pick<Pool, 'query'> = this.pool): Promise<StoredChangeRequest> {
    const [rows] = await conn.query(`SELECT ${COLUMNS} FROM catalog_changes WHERE id = ?`, [id]);
    const row = (rows as Array<Record<string, unknown>>)[0];
    if (!row) throw new CdcError('UNKNOWN_ID', `no catalog change ${id}`);
    return rowOf(row);
  }

  /** Moves a requested change to its decision; a change decided meanwhile is refused. */
  async decide(conn: PoolConnection, id: number, to: 'approved' | 'rejected', who: Principal, reason: string | null): Promise<void> {
    const [res] = await conn.query<ResultSetHeader>("UPDATE catalog_changes SET status = ?, decided_by = ?, decided_at = UTC_TIMESTAMP(6), decision_reason = ? WHERE id = ? AND status = 'requested'", [to, who.name, reason, id]);
    if (res.affectedRows !== 1) throw new CdcError('STATE_CONFLICT', `catalog change ${id} changed while it was being decided; read it again`);
  }

  /** Whether the stored change is still the one the DBA requested (its document's digest is in the request entry). */
  async documentProblem(c: StoredChangeRequest): Promise<string | undefined> {
    const [rows] = await this.pool.query("SELECT details FROM audit_ledger WHERE subject = ? AND action = 'catalog.change.request' ORDER BY seq DESC LIMIT 1", [`catalog-change/${c.id}`]);
    const recorded = (rows as Array<{ details: string }>)[0];
    if (!recorded) return `catalog change ${c.id} has no request in the audit ledger`;
    const details = JSON.parse(recorded.details) as { documentSha256?: string; baseSha256?: string };
    if (details.documentSha256 !== sha256Of(c.document) || details.baseSha256 !== c.baseSha256) return `catalog change ${c.id} in the database differs from what the DBA requested`;
    return undefined;
  }

  /** Records `doc`'s settings and targets as approved (attested under the audit key), in the caller's transaction if given. */
  async seal(who: Principal, action: 'catalog.change.approve' | 'catalog.settings.attest', doc: CatalogDocument, details: Record<string, unknown>, conn?: PoolConnection): Promise<void> {
    const settingsSha256 = sha256Of(routeOf(doc));
    await this.ledger.append({ actor: who.name, role: who.role, action, subject: SEAL_SUBJECT, details: { ...details, settingsSha256, attestation: this.ledger.attest(SEAL_PURPOSE, settingsSha256) } }, conn);
  }

  /** Why `doc`'s settings and targets may not be published, if they are not what was approved last. */
  async sealProblem(doc: CatalogDocument): Promise<string | undefined> {
    const [rows] = await this.pool.query('SELECT action, details FROM audit_ledger WHERE subject = ? ORDER BY seq DESC LIMIT 1', [SEAL_SUBJECT]);
    const latest = (rows as Array<{ action: string; details: string }>)[0];
    if (!latest) return 'no approval of the catalog\'s settings and targets is in the audit ledger';
    const details = JSON.parse(latest.details) as { settingsSha256?: string; attestation?: unknown };
    const digest = sha256Of(routeOf(doc));
    if (details.settingsSha256 !== digest) return 'the settings or department targets in the control database differ from what a security officer approved last';
    if (!this.ledger.attested(SEAL_PURPOSE, digest, details.attestation)) return 'the latest approval of the settings and targets in the audit ledger is not attested by the audit key';
    return undefined;
  }
}

function rowOf(r: Record<string, unknown>): StoredChangeRequest {
  return {
    ...(r as unknown as StoredChangeRequest),
    id: Number(r.id),
    document: JSON.parse(r.document as string) as CatalogDocument,
    changes: JSON.parse(r.changes as string) as CatalogChange[],
  };
}
