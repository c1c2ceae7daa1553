import { createHash } from 'node:crypto';
import type { Pool, PoolConnection, ResultSetHeader } from 'mysql2/promise';
import { CdcError, canonicalJson } from '@cityshare/shared';
import { assertState } from './decision-state.js';
import type { AuditLedger } from './ledger.js';
import { inTransaction } from './transaction.js';
import { authorize, type Operation, type Principal } from './roles.js';

/** What a department asks for on one table: columns and actions as in a pipeline grant, an optional row filter. */
export interface GrantSpec {
  columns: Record<string, unknown>;
  filter?: string;
  /** Columns the filter reads that the department does not receive: the officer approves them by name. */
  filterReads?: string[];
}

export interface GrantRequest {
  id: number;
  department: string;
  table: string;
  spec: GrantSpec;
  purpose: string;
  expiresAt: string | null;
  status: 'requested' | 'approved' | 'rejected' | 'revoked' | 'expired';
  requestedBy: string;
  decidedBy: string | null;
  reason: string | null;
}

/** SHA-256 of what a security officer approves: the grant's id, department, table, spec and expiry. */
export function grantDigest(g: Pick<GrantRequest, 'id' | 'department' | 'table' | 'spec' | 'expiresAt'>): string {
  return createHash('sha256').update(canonicalJson([g.id, g.department, g.table, g.spec, g.expiresAt])).digest('hex');
}

/** Ledger actions that decide whether a grant is in force; the latest one for a grant counts. */
const DECISIONS = ['grant.approve', 'grant.attest', 'grant.reject', 'grant.revoke', 'grant.expire'];

const ISO = "DATE_FORMAT(%s, '%%Y-%%m-%%dT%%H:%%i:%%s.%%fZ')";
const iso = (col: string) => ISO.replace('%s', col).replaceAll('%%', '%');

/**
 * The grant workflow: a department requests a grant (table, columns and actions, row
 * filter, purpose, expiry); a security officer approves or rejects it with a reason and
 * may revoke it; only approved, unexpired grants are in force (`inForce`). Every call, and
 * every refused call, is written to the audit ledger. The approval's ledger entry carries
 * the grant's digest (`grantDigest`) attested under the audit key, and a grant is in force
 * only while its latest decision in the ledger is that approval and the digest still
 * matches its row: a grant widened, revived or approved in the database is refused.
 */
export class GrantWorkflow {
  private refused = new Map<number, string>();

  constructor(
    private readonly pool: Pool,
    private readonly ledger: AuditLedger,
    /** Checks that a set of grants makes a valid policy (throws CONFIG_INVALID listing the problems). */
    private readonly validate: (grants: GrantRequest[]) => unknown = () => undefined,
    /** Told once of each grant approved in the database but not as recorded in the ledger (GRANT_TAMPERED). */
    private readonly onRefused: (grant: GrantRequest, problem: string) => void = () => undefined,
  ) {}

  /** Grants approved in the database whose approval does not verify, by id, as of the last `inForce`. */
  get refusedGrants(): ReadonlyMap<number, string> {
    return this.refused;
  }

  private authorize(who: Principal, operation: Operation, subject: string, department?: string): Promise<void> {
    return authorize(this.ledger, who, operation, subject, department);
  }

  async request(who: Principal, r: { department: string; table: string; spec: GrantSpec; purpose: string; expiresAt?: Date }): Promise<GrantRequest> {
    await this.authorize(who, 'grant.request', r.table, r.department);
    if (!r.purpose.trim()) throw new CdcError('CONFIG_INVALID', 'a grant request needs a purpose');
    const id = await this.atomically(async (conn) => {
      const [res] = await conn.query('INSERT INTO grant_requests (department, table_ref, spec, purpose, expires_at, status, requested_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))', [
        r.department, r.table, JSON.stringify(r.spec), r.purpose, r.expiresAt ? r.expiresAt.toISOString().replace('T', ' ').replace('Z', '') : null, 'requested', who.name,
      ]);
      const inserted = (res as { insertId: number }).insertId;
      await this.ledger.append({ actor: who.name, role: who.role, action: 'grant.request', subject: `grant/${inserted}`, details: { department: r.department, table: r.table, columns: Object.keys(r.spec.columns), filter: r.spec.filter ?? null, filterReads: r.spec.filterReads ?? [], purpose: r.purpose, expiresAt: r.expiresAt?.toISOString() ?? null } }, conn);
      return inserted;
    });
    return this.get(id);
  }

