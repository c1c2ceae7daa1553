/**
 * One catalogue of error codes for every service. Each code says what went wrong and
 * what the operator should do; code, not message text, decides how errors are handled.
 */
export const ERROR_CODES = {
  CONFIG_NOT_FOUND: { retriable: false, action: 'Check the path of the file named (relative paths are from the current directory). Services read the pipeline file from CITYSHARE_PIPELINE, the CLI from -c/--config or CITYSHARE_PIPELINE (on the local stack: deploy/local/pipeline.yaml, or .stack/control/pipeline.yaml once `npm run control` published one); a keyring comes from the pipeline file\'s keyring.file, CITYSHARE_KEYRING or --keyring (a department\'s own: `cdc keys split`).' },
  CONFIG_INVALID: { retriable: false, action: 'Fix every problem listed, then start again; nothing was applied.' },
  SOURCE_UNREACHABLE: { retriable: true, action: 'Check the source host, port and credentials; the reader retries with backoff.' },
  SOURCE_MISCONFIGURED: { retriable: false, action: 'Set the listed server variables on the source (see README "Preparing a source") and restart it.' },
  SOURCE_PRIVILEGES: { retriable: false, action: 'Grant the reader account REPLICATION SLAVE, BINLOG MONITOR (REPLICATION CLIENT on MySQL) and SELECT.' },
  TABLE_NOT_FOUND: { retriable: false, action: "Create the table on the source (and let the reader's account see it), or register or name one that exists: `cdc tables list` shows the catalog, which writes some database names as `${NAME:-default}`; either spelling is accepted." },
  TABLE_WITHOUT_KEY: { retriable: false, action: 'Add a primary key (or a NOT NULL unique key) to the table, or register it with appendOnly: true in the pipeline file (delivered as a change log, not snapshotted).' },
  SERVER_ID_CONFLICT: { retriable: true, action: "Another replica is connected to the source with this reader's replica server id: the source refused this connection (MariaDB) or dropped the older one (MySQL). The reader keeps its checkpoint and connects again with backoff. If the id is set (sources[].serverId or READER_SERVER_ID), give every reader and replica of the source its own, or leave it out so each start picks a random one; run a second reader of a source as a standby (READER_LEASE_REDIS_URL), not beside the active one." },
  BINLOG_PURGED: { retriable: false, action: 'The checkpoint needs a purged binlog; re-snapshot the source (reset its checkpoint) and keep binlogs longer.' },
  KAFKA_UNREACHABLE: { retriable: true, action: 'Check kafka.brokers and the broker health; the service retries with backoff.' },
  KAFKA_AUTH_FAILED: { retriable: false, action: "The brokers refused this principal's credentials: check kafka.sasl (mechanism, username, password or passwordFile) and that the user exists on the cluster (README \"Kafka security\": SCRAM users are created by the cluster's administrators, locally by `npm run stack:up`)." },
  KAFKA_NOT_AUTHORIZED: { retriable: false, action: 'The principal has no ACL for the resource named: `cdc acls plan` lists the ACLs the catalog implies for every principal and `cdc acls apply` (or the control plane) applies them; a department may read only its own share topics, with consumer groups starting <prefix>.department.<name>.' },
  KAFKA_TLS_FAILED: { retriable: false, action: "The broker's certificate is not trusted or does not name the address used: set kafka.ssl.ca to the CA that signed it and reach the brokers by a name or address in their certificates." },
  REGISTRY_UNREACHABLE: { retriable: true, action: 'Check schemaRegistry.url and the registry health; the service retries.' },
  SCHEMA_INCOMPATIBLE: { retriable: false, action: 'The table is paused for this department; review the schema change and register a compatible version.' },
  SCHEMA_UNKNOWN: { retriable: true, action: "A share record names a writer schema the registry does not have (lost storage, a registry restored from an old backup, or another registry's id): its partition is paused and retried with backoff, nothing is skipped. The transformer registers the contracts it holds again within TRANSFORMER_REGISTRY_CHECK_MS and the partition resumes; if it does not (the schema was of a table version the transformer no longer holds), restore the registry's database from a backup. Keep the registry's storage durable (README \"Schema registry in production\")." },
  KEY_NOT_FOUND: { retriable: false, action: 'Add the named key to the keyring (or restore it); ciphertexts name the key id they need.' },
  DECRYPT_FAILED: { retriable: false, action: 'The ciphertext does not verify under this key: wrong key, another binding than it was sealed for (its column; a department value also its row key, department and source), or tampered data.' },
  TARGET_UNREACHABLE: { retriable: true, action: "Check the department target's address and credentials; delivery resumes when it is back." },
  GRANT_REVOKED: { retriable: false, action: 'The grant the data was shared under is no longer in force (revoked, expired or taken out of the pipeline file): its queued and dead-lettered webhook batches were removed from Redis and are not sent, by the sink or by `cdc webhook-replay`. If the department needs the data, it requests the grant again; after approval, re-snapshot the table (`cdc snapshot`) for rows changed meanwhile.' },
  TARGET_REJECTED: { retriable: false, action: 'The target refused the row (constraint or type); see the DLQ entry for the reason.' },
  CONTROL_UNREACHABLE: { retriable: true, action: 'Check --api (or CDC_CONTROL_API) and that the control service runs; for HTTPS with a private CA pass its certificate with --ca (or CDC_CA_FILE).' },
  UNAUTHENTICATED: { retriable: false, action: 'Send Authorization: Bearer <token> with a token the control plane knows (CONTROL_TOKENS holds their SHA-256). Failed logins are logged with the remote address.' },
  AUTH_THROTTLED: { retriable: true, action: 'Too many failed logins came from this address (CONTROL_LOGIN_FAILURES within CONTROL_LOGIN_WINDOW_MS): wait as long as Retry-After says, then use a valid token. If nobody here mistyped a token, look for the guesser in the control log ("control API login failed").' },
  REQUEST_TOO_LARGE: { retriable: false, action: 'Send a smaller request body (at most CONTROL_MAX_BODY_BYTES, 1 MiB by default): split the change, or raise CONTROL_MAX_BODY_BYTES on the control service.' },
  UNKNOWN_ID: { retriable: false, action: 'No grant request or catalog change has this id: `cdc grants list` and `cdc changes list` show the ones there are.' },
  STATE_CONFLICT: { retriable: false, action: 'The grant or change is not in the state this decision needs (only a requested one is approved or rejected, only an approved grant is revoked): `cdc grants list` (or `cdc changes list`) shows its state. Nothing changed. A department that needs a rejected, revoked or expired grant requests it again.' },
  NOT_FOUND: { retriable: false, action: 'The method and path are not an operation of the control API: see services/control/openapi.yaml.' },
  FORBIDDEN: { retriable: false, action: 'Your role may not do this (see the role matrix in the README); the refusal is in the audit ledger. Ask someone with the right role.' },
  QUALITY_FAILED: { retriable: false, action: 'The change breaks a data-quality rule of the pipeline file; it is on the dead-letter topic with its source position. Fix the row at the source (its next change is delivered) or the rule.' },
  RECORD_FORGED: { retriable: false, action: 'A record on an internal topic is not authenticated by the pipeline key (no seal or MAC, or one that does not verify): it was written by something other than the pipeline and was not acted on. Find who can write to that topic (Kafka ACLs) and remove the writer; see the log line for topic, partition and offset. A raw record of the per-event sealed layout of readers before frame sealing is refused too: read it only inside the migration window (TRANSFORMER_ACCEPT_LEGACY_SEALS, README "Upgrading from per-event seals").' },
  EVENT_TOO_LARGE: { retriable: false, action: 'A change event is larger than READER_EVENT_MAX_BYTES, so it cannot be a Kafka message: it was not delivered and went to <prefix>.dlq.reader.<source> with its table, source position and size (its key sealed, no values); the reader went on. Shrink the row at the source (its next change that fits is delivered) or raise READER_EVENT_MAX_BYTES together with the broker\'s message.max.bytes, then re-snapshot the table if the department needs the row.' },
  RECORD_INVALID: { retriable: false, action: 'The record does not match its contract; it went to the dead-letter topic with the reason.' },
  AUDIT_LEDGER_TAMPERED: { retriable: false, action: 'The audit ledger does not verify: the problems name the entries changed, removed or added outside the ledger, or a missing or forged signature. Keep the database as it is for the investigation (a database backup and the last exported ledger show the original entries), and find who wrote to the control database without the control service.' },
  GRANT_TAMPERED: { retriable: false, action: 'A grant approved in the control database is not what a security officer approved (changed, revived or never approved through the control plane): it is not published. Find who wrote to the control database; the audit ledger holds the approved digest. Restore the grant, or have it requested and approved again.' },
  SETTINGS_TAMPERED: { retriable: false, action: 'The settings (kafka, schemaRegistry, keyring) or department targets in the control database are not what a security officer approved last (changed in the database, not through `cdc apply` and `cdc changes approve`): nothing is published until they are (the services keep the last policy). Find who wrote to the control database; the ledger holds the approved digest. Restore the values, or have the DBA apply the intended file and a security officer approve it.' },
  POLICY_SIGNATURE_INVALID: { retriable: false, action: 'The pipeline file is not signed by a trusted policy key (CITYSHARE_POLICY_PUBLIC_KEYS): it was written or edited by something other than the control plane, and nothing in it was applied (a running service keeps its policy). Find who can write the file; change policy through the control plane (cdc apply, cdc grants), which signs what it publishes.' },
  PRODUCER_FENCED: { retriable: true, action: 'Another instance took over a partition this one was writing (its transactional id is per partition, so the newer owner fences the older); the transaction was aborted, nothing was written twice. The service rejoins its group with backoff and goes on with the partitions it is given. If it repeats, look for an instance whose event loop stalls beyond the 8 s group session (/healthz says so).' },
  CONSUMER_CRASHED: { retriable: true, action: 'A Kafka consumer of the service stopped on an error it could not retry (the log line says which); the service restarts it with backoff, from its committed offsets. If it keeps happening, look at the cause named there (broker, registry, target).' },
  INTERNAL: { retriable: false, action: 'A bug: report it with the log line and the correlation id.' },
} as const satisfies Record<string, { retriable: boolean; action: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class CdcError extends Error {
  readonly code: ErrorCode;
  readonly action: string;
  readonly retriable: boolean;
  /** Structured facts safe to log: never row values. */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CdcError';
    this.code = code;
    this.action = ERROR_CODES[code].action;
    this.retriable = ERROR_CODES[code].retriable;
    this.details = options.details ?? {};
  }

  /** One line for a terminal: code, what happened, what to do. */
  override toString(): string {
    return `${this.code}: ${this.message}\n  what to do: ${this.action}`;
  }
}

export function isCdcError(err: unknown, code?: ErrorCode): err is CdcError {
  return err instanceof CdcError && (code === undefined || err.code === code);
}
