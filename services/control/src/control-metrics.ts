import { Gauge, type Registry } from 'prom-client';
import { createForgedRecordsCounter } from '@cityshare/shared';

/** The control service's metrics: the state of the ledger, the grants and the settings it publishes. */
export function createControlMetrics(registry: Registry) {
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers: [registry] });
  return {
    forged: createForgedRecordsCounter(registry),
    auditProblems: gauge('cityshare_control_audit_problems', 'Problems the last verification of the audit ledger found (0 = intact)'),
    auditEntries: gauge('cityshare_control_audit_entries', 'Entries in the audit ledger at the last verification'),
    grantsInForce: gauge('cityshare_control_grants_in_force', 'Approved, unexpired grants in the published policy'),
    grantsRefused: gauge('cityshare_control_grants_refused', 'Grants approved in the control database that are left out of the policy because their approval in the ledger does not match (GRANT_TAMPERED)'),
    settingsRefused: gauge('cityshare_control_settings_refused', '1 while the settings or targets in the control database are not the ones a security officer approved last: nothing is published (SETTINGS_TAMPERED)'),
  };
}

export type ControlMetrics = ReturnType<typeof createControlMetrics>;
