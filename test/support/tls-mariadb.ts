import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createConnection } from 'mysql2/promise';
import type { TestCerts } from './test-certs.js';

export interface TlsMariadb {
  port: number;
  socket: string;
  stop(): Promise<void>;
}

export const hasMariadb = (): boolean => spawnSync('mariadbd', ['--version']).status === 0 && spawnSync('which', ['mariadb-install-db']).status === 0;

/**
 * A throw-away MariaDB (the machine's binaries, a temporary datadir, the given port) with
 * the binlog as the stack's, serving TLS with the test certificate; the account
 * `tls_reader` (password tls_reader) has the reader's grants and REQUIRE SSL. The shared
 * stack's MariaDB is left alone.
 */
export async function startTlsMariadb(certs: TestCerts, port: number): Promise<TlsMariadb> {
  const dir = mkdtempSync(join(tmpdir(), 'cityshare-mariadb-tls-'));
  const user = userInfo().username;
  mkdirSync(join(dir, 'binlog'));
  const install = spawnSync('mariadb-install-db', ['--no-defaults', `--user=${user}`, `--datadir=${join(dir, 'data')}`, '--auth-root-authentication-method=normal', '--skip-test-db'], { encoding: 'utf8' });
  if (install.status !== 0) throw new Error(`mariadb-install-db failed: ${install.stderr}`);
  const socket = join(dir, 'mysqld.sock');
  const server = spawn('mariadbd', [
    '--no-defaults', `--user=${user}`, `--datadir=${join(dir, 'data')}`, `--socket=${socket}`, `--port=${port}`, '--bind-address=127.0.0.1',
    '--server-id=1', `--log-bin=${join(dir, 'binlog', 'mariadb-bin')}`, '--binlog-format=ROW', '--binlog-row-image=FULL', '--binlog-row-metadata=FULL',
    `--ssl-ca=${certs.ca}`, `--ssl-cert=${certs.cert}`, `--ssl-key=${certs.key}`, '--innodb-buffer-pool-size=32M', `--log-error=${join(dir, 'error.log')}`,
  ], { stdio: 'ignore' });
  const root = () => createConnection({ socketPath: socket, user: 'root', multipleStatements: true });
  for (let i = 0; ; i++) {
    try {
      const c = await root();
      await c.query(`CREATE USER 'tls_reader'@'%' IDENTIFIED BY 'tls_reader' REQUIRE SSL;
        GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, RELOAD ON *.* TO 'tls_reader'@'%';`);
      await c.end();
      break;
    } catch (err) {
      if (i > 120 || server.exitCode !== null) throw new Error(`the test MariaDB did not start: ${(err as Error).message}`);
      await sleep(250);
    }
  }
  return {
    port,
    socket,
    stop: async () => {
      server.kill('SIGTERM');
      for (let i = 0; i < 120 && server.exitCode === null; i++) await sleep(250);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
