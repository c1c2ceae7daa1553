import { z } from 'zod';
import { commonServiceEnv } from '@cityshare/shared';
import { DEFAULT_API_LIMITS } from './api.js';

/** Control service settings from the environment; the catalog database holds the rest. */
export const controlEnv = z.object({
  ...commonServiceEnv('control'),
  CONTROL_DB_URL: z.string().regex(/^mysql:\/\//).describe('mysql://user:password@host:port/database of the control plane (created tables are migrated at start)'),
  CONTROL_BASE_PIPELINE: z.string().optional().describe('a pipeline file (sources, column classes, departments and targets; no grants) imported into the catalog when the catalog is empty; later changes go through `cdc apply`'),
  CONTROL_KEYRING: z.string().describe('keyring holding the audit key (`audit`) that signs the ledger and the policy key (`policy`) that signs the published pipeline file'),
  CONTROL_TOKENS: z.string().describe('JSON file: [{ tokenSha256, name, role, department? }]'),
  CONTROL_PORT: z.coerce.number().int().min(0).default(8090).describe('port of the HTTP API'),
  CONTROL_HOST: z.string().default('127.0.0.1').describe('address the HTTP API listens on'),
  CONTROL_TLS_CERT: z.string().optional().describe('PEM certificate chain: with CONTROL_TLS_KEY the API is served over HTTPS only'),
  CONTROL_TLS_KEY: z.string().optional().describe('PEM private key of CONTROL_TLS_CERT'),
  CONTROL_MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(DEFAULT_API_LIMITS.maxBodyBytes).describe('largest request body the API reads; a larger one answers 413 REQUEST_TOO_LARGE'),
  CONTROL_LOGIN_FAILURES: z.coerce.number().int().min(1).default(DEFAULT_API_LIMITS.loginFailures.max).describe('failed logins (unknown token) from one address within CONTROL_LOGIN_WINDOW_MS after which the address is answered 429 AUTH_THROTTLED until the window ends'),
  CONTROL_LOGIN_WINDOW_MS: z.coerce.number().int().min(1000).default(DEFAULT_API_LIMITS.loginFailures.windowMs).describe('window of CONTROL_LOGIN_FAILURES, from the first failure of an address'),
  CONTROL_SESSION_IDLE_MS: z.coerce.number().int().min(60_000).default(DEFAULT_API_LIMITS.session.idleMs).describe('a web console session unused this long ends (sessions live in the control process: a restart ends them all)'),
  CONTROL_SESSION_MAX_MS: z.coerce.number().int().min(60_000).default(DEFAULT_API_LIMITS.session.maxMs).describe('a web console session ends this long after sign-in, however busy'),
  CONTROL_CONSOLE_DIR: z.string().optional().describe('the web console\'s built assets (`npm run build` writes services/control/dist/console, the default)'),
  CONTROL_METRICS_TARGETS: z.string().optional().describe('a Prometheus file_sd file (JSON or YAML: [{targets: ["host:port", …]}]) listing the services\' metrics endpoints, read at each request: the pipeline status (GET /pipeline/status, the console) shows positions, lag, snapshots, paused tables and dead letters from them'),
  CONTROL_VERIFY_INTERVAL_MS: z.coerce.number().int().min(1000).default(60_000).describe('how often the audit ledger is verified incrementally: the entries since the last verified checkpoint, every checkpoint and the signed head (cityshare_control_audit_problems)'),
  CONTROL_FULL_VERIFY_INTERVAL_MS: z.coerce.number().int().min(1000).default(3_600_000).describe('how often (and at start) the audit ledger is verified in full, every entry rehashed'),
  CONTROL_PUBLISH_INTERVAL_MS: z.coerce.number().int().min(100).default(1000).describe('how often expiry is applied and the grants in force are published'),
  CONTROL_SOURCE_CHECK: z.enum(['on', 'off']).default('on').describe("on: registering or classifying a table checks it on the source first, through the source's connection settings resolved in this environment (so give the control service the reader's credentials, e.g. SOURCE_PASSWORD): it must exist, have a key (or be append-only) and have every classified column; off: no check (the reader still refuses at start)"),
  CONTROL_KAFKA_ACLS: z.enum(['manage', 'off']).default('manage').describe("manage: keep the Kafka ACLs of the pipeline's prefix in step with the published policy, as the control principal (needs Alter on the cluster); off: the cluster's administrators apply `cdc acls plan` themselves"),
});
