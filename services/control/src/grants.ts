import type { Pool, PoolConnection, ResultSetHeader } from 'mysql2/promise';
import { CdcError } from '@cityshare/shared';
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

const ISO = "DATE_FORMAT(%s, '%%Y-%%m-%%dT%%H:%%i:%%s.%%fZ')";
const iso = (col: string) => ISO.replace('%s', col).replaceAll('%%', '%');

/**
 * The grant workflow: a department requests a grant (table, columns and actions, row
 * filter, purpose, expiry); a security officer approves or rejects it with a reason and
 * may revoke it; only approved, unexpired grants are in force (`inForce`). Every call, and
 * every refused call, is written to the audit ledger.
 */
export class GrantWorkflow {
  constructor(
    private readonly pool: Pool,
    private readonly ledger: AuditLedger,
    /** Checks that a set of grants makes a valid policy (throws CONFIG_INVALID listing the problems). */
    private readonly validate: (grants: GrantRequest[]) => unknown = () => undefined,
  ) {}

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

  async approve(who: Principal, id: number, reason: string): Promise<GrantRequest> {
    await this.authorize(who, 'grant.approve', `grant/${id}`);
    // A grant that would not make a valid policy (an unclassified column, a bad filter) is refused here, not at publication.
    await this.validate([...(await this.inForce()), { ...(await this.get(id)), status: 'approved' }]);
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
    if (before.status !== from) throw new CdcError('CONFIG_INVALID', `grant ${id} is ${before.status}; only a ${from} grant can be ${to}`);
    await this.atomically(async (conn) => {
      const [res] = await conn.query<ResultSetHeader>('UPDATE grant_requests SET status = ?, decided_by = ?, reason = ?, decided_at = UTC_TIMESTAMP(6) WHERE id = ? AND status = ?', [to, who.name, reason, id, from]);
      // Another decision won the race since the status was read: nothing changes, nothing is recorded.
      if (res.affectedRows !== 1) throw new CdcError('CONFIG_INVALID', `grant ${id} changed while it was being decided; read it again`);
      await this.ledger.append({ actor: who.name, role: who.role, action: operation, subject: `grant/${id}`, details: { before: before.status, after: to, reason, department: before.department, table: before.table } }, conn);
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

  /** Approved grants not past their expiry: what the pipeline may deliver. */
  async inForce(now = new Date()): Promise<GrantRequest[]> {
    const [rows] = await this.pool.query(`SELECT ${this.columns()} FROM grant_requests WHERE status = 'approved' AND (expires_at IS NULL OR expires_at > ?) ORDER BY id`, [now.toISOString().replace('T', ' ').replace('Z', '')]);
    return (rows as Array<Record<string, unknown>>).map(rowOf);
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
    if (!row) throw new CdcError('CONFIG_INVALID', `no grant request ${id}`);
    return rowOf(row);
  }

  private columns(): string {
    return `id, department, table_ref AS \`table\`, spec, purpose, ${iso('expires_at')} AS expiresAt, status, requested_by AS requestedBy, decided_by AS decidedBy, reason`;
  }
}

function rowOf(r: Record<string, unknown>): GrantRequest {
  return { ...(r as unknown as GrantRequest), id: Number(r.id), spec: JSON.parse(r.spec as string) as GrantSpec };
}
