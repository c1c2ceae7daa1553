import type { Pool } from 'mysql2/promise';

/**
 * The control-plane schema, versioned: each migration runs once, in order, and is recorded
 * in `schema_migrations`. The schema lives on a MySQL-compatible server of its own (never a
 * database the reader captures).
 */
/** The migration that introduced the signed head: the start that applies it signs the ledger's existing head. */
export const SIGNED_HEAD_MIGRATION = 4;
/** The migration that made settings and target changes wait for a security officer: the start that applies it attests the catalog as it is. */
export const CATALOG_CHANGES_MIGRATION = 5;

const MIGRATIONS: Array<{ version: number; name: string; sql: string[] }> = [
  {
    version: 1,
    name: 'audit ledger',
    sql: [
      `CREATE TABLE audit_ledger (
         seq BIGINT UNSIGNED NOT NULL PRIMARY KEY,
         at DATETIME(6) NOT NULL,
         actor VARCHAR(128) NOT NULL,
         role VARCHAR(32) NOT NULL,
         action VARCHAR(64) NOT NULL,
         subject VARCHAR(255) NOT NULL,
         details LONGTEXT NOT NULL,
         prev_hash CHAR(64) NOT NULL,
         hash CHAR(64) NOT NULL
       ) DEFAULT CHARSET = utf8mb4`,
      `CREATE TABLE audit_checkpoints (
         seq BIGINT UNSIGNED NOT NULL PRIMARY KEY,
         hash CHAR(64) NOT NULL,
         signed_at DATETIME(6) NOT NULL,
         key_id VARCHAR(128) NOT NULL,
         signature CHAR(64) NOT NULL
       ) DEFAULT CHARSET = utf8mb4`,
    ],
  },
  {
    version: 2,
    name: 'grant requests',
    sql: [
      `CREATE TABLE grant_requests (
         id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
         department VARCHAR(64) NOT NULL,
         table_ref VARCHAR(255) NOT NULL,
         spec LONGTEXT NOT NULL,
         purpose VARCHAR(1000) NOT NULL,
         expires_at DATETIME(6) NULL,
         status ENUM('requested', 'approved', 'rejected', 'revoked', 'expired') NOT NULL,
         requested_by VARCHAR(128) NOT NULL,
         decided_by VARCHAR(128) NULL,
         reason VARCHAR(1000) NULL,
         created_at DATETIME(6) NOT NULL,
         decided_at DATETIME(6) NULL,
         KEY by_department (department, status)
       ) DEFAULT CHARSET = utf8mb4`,
    ],
  },
  {
    version: 3,
    name: 'catalog, key versions, delivery records',
    sql: [
      `CREATE TABLE catalog_settings (name VARCHAR(64) NOT NULL PRIMARY KEY, value LONGTEXT NOT NULL) DEFAULT CHARSET = utf8mb4`,
      `CREATE TABLE catalog_sources (name VARCHAR(64) NOT NULL PRIMARY KEY, ordinal INT NOT NULL, spec LONGTEXT NOT NULL) DEFAULT CHARSET = utf8mb4`,
      `CREATE TABLE catalog_tables (
         source VARCHAR(64) NOT NULL, name VARCHAR(255) NOT NULL, ordinal INT NOT NULL, spec LONGTEXT NOT NULL,
         PRIMARY KEY (source, name)
       ) DEFAULT CHARSET = utf8mb4`,
      `CREATE TABLE catalog_columns (
         source VARCHAR(64) NOT NULL, table_name VARCHAR(255) NOT NULL, column_name VARCHAR(64) NOT NULL,
         class VARCHAR(32) NOT NULL, ordinal INT NOT NULL,
         PRIMARY KEY (source, table_name, column_name)
       ) DEFAULT CHARSET = utf8mb4`,
      `CREATE TABLE catalog_departments (name VARCHAR(64) NOT NULL PRIMARY KEY, ordinal INT NOT NULL, spec LONGTEXT NOT NULL) DEFAULT CHARSET = utf8mb4`,
      // Key ids only: key material never leaves the keyring.
      `CREATE TABLE key_versions (
         key_id VARCHAR(128) NOT NULL PRIMARY KEY, key_name VARCHAR(128) NOT NULL,
         created_at DATETIME(6) NOT NULL, created_by VARCHAR(128) NOT NULL,
         KEY by_name (key_name)
       ) DEFAULT CHARSET = utf8mb4`,
      // Delivery records are found by subject, so a batch reported twice is recorded once.
      `CREATE INDEX by_subject ON audit_ledger (subject)`,
    ],
  },
  {
    version: SIGNED_HEAD_MIGRATION,
    name: 'signed ledger head, checkpoint signature schemes',
    sql: [
      // One row: the last entry, signed in the transaction of every append, so no entry is unsigned.
      `CREATE TABLE audit_head (
         id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
         seq BIGINT UNSIGNED NOT NULL,
         hash CHAR(64) NOT NULL,
         key_id VARCHAR(128) NOT NULL,
         signature CHAR(64) NOT NULL,
         signed_at DATETIME(6) NOT NULL
       ) DEFAULT CHARSET = utf8mb4`,
      // v1: HMAC under the audit key's bytes (before version 4); v2: under its HKDF subkey.
      `ALTER TABLE audit_checkpoints ADD COLUMN scheme CHAR(2) NOT NULL DEFAULT 'v1'`,
    ],
  },
  {
    version: CATALOG_CHANGES_MIGRATION,
    name: 'catalog changes awaiting a security officer',
    sql: [
      // A DBA's change of settings or targets: the catalog it would make, applied only once approved.
      `CREATE TABLE catalog_changes (
         id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
         status ENUM('requested', 'approved', 'rejected') NOT NULL,
         document LONGTEXT NOT NULL,
         changes LONGTEXT NOT NULL,
         base_sha256 CHAR(64) NOT NULL,
         requested_by VARCHAR(128) NOT NULL,
         requested_at DATETIME(6) NOT NULL,
         reason VARCHAR(1000) NULL,
         decided_by VARCHAR(128) NULL,
         decided_at DATETIME(6) NULL,
         decision_reason VARCHAR(1000) NULL,
         KEY by_status (status)
       ) DEFAULT CHARSET = utf8mb4`,
    ],
  },
];

/** Applies the migrations not yet applied; returns the versions it applied. */
export async function migrate(conn: Pick<Pool, 'query'>): Promise<number[]> {
  await conn.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INT NOT NULL PRIMARY KEY, name VARCHAR(128) NOT NULL, applied_at DATETIME(6) NOT NULL)');
  const [rows] = await conn.query('SELECT version FROM schema_migrations');
  const done = new Set((rows as Array<{ version: number }>).map((r) => r.version));
  const applied: number[] = [];
  for (const m of MIGRATIONS) {
    if (done.has(m.version)) continue;
    for (const statement of m.sql) await conn.query(statement);
    await conn.query('INSERT INTO schema_migrations VALUES (?, ?, UTC_TIMESTAMP(6))', [m.version, m.name]);
    applied.push(m.version);
  }
  return applied;
}
