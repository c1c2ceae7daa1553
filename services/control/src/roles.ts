import { CdcError } from '@cityshare/shared';
import type { PoolConnection } from 'mysql2/promise';

export type Role = 'dba' | 'security-officer' | 'department' | 'sre' | 'auditor' | 'service';

export type Operation =
  | 'catalog.apply' | 'catalog.list' | 'table.register' | 'table.classify' | 'table.unregister'
  | 'grant.request' | 'grant.approve' | 'grant.reject' | 'grant.revoke' | 'grant.list'
  | 'key.rotate' | 'key.list' | 'audit.show' | 'audit.verify' | 'status.show'
  | 'acl.show' | 'acl.apply'
  | 'change.list' | 'change.approve' | 'change.reject'
  | 'policy.fetch'
  | 'verify.record' | 'repair.request';

export const ROLES: readonly Role[] = ['dba', 'security-officer', 'department', 'sre', 'auditor', 'service'];

/** Who may do what. A department acts for itself only (checked where the department is known). */
export const ROLE_MATRIX: Readonly<Record<Operation, readonly Role[]>> = {
  'catalog.apply': ['dba'],
  // A department sees the tables and classes it may ask for, and itself; not other departments.
  'catalog.list': ['dba', 'security-officer', 'department', 'sre', 'auditor'],
  'table.register': ['dba'],
  'table.classify': ['dba'],
  'table.unregister': ['dba'],
  'grant.request': ['department'],
  'grant.approve': ['security-officer'],
  'grant.reject': ['security-officer'],
  'grant.revoke': ['security-officer'],
  'grant.list': ['security-officer', 'department', 'dba', 'auditor'],
  'key.rotate': ['security-officer'],
  'key.list': ['security-officer', 'auditor', 'sre'],
  'audit.show': ['security-officer', 'auditor'],
  'audit.verify': ['security-officer', 'auditor', 'sre'],
  'status.show': ['sre', 'dba', 'security-officer'],
  // Kafka ACLs follow the grants by themselves; applying them by hand is an access decision.
  'acl.show': ['security-officer', 'sre', 'auditor'],
  'acl.apply': ['security-officer'],
  // Settings and targets decide where data goes: a DBA proposes (catalog.apply), a security officer decides.
  'change.list': ['security-officer', 'dba', 'auditor'],
  'change.approve': ['security-officer'],
  'change.reject': ['security-officer'],
  // The pipeline's services on other hosts fetch the signed policy they run (no secrets: `${…}` as written).
  'policy.fetch': ['service'],
  // A verification proves what a department holds; its result is recorded by whoever ran it (the verifier service included).
  'verify.record': ['sre', 'auditor', 'security-officer', 'service'],
  // A repair delivers again what a department is granted already: operations, not an access decision.
  'repair.request': ['sre', 'security-officer'],
};

export interface Principal {
  /** Person or system, as authenticated. */
  name: string;
  role: Role;
  /** Set for role `department`: the department it acts for. */
  department?: string;
}

export function allowed(who: Principal, operation: Operation): boolean {
  return ROLE_MATRIX[operation].includes(who.role);
}

export function forbidden(who: Principal, operation: Operation, why = `role ${who.role} may not ${operation}`): CdcError {
  return new CdcError('FORBIDDEN', `${who.name}: ${why}`, { details: { operation, role: who.role } });
}

/** The ledger's append, as authorization needs it. */
interface Audit {
  append(e: { actor: string; role: string; action: string; subject: string; details: Record<string, unknown> }, within?: PoolConnection): Promise<unknown>;
}

/**
 * Lets the call through or throws FORBIDDEN after writing the refusal to the ledger. With
 * `department`, a department role may act only for itself.
 */
export async function authorize(ledger: Audit, who: Principal, operation: Operation, subject: string, department?: string): Promise<void> {
  const ownOnly = who.role === 'department' && department !== undefined && who.department !== department;
  if (allowed(who, operation) && !ownOnly) return;
  const err = forbidden(who, operation, ownOnly ? `department ${who.department ?? '?'} may not act for ${department}` : undefined);
  await ledger.append({ actor: who.name, role: who.role, action: `denied:${operation}`, subject, details: { reason: err.message } });
  throw err;
}
