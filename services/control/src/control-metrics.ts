import { Gauge, type Registry } from 'prom-client';
import { createForgedRecordsCounter } from '@cityshare/shared';

/** The control service's own metrics (besides process metrics and cityshare_dependency_up). */
export function createControlMetrics(registry: Registry) {
  return {
    forged: createForgedRecordsCounter(registry),
    auditProblems: new Gauge({ name: 'cityshare_control_audit_problems', help: 'Problems the last verification of the audit ledger found (0 = intact)', registers: [registry] }),
    auditEntries: new Gauge({ name: 'cityshare_control_audit_entries', help: 'Entries in the audit ledger at the last verification', registers: [registry] }),
    grantsInForce: new Gauge({ name: 'cityshare_control_grants_in_force', help: 'Approved, unexpired grants in the published policy', registers: [registry] }),
    grantsRefused: new Gauge({ name: 'cityshare_control_grants_refused', help: 'Grants approved in the control database that are left out of the policy because their approval in the ledger does not match (GRANT_TAMPERED)', registers: [registry] }),
    settingsRefused: new Gauge({ name: 'cityshare_control_settings_refused', help: '1 while the settings or targets in the control database are not the ones a security officer approved last: nothing is published (SETTINGS_TAMPERED)', registers: [registry] }),
  };
}

export type ControlMetrics = ReturnType<typeof createControlMetrics>;
