import { CdcError } from '@cityshare/shared';

/**
 * Decisions move a grant or a catalog change out of one state only (a requested one is
 * approved or rejected, an approved grant revoked): any other is STATE_CONFLICT, and nothing changes.
 */
export function assertState(what: 'grant' | 'catalog change', id: number, status: string, from: string, to: string): void {
  if (status !== from) throw new CdcError('STATE_CONFLICT', `${what} ${id} is ${status}; it can be ${to} only while ${from}`, { details: { id, status } });
}