  /**
   * Whether a request would make a valid policy with the grants in force, as its approval
   * will check: nothing is recorded (the console's live check). Throws CONFIG_INVALID with
   * every problem.
   */
  async check(who: Principal, r: { department: string; table: string; spec: GrantSpec; purpose: string; expiresAt?: Date }): Promise<void> {
    await this.authorize(who, 'grant.request', r.table, r.department);
    const candidate: GrantRequest = { id: 0, department: r.department, table: r.table, spec: r.spec, purpose: r.purpose, expiresAt: r.expiresAt?.toISOString() ?? null, status: 'approved', requestedBy: who.name, decidedBy: null, reason: null };
    await this.validate([...(await this.inForce()), candidate]);
  }

  async approve(who: Principal, id: number, reason: string): Promise<GrantRequest> {
    await this.authorize(who, 'grant.approve', `grant/${id}`);
    const request = await this.get(id);
    assertState('grant', id, request.status, 'requested', 'approved');
    // A grant that would not make a valid policy (an unclassified column, a bad filter) is refused here, not at publication.
    await this.validate([...(await this.inForce()), { ...request, status: 'approved' }]);
    return this.decide(who, id, 'grant.approve', 'requested', 'approved', reason);
  }

  reject(who: Principal, id: number, reason: string): Promise<GrantRequest> {
    return this.decide(who, id, 'grant.reject', 'requested', 'rejected', reason);
  }

  revoke(who: Principal, id: number, reason: string): Promise<GrantRequest> {
    return this.decide(who, id, 'grant.revoke', 'approved', 'revoked', reason);
  }

  private async decide(who: Principal, id: number, operation: Operation, from: GrantRequest['status'], to: GrantRequest['status'], reason: string): Promise<GrantRequest> {
    await this.authorize(who, operation, `grant/${id}`);
    if (!reason.trim()) throw new CdcError('CONFIG_INVALID', `${operation} needs a reason`);
    const before = await this.get(id);
    assertState('grant', id, before.status, from, to);
    await this.atomically(async (conn) => {
      const [res] = await conn.query<ResultSetHeader>('UPDATE grant_requests SET status = ?, decided_by = ?, reason = ?, decided_at = UTC_TIMESTAMP(6) WHERE id = ? AND status = ?', [to, who.name, reason, id, from]);
      // Another decision won the race since the status was read: nothing changes, nothing is recorded.
      if (res.affectedRows !== 1) throw new CdcError('STATE_CONFLICT', `grant ${id} changed while it was being decided; read it again`);
      const approval = to === 'approved' ? this.approvalOf(before) : {};
      await this.ledger.append({ actor: who.name, role: who.role, action: operation, subject: `grant/${id}`, details: { before: before.status, after: to, reason, department: before.department, table: before.table, ...approval } }, conn);
    });
    return this.get(id);
  }

  /** Marks approved grants past their expiry as expired (run periodically); returns their ids. */
  async expire(now = new Date()): Promise<number[]> {
    const [rows] = await this.pool.query("SELECT id FROM grant_requests WHERE status = 'approved' AND expires_at IS NOT NULL AND expires_at <= ?", [now.toISOString().replace('T', ' ').replace('Z', '')]);
    const ids = (rows as Array<{ id: number }>).map((r) => Number(r.id));
    for (const id of ids) {
      await this.atomically(async (conn) => {
        const [res] = await conn.query<ResultSetHeader>("UPDATE grant_requests SET status = 'expired', decided_at = UTC_TIMESTAMP(6) WHERE id = ? AND status = 'approved'", [id]);
        if (res.affectedRows === 1) await this.ledger.append({ actor: 'control-plane', role: 'system', action: 'grant.expire', subject: `grant/${id}`, details: { before: 'approved', after: 'expired' } }, conn);
      });
    }
    return ids;
  }

