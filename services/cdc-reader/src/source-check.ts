import type { Connection } from 'mysql2/promise';
import { CdcError } from '@cityshare/shared';

export interface SourceServer {
  version: string;
  flavor: 'mariadb' | 'mysql';
  serverId: number;
}

/**
 * Refuses to start against a source that cannot give exact row changes: binlog off,
 * statement format, partial row images, or missing column metadata; lists every problem.
 */
export async function checkSource(conn: Connection): Promise<SourceServer> {
  const [rows] = await conn.query(
    'SELECT @@version AS version, @@server_id AS serverId, @@log_bin AS logBin, @@binlog_format AS format, @@binlog_row_image AS image, @@binlog_row_metadata AS metadata',
  );
  const v = (rows as Array<Record<string, string | number>>)[0]!;
  const problems: string[] = [];
  if (Number(v.logBin) !== 1) problems.push('log_bin is OFF: start the server with log_bin enabled');
  if (String(v.format).toUpperCase() !== 'ROW') problems.push(`binlog_format is ${v.format}: set binlog_format=ROW`);
  if (String(v.image).toUpperCase() !== 'FULL') problems.push(`binlog_row_image is ${v.image}: set binlog_row_image=FULL`);
  if (String(v.metadata).toUpperCase() !== 'FULL') problems.push(`binlog_row_metadata is ${v.metadata}: set binlog_row_metadata=FULL`);
  if (problems.length > 0) {
    throw new CdcError('SOURCE_MISCONFIGURED', `source is not ready for change capture:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  try {
    await conn.query('SHOW BINARY LOGS');
  } catch (cause) {
    throw new CdcError('SOURCE_PRIVILEGES', 'the reader account may not list binary logs (needs BINLOG MONITOR or REPLICATION CLIENT)', { cause });
  }
  return {
    version: String(v.version),
    flavor: String(v.version).toLowerCase().includes('mariadb') ? 'mariadb' : 'mysql',
    serverId: Number(v.serverId),
  };
}

/** MySQL 8.2 renamed SHOW MASTER STATUS, and 8.4 removed the old name; MariaDB knows only the old one. */
const STATUS_STATEMENTS = ['SHOW MASTER STATUS', 'SHOW BINARY LOG STATUS'] as const;
const statusStatement = new WeakMap<Connection, (typeof STATUS_STATEMENTS)[number]>();
const ER_PARSE_ERROR = 1064;

/** The current end of the binlog: where streaming starts when there is no checkpoint. */
/** Binlog dump connections of this connection's account (an account sees its own sessions without PROCESS). */
export async function otherBinlogReaders(conn: Connection): Promise<number> {
  const [rows] = await conn.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' AND USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1)");
  return Number((rows as Array<{ n: number | string }>)[0]?.n ?? 0);
}

export async function binlogEnd(conn: Connection): Promise<{ file: string; pos: number }> {
  let rows: unknown;
  const known = statusStatement.get(conn);
  if (known) {
    [rows] = await conn.query(known);
  } else {
    for (const statement of STATUS_STATEMENTS) {
      try {
        [rows] = await conn.query(statement);
        statusStatement.set(conn, statement);
        break;
      } catch (err) {
        if ((err as { errno?: number }).errno !== ER_PARSE_ERROR || statement === STATUS_STATEMENTS[STATUS_STATEMENTS.length - 1]) throw err;
      }
    }
  }
  const row = (rows as Array<{ File: string; Position: number }>)[0];
  if (!row) throw new CdcError('SOURCE_MISCONFIGURED', 'the binlog status (SHOW MASTER STATUS / SHOW BINARY LOG STATUS) returned nothing: is log_bin enabled?');
  return { file: row.File, pos: Number(row.Position) };
}

export interface BinlogFiles {
  /** Binlog files still on the server, oldest first. */
  files: string[];
  end: { file: string; pos: number };
}

export async function binlogFiles(conn: Connection): Promise<BinlogFiles> {
  const [rows] = await conn.query('SHOW BINARY LOGS');
  const files = (rows as Array<{ Log_name: string }>).map((r) => r.Log_name);
  if (files.length === 0) throw new CdcError('SOURCE_MISCONFIGURED', 'SHOW BINARY LOGS returned nothing: is log_bin enabled?');
  return { files, end: await binlogEnd(conn) };
}

/** The oldest binlog still on the server. */
export async function binlogStart(conn: Connection): Promise<{ file: string; pos: number }> {
  return { file: (await binlogFiles(conn)).files[0]!, pos: 4 };
}
