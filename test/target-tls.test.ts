import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, isCdcError } from '@cityshare/shared';
import { PostgresTarget } from '../services/sink/src/targets/postgres.target.js';
import type { TargetTable } from '../services/sink/src/targets/target.js';
import { makeTestCerts, type TestCerts } from './support/test-certs.js';
import { postgresBinDir, startTlsPostgres, type TlsPostgres } from './support/tls-postgres.js';

/**
 * The department hop to PostgreSQL over TLS, against a real PostgreSQL serving TLS: a
 * throw-away instance of the machine's server with a test CA (the machine's own
 * PostgreSQL runs without ssl here and is left alone). Needs no Kafka.
 */
const bin = postgresBinDir();
const logger = createLogger('target-tls-test', 'silent');
const table: TargetTable = {
  name: 'citizens',
  columns: [
    { name: 'id', type: 'long', nullable: false },
    { name: 'district', type: ['null', 'string'], nullable: true },
  ],
  primaryKey: ['id'],
};

describe.skipIf(!bin)('PostgreSQL target over TLS', () => {
  let certs: TestCerts;
  let server: TlsPostgres;
  let admin: pg.Client;

  beforeAll(async () => {
    certs = makeTestCerts();
    server = await startTlsPostgres(bin!, certs);
    // Over the Unix socket: sees every backend, TLS or not.
    admin = new pg.Client({ host: server.socketDir, port: server.port, user: 'postgres', database: 'postgres' });
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.end().catch(() => undefined);
    server?.stop();
  });

  it('writes a row through verify-full TLS, and its backend is encrypted', async () => {
    const app = 'cityshare-tls-verify-full';
    const target = new PostgresTarget({ url: `${server.url}?application_name=${app}`, schema: 'dept_tls', ssl: { mode: 'verify-full', ca: certs.ca } }, logger);
    try {
      await target.connect();
      await target.ensureTable(table);
      const result = await target.apply(table, [{ op: 'c', version: '00000001.0000000100.0000', sourceTsMs: 1_700_000_000_000n, deleted: false, values: { id: '1', district: '海淀' } }]);
      expect(result.applied).toBe(1);
      const { rows } = await admin.query<{ ssl: boolean; version: string }>(
        'SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1',
        [app],
      );
      expect(rows.length).toBeGreaterThan(0);
      for (const r of rows) expect(r.ssl).toBe(true);
      expect((await admin.query('SELECT district FROM dept_tls.citizens WHERE id = 1')).rows).toEqual([{ district: '海淀' }]);
    } finally {
      await target.close();
    }
  });

  it('refuses a server its CA did not sign (verify-full and verify-ca): TARGET_UNREACHABLE naming the host, not the password', async () => {
    for (const mode of ['verify-full', 'verify-ca'] as const) {
      const target = new PostgresTarget({ url: server.url, schema: 'dept_tls', ssl: { mode, ca: certs.otherCa } }, logger);
      try {
        const err = await target.connect().then(() => undefined, (e: unknown) => e);
        expect(isCdcError(err, 'TARGET_UNREACHABLE'), `${mode}: ${String(err)}`).toBe(true);
        const message = (err as Error).message;
        expect(message).toContain(`127.0.0.1:${server.port}`);
        expect(message).toMatch(/certificate/);
        expect(message).not.toContain(server.password);
        expect(JSON.stringify((err as { details?: unknown }).details ?? {})).not.toContain(server.password);
      } finally {
        await target.close();
      }
    }
  });

  it('a wrong password is TARGET_UNREACHABLE without the password in the message', async () => {
    const wrong = server.url.replace(server.password, 'not-the-pw-9c2f');
    const target = new PostgresTarget({ url: wrong, schema: 'dept_tls', ssl: { mode: 'verify-full', ca: certs.ca } }, logger);
    try {
      const err = await target.connect().then(() => undefined, (e: unknown) => e);
      expect(isCdcError(err, 'TARGET_UNREACHABLE'), String(err)).toBe(true);
      expect((err as Error).message).toContain(`127.0.0.1:${server.port}`);
      expect((err as Error).message).not.toContain('not-the-pw-9c2f');
    } finally {
      await target.close();
    }
  });
});
