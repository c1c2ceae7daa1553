import { z } from 'zod';
import { commonServiceEnv } from '@cityshare/shared';

/** The scheduled verifier's settings from the environment; the pipeline file says the rest. */
export const verifierEnv = z.object({
  ...commonServiceEnv('verifier'),
  VERIFY_DEPARTMENTS: z.string().optional().describe('departments to verify, comma-separated (default: every department whose target keeps tables: postgres, mysql, export)'),
  VERIFY_INTERVAL_MS: z.coerce.number().int().min(10_000).default(3_600_000).describe('how often each department is verified against policy(source), table by table (cityshare_verify_* metrics)'),
  VERIFY_SETTLE_MS: z.coerce.number().int().min(1_000).default(120_000).describe('how long a verification waits for a department to catch up with the source before it calls the table unsettled'),
  VERIFY_CONTROL_URL: z.string().url().optional().describe('the control API (e.g. https://control:8090): set, every run is recorded in the audit ledger (POST /verify/runs); needs VERIFY_CONTROL_TOKEN_FILE'),
  VERIFY_CONTROL_TOKEN_FILE: z.string().optional().describe('file holding a control API token of role `service`, for VERIFY_CONTROL_URL'),
  VERIFY_CONTROL_CA: z.string().optional().describe("PEM of the private CA that signed the control API's certificate"),
});

export type VerifierEnv = z.infer<typeof verifierEnv>;
