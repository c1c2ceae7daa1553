import { CdcError } from '@cityshare/shared';

export type Role = 'dba' | 'security-officer' | 'department' | 'sre' | 'auditor';

export type Operation = 'grant.request' | 'grant.approve' | 'grant.reject' | 'grant.revoke' | 'grant.list' | 'audit.show' | 'audit.verify' | 'status.show';

/** Who may do what. A department acts for itself only (checked where the department is known). */
const MATRIX: Record<Operation, Role[]> = {
  'grant.request': ['department'],
  'grant.approve': ['security-officer'],
  'grant.reject': ['security-officer'],
  'grant.revoke': ['security-officer'],
  'grant.list': ['security-officer', 'department', 'dba', 'auditor'],
  'audit.show': ['security-officer', 'auditor'],
  'audit.verify': ['security-officer', 'auditor', 'sre'],
  'status.show': ['sre', 'dba', 'security-officer'],
};

export interface Principal {
  /** Person or system, as authenticated. */
  name: string;
  role: Role;
  /** Set for role `department`: the department it acts for. */
  department?: string;
}

export function allowed(who: Principal, operation: Operation): boolean {
  return MATRIX[operation].includes(who.role);
}

export function forbidden(who: Principal, operation: Operation, why = `role ${who.role} may not ${operation}`): CdcError {
  return new CdcError('FORBIDDEN', `${who.name}: ${why}`, { details: { operation, role: who.role } });
}
