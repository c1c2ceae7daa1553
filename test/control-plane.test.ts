import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, createPool, type Pool } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring, isCdcError } from '@cityshare/shared';
import { GrantWorkflow } from '../services/control/src/grants.js';
import { AuditLedger } from '../services/control/src/ledger.js';
import { migrate } from '../services/control/src/migrations.js';
import type { Principal, Role } from '../services/control/src/roles.js';
import { stack } from './support/stack.js';

/** The control plane's catalog database on a real MariaDB (the machine's own, :3306): ledger and grant workflow. */
describe('control plane', () => {
  const id = `c${Date.now().toString(36)}`;
  const keys = new FileKeyring({ version: 1, keys: { audit: [{ id: 'audit-1', material: Buffer.alloc(32, 9).toString('base64') }] } });
  const opened: Array<{ conn: Pool; db: string }> = [];
  const keyringFile = join(tmpdir(), `${id}-keyring.json`);
  writeFileSync(keyringFile, JSON.stringify({ version: 1, keys: { audit: [{ id: 'audit-1', material: Buffer.alloc(32, 9).toString('base64') }] } }));

  /** A fresh control-plane database with `entries` ledger entries (checkpoints every 3). */
  async function fresh(entries = 0): Promise<{ conn: Pool; ledger: AuditLedger }> {
    const db = `${id}_ctl_${opened.length}`;
    const admin = await createConnection({ ...stack.targetMariadb });
    await admin.query(`CREATE DATABASE \`${db}\``);
    await admin.end();
    const conn = createPool({ ...stack.targetMariadb, database: db, charset: 'utf8mb4', connectionLimit: 4 });
    opened.push({ conn, db });
    expect(await migrate(conn)).toEqual([1, 2]);
    const ledger = new AuditLedger(conn, keys, 3);
    for (let i = 1; i <= entries; i++) await ledger.append({ actor: 'alice', role: 'dba', action: 'table.classify', subject: `civil.citizens`, details: { column: `c${i}`, class: 'personal' } });
    return { conn, ledger };
  }

  afterAll(async () => {
    for (const { conn, db } of opened) {
      await conn.query(`DROP DATABASE IF EXISTS \`${db}\``);
      await conn.end();
    }
  });

  describe('audit ledger', () => {
    it('applies its migrations once', async () => {
      const { conn } = await fresh();
      expect(await migrate(conn)).toEqual([]);
    });

    it('verifies an untouched chain', async () => {
      const { ledger } = await fresh(7);
      expect(await ledger.verify()).toEqual({ entries: 7, problems: [] });
    });

    it('detects a modified entry, also from the command line', async () => {
      const { conn, ledger } = await fresh(6);
      const verifyCli = () => spawnSync(process.execPath, ['packages/cli/bin/cdc.js', 'audit-verify', '--control-url', `mysql://root@${stack.targetMariadb.host}:${stack.targetMariadb.port}/${opened.at(-1)!.db}`, '--keyring', keyringFile], { cwd: stack.root, encoding: 'utf8' });
      expect(verifyCli()).toMatchObject({ status: 0, stdout: 'audit ledger intact: 6 entries\n' });
      await conn.query(`UPDATE audit_ledger SET details = '{"column":"c2","class":"public"}' WHERE seq = 2`);
      expect((await ledger.verify()).problems).toContainEqual(expect.objectContaining({ seq: 2, kind: 'modified' }));
      const tampered = verifyCli();
      expect(tampered.status).toBe(2);
      expect(tampered.stdout).toContain('entry 2: modified');
    });

    it('detects a deleted entry', async () => {
      const { conn, ledger } = await fresh(6);
      await conn.query('DELETE FROM audit_ledger WHERE seq = 4');
      expect((await ledger.verify()).problems).toContainEqual(expect.objectContaining({ seq: 4, kind: 'missing' }));
    });

    it('detects reordered entries', async () => {
      const { conn, ledger } = await fresh(6);
      await conn.query('UPDATE audit_ledger SET seq = 99 WHERE seq = 2');
      await conn.query('UPDATE audit_ledger SET seq = 2 WHERE seq = 3');
      await conn.query('UPDATE audit_ledger SET seq = 3 WHERE seq = 99');
      const { problems } = await ledger.verify();
      expect(problems).toContainEqual(expect.objectContaining({ seq: 2, kind: 'reordered' }));
      expect(problems.some((p) => p.kind === 'modified')).toBe(true);
    });

    it('detects a truncated tail behind a signed checkpoint, and a forged checkpoint', async () => {
      const { conn, ledger } = await fresh(6);
      await conn.query('DELETE FROM audit_ledger WHERE seq >= 5');
      expect((await ledger.verify()).problems).toContainEqual(expect.objectContaining({ seq: 6, kind: 'truncated' }));
      await conn.query("UPDATE audit_checkpoints SET signature = REPEAT('0', 64) WHERE seq = 3");
      expect((await ledger.verify()).problems).toContainEqual(expect.objectContaining({ seq: 3, kind: 'checkpoint-forged' }));
    });
  });

  describe('grant workflow', () => {
    let grants: GrantWorkflow;
    let ledger: AuditLedger;
    const who = (role: Role, department?: string): Principal => ({ name: `${role}-user`, role, ...(department ? { department } : {}) });
    const health = who('department', 'health');
    const officer = who('security-officer');
    const spec = { columns: { id: 'pass', name: { mask: 'name' } }, filter: 'district == "海淀"' };

    beforeAll(async () => {
      const f = await fresh();
      ledger = f.ledger;
      grants = new GrantWorkflow(f.conn, ledger);
    });

    it('puts a grant in force only once a security officer approves it, and takes it out on revoke', async () => {
      const g = await grants.request(health, { department: 'health', table: 'cityhub.civil.citizens', spec, purpose: 'vaccination follow-up' });
      expect(g).toMatchObject({ status: 'requested', requestedBy: 'department-user', spec });
      expect(await grants.inForce()).toEqual([]);
      await grants.approve(officer, g.id, 'needed for the 2026 campaign');
      expect((await grants.inForce()).map((x) => x.id)).toEqual([g.id]);
      await grants.revoke(officer, g.id, 'campaign over');
      expect(await grants.inForce()).toEqual([]);
      await expect(grants.approve(officer, g.id, 'again')).rejects.toThrow(/is revoked/);
    });

    it('lets a grant lapse at its expiry', async () => {
      const g = await grants.request(health, { department: 'health', table: 'cityhub.civil.citizens', spec, purpose: 'one-off study', expiresAt: new Date(Date.now() + 1500) });
      await grants.approve(officer, g.id, 'short study');
      expect((await grants.inForce()).map((x) => x.id)).toContain(g.id);
      expect(await grants.inForce(new Date(Date.now() + 2000))).toEqual([]);
      await new Promise((r) => setTimeout(r, 1600));
      expect(await grants.expire()).toEqual([g.id]);
      expect((await grants.get(g.id)).status).toBe('expired');
    });

    it('allows each operation only to its roles, and audits every refusal', async () => {
      const g = await grants.request(health, { department: 'health', table: 'cityhub.civil.citizens', spec, purpose: 'matrix' });
      const roles: Role[] = ['dba', 'security-officer', 'department', 'sre', 'auditor'];
      const outcome = async (f: () => Promise<unknown>) => f().then(() => 'allowed', (err: unknown) => (isCdcError(err, 'FORBIDDEN') ? 'denied' : `error ${(err as Error).message}`));
      const matrix: Record<string, Record<Role, string>> = {};
      for (const role of roles) {
        const p = who(role, role === 'department' ? 'health' : undefined);
        (matrix.request ??= {} as Record<Role, string>)[role] = await outcome(() => grants.request(p, { department: 'health', table: 'cityhub.civil.citizens', spec, purpose: 'matrix' }));
        (matrix.list ??= {} as Record<Role, string>)[role] = await outcome(() => grants.list(p));
        (matrix.reject ??= {} as Record<Role, string>)[role] = await outcome(() => grants.reject(p, g.id, 'matrix'));
      }
      expect(matrix).toEqual({
        request: { dba: 'denied', 'security-officer': 'denied', department: 'allowed', sre: 'denied', auditor: 'denied' },
        list: { dba: 'allowed', 'security-officer': 'allowed', department: 'allowed', sre: 'denied', auditor: 'allowed' },
        reject: { dba: 'denied', 'security-officer': 'allowed', department: 'denied', sre: 'denied', auditor: 'denied' },
      });
      // A department acts for itself only, and sees only its own requests.
      await expect(grants.request(who('department', 'haidian'), { department: 'health', table: 'cityhub.civil.citizens', spec, purpose: 'x' })).rejects.toThrow(/may not act for health/);
      expect((await grants.list(who('department', 'haidian')))).toEqual([]);
      const denied = (await ledger.entries()).filter((e) => e.action.startsWith('denied:'));
      expect(denied.length).toBe(4 + 1 + 4 + 1);
      expect(await ledger.verify()).toMatchObject({ problems: [] });
    });
  });
});
