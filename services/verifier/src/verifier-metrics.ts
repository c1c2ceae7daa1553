import { Counter, Gauge, type Registry } from 'prom-client';

/** What the scheduled verifier says of each department's tables (labels: never a key or a value). */
export function createVerifierMetrics(registry: Registry) {
  const labelNames = ['department', 'table'] as const;
  return {
    compared: new Counter({ name: 'cityshare_verify_rows_compared_total', help: 'Keys compared between policy(source) and what the department holds', labelNames, registers: [registry] }),
    divergent: new Gauge({ name: 'cityshare_verify_divergent_rows', help: 'Rows the last verification found the department holding otherwise than policy(source): missing, extra or different (0 = equal)', labelNames: [...labelNames, 'kind'] as const, registers: [registry] }),
    unsettled: new Gauge({ name: 'cityshare_verify_unsettled_rows', help: 'Rows that kept changing under every look of the last verification (not a difference; compared again next run)', labelNames, registers: [registry] }),
    lastRun: new Gauge({ name: 'cityshare_verify_last_run_timestamp_seconds', help: 'When the last verification of the table finished (settled or not)', labelNames, registers: [registry] }),
    seconds: new Gauge({ name: 'cityshare_verify_run_seconds', help: 'How long the last verification of the table took', labelNames, registers: [registry] }),
    sourceQueries: new Counter({ name: 'cityshare_verify_source_queries_total', help: 'Queries the verifications sent to the source (the load they put on it)', labelNames, registers: [registry] }),
    sourceRows: new Counter({ name: 'cityshare_verify_source_rows_read_total', help: 'Source rows the verifications read', labelNames, registers: [registry] }),
    failures: new Counter({ name: 'cityshare_verify_failures_total', help: 'Verifications that could not run (source, target or Kafka unreachable, a grant it cannot read), by error code', labelNames: ['department', 'code'] as const, registers: [registry] }),
  };
}

export type VerifierMetrics = ReturnType<typeof createVerifierMetrics>;