  private atomically<T>(work: (conn: PoolConnection) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, work);
  }

  /** What the approval entry of a grant records: its digest, attested under the audit key. */
  private approvalOf(g: GrantRequest): { specDigest: string; attestation: unknown } {
    const specDigest = grantDigest(g);
    return { specDigest, attestation: this.ledger.attest('grant.approve', specDigest) };
  }

  /** Approved grants not past their expiry whose approval in the ledger verifies: what the pipeline may deliver. */
  async inForce(now = new Date()): Promise<GrantRequest[]> {
    const [rows] = await this.pool.query(`SELECT ${this.columns()} FROM grant_requests WHERE status = 'approved' AND (expires_at IS NULL OR expires_at > ?) ORDER BY id`, [now.toISOString().replace('T', ' ').replace('Z', '')]);
    const approved = (rows as Array<Record<string, unknown>>).map(rowOf);
    const decisions = await this.latestDecisions(approved.map((g) => g.id));
    const refused = new Map<number, string>();
    const inForce = approved.filter((g) => {
      const problem = this.approvalProblem(g, decisions.get(g.id));
      if (problem) refused.set(g.id, problem);
      if (problem && this.refused.get(g.id) !== problem) this.onRefused(g, problem);
      return !problem;
    });
    this.refused = refused;
    return inForce;
  }

  /** The latest deciding ledger entry of each grant. */
  private async latestDecisions(ids: number[]): Promise<Map<number, { action: string; details: Record<string, unknown> }>> {
    const latest = new Map<number, { action: string; details: Record<string, unknown> }>();
    if (ids.length === 0) return latest;
    const [rows] = await this.pool.query('SELECT subject, action, details FROM audit_ledger WHERE subject IN (?) AND action IN (?) ORDER BY seq', [ids.map((id) => `grant/${id}`), DECISIONS]);
    for (const r of rows as Array<{ subject: string; action: string; details: string }>) latest.set(Number(r.subject.slice('grant/'.length)), { action: r.action, details: JSON.parse(r.details) as Record<string, unknown> });
    return latest;
  }

  private approvalProblem(g: GrantRequest, decision: { action: string; details: Record<string, unknown> } | undefined): string | undefined {
    if (!decision) return `grant ${g.id} is approved in the database, but no security officer's approval of it is in the audit ledger`;
    if (decision.action !== 'grant.approve' && decision.action !== 'grant.attest') return `grant ${g.id} is approved in the database, but its latest decision in the audit ledger is ${decision.action}`;
    const digest = grantDigest(g);
    if (decision.details.specDigest !== digest) return `grant ${g.id} (department, table, columns, filter or expiry) differs from what the security officer approved`;
    if (!this.ledger.attested('grant.approve', digest, decision.details.attestation)) return `the approval of grant ${g.id} in the audit ledger is not attested by the audit key`;
    return undefined;
  }

  /**
   * Records the digests of grants in force approved before approvals carried them (once, on
   * the start that upgrades the schema): that start vouches for them, as for the ledger head.
   */
  async attestLegacyApprovals(): Promise<number[]> {
    const [rows] = await this.pool.query(`SELECT ${this.columns()} FROM grant_requests WHERE status = 'approved' ORDER BY id`);
    const approved = (rows as Array<Record<string, unknown>>).map(rowOf);
    const decisions = await this.latestDecisions(approved.map((g) => g.id));
    const legacy = approved.filter((g) => decisions.get(g.id)?.action === 'grant.approve' && decisions.get(g.id)?.details.specDigest === undefined);
    for (const g of legacy) {
      await this.ledger.append({ actor: 'control-plane', role: 'system', action: 'grant.attest', subject: `grant/${g.id}`, details: { reason: 'approved before approvals carried spec digests', department: g.department, table: g.table, ...this.approvalOf(g) } });
    }
    return legacy.map((g) => g.id);
  }

  /** How many grant requests are in each status (for status views; no names). */
  async countByStatus(): Promise<Record<GrantRequest['status'], number>> {
    const [rows] = await this.pool.query('SELECT status, COUNT(*) AS n FROM grant_requests GROUP BY status');
    const counts = { requested: 0, approved: 0, rejected: 0, revoked: 0, expired: 0 };
    for (const r of rows as Array<{ status: GrantRequest['status']; n: number }>) counts[r.status] = Number(r.n);
    return counts;
  }

  async list(who: Principal): Promise<GrantRequest[]> {
    await this.authorize(who, 'grant.list', 'grants');
    const own = who.role === 'department';
    const [rows] = await this.pool.query(`SELECT ${this.columns()} FROM grant_requests ${own ? 'WHERE department = ?' : ''} ORDER BY id`, own ? [who.department] : []);
    return (rows as Array<Record<string, unknown>>).map(rowOf);
  }

  async get(id: number): Promise<GrantRequest> {
    const [rows] = await this.pool.query(`SELECT ${this.columns()} FROM grant_requests WHERE id = ?`, [id]);
    const row = (rows as Array<Record<string, unknown>>)[0];
    if (!row) throw new CdcError('UNKNOWN_ID', `no grant request ${id}`);
    return rowOf(row);
  }

  private columns(): string {
    return `id, department, table_ref AS \`table\`, spec, purpose, ${iso('expires_at')} AS expiresAt, status, requested_by AS requestedBy, decided_by AS decidedBy, reason`;
  }
}

function rowOf(r: Record<string, unknown>): GrantRequest {
  return { ...(r as unknown as GrantRequest), id: Number(r.id), spec: JSON.parse(r.spec as string) as GrantSpec };
}
