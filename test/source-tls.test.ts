import ZongJi from '@vlasky/zongji';
import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sourceConnectionOptions, type SourceConfig } from '@cityshare/shared';
import { exactValueOptions } from '../services/cdc-reader/src/source-values.js';
import { makeTestCerts, type TestCerts } from './support/test-certs.js';
import { hasMariadb, startTlsMariadb, type TlsMariadb } from './support/tls-mariadb.js';

/**
 * The source hop over TLS against a real MariaDB that requires it of the reader's account:
 * a throw-away instance with a test CA (the stack's MariaDB is shared and left alone).
 * The binlog stream (zongji's two connections) and a query connection are opened with
 * the reader's own connection options. Needs no Kafka.
 */
const PORT = Number(process.env.TLS_TEST_MARIADB_PORT ?? 3399);

describe.skipIf(!hasMariadb())('source MariaDB over TLS', () => {
  let certs: TestCerts;
  let server: TlsMariadb;
  const source = (ssl?: SourceConfig['connection']['ssl']): SourceConfig => ({
    name: 'tlscheck',
    connection: { host: '127.0.0.1', port: PORT, user: 'tls_reader', password: 'tls_reader', ...(ssl ? { ssl } : {}) },
    serverId: 7301,
    tables: [{ name: 'tlscheck_db.t', columns: { id: 'public' }, appendOnly: false }],
  });

  beforeAll(async () => {
    certs = makeTestCerts();
    server = await startTlsMariadb(certs, PORT);
    const root = await createConnection({ socketPath: server.socket, user: 'root', multipleStatements: true });
    await root.query('CREATE DATABASE tlscheck_db; CREATE TABLE tlscheck_db.t (id INT PRIMARY KEY, v VARCHAR(20))');
    await root.end();
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('queries over TLS with the reader options, and the account refuses a connection in clear', async () => {
    const conn = await createConnection({ ...sourceConnectionOptions(source({ ca: certs.ca, verifyIdentity: true })), ...exactValueOptions });
    const [rows] = await conn.query("SHOW SESSION STATUS LIKE 'Ssl_version'");
    expect((rows as Array<{ Value: string }>)[0]!.Value).toMatch(/^TLSv1\.[23]$/);
    await conn.end();
    await expect(createConnection({ ...sourceConnectionOptions(source()), ...exactValueOptions })).rejects.toThrow(/Access denied/);
    await expect(createConnection({ ...sourceConnectionOptions(source({ ca: certs.otherCa, verifyIdentity: true })), ...exactValueOptions })).rejects.toThrow(/certificate/);
  });

  it('streams the binlog over TLS (zongji opens both its connections with the reader options)', async () => {
    const zongji = new ZongJi({ ...sourceConnectionOptions(source({ ca: certs.ca, verifyIdentity: true })), ...exactValueOptions });
    try {
      const row = new Promise<unknown>((resolve, reject) => {
        zongji.on('error', reject);
        zongji.on('binlog', (evt: { getEventName(): string; rows?: unknown[] }) => {
          if (evt.getEventName() === 'writerows') resolve(evt.rows?.[0]);
        });
      });
      await new Promise<void>((resolve, reject) => {
        zongji.once('ready', () => resolve());
        zongji.once('error', reject);
        zongji.start({ serverId: 7301, startAtEnd: true, includeEvents: ['tablemap', 'writerows'], includeSchema: { tlscheck_db: ['t'] } });
      });
      const root = await createConnection({ socketPath: server.socket, user: 'root' });
      await root.query("INSERT INTO tlscheck_db.t VALUES (1, 'über TLS')");
      await root.end();
      expect(await row).toEqual({ id: 1, v: 'über TLS' });
      // Every connection of the reader account is encrypted (the account requires it anyway).
      const admin = await createConnection({ socketPath: server.socket, user: 'root' });
      const [threads] = await admin.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = 'tls_reader'");
      expect(Number((threads as Array<{ n: number }>)[0]!.n)).toBeGreaterThanOrEqual(2);
      await admin.end();
    } finally {
      zongji.stop();
    }
  });
});
