import type { Logger } from '@cityshare/shared';
import type { ControlMetrics } from './control-metrics.js';
import type { AuditLedger } from './ledger.js';

/** The result of the last verification, as `cdc status` shows it. */
export interface Verification {
  at: string;
  entries: number;
  problems: number;
  head: { seq: number; hash: string };
  full: boolean;
}

/**
 * Verifies the audit ledger on a schedule: incrementally (the entries since the last verified
 * checkpoint, every checkpoint and the signed head) on each call, in full (every entry
 * rehashed) at the first call and every `fullIntervalMs`. A ledger that does not verify is
 * logged as AUDIT_LEDGER_TAMPERED and counted in cityshare_control_audit_problems.
 */
export class LedgerVerification {
  private lastFull = 0;
  last: Verification = { at: '', entries: 0, problems: 0, head: { seq: 0, hash: '' }, full: true };

  constructor(
    private readonly ledger: AuditLedger,
    private readonly fullIntervalMs: number,
    private readonly metrics: Pick<ControlMetrics, 'auditProblems' | 'auditEntries'>,
    private readonly logger: Logger,
  ) {}

  async verify(): Promise<void> {
    const full = Date.now() - this.lastFull >= this.fullIntervalMs;
    const { entries, problems, head } = await this.ledger.verify({ full });
    if (full) this.lastFull = Date.now();
    this.last = { at: new Date().toISOString(), entries, problems: problems.length, head, full };
    this.metrics.auditProblems.set(problems.length);
    this.metrics.auditEntries.set(entries);
    if (problems.length > 0) this.logger.error({ code: 'AUDIT_LEDGER_TAMPERED', problems }, 'the audit ledger does not verify: entries were changed, removed or reordered');
  }
}
