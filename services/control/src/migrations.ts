import type { Pool } from 'mysql2/promise';

/**
 * The control-plane schema, versioned: each migration runs once, in order, and is recorded
 * in `schema_migrations`. The schema lives on a MySQL-compatible server of its own (never a
 * database the reader captures).
 */
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
