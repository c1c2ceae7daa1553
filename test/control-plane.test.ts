import { spawn, spawnSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, createPool, type Pool } from 'mysql2/promise';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring, canonicalJson, createLogger, isCdcError } from '@cityshare/shared';
import { AclKeeper } from '../services/control/src/acl-keeper.js';
import { startApi, type ApiLimits } from '../services/control/src/api.js';
import { CatalogStore, describeChange } from '../services/control/src/catalog.js';
import { CatalogWorkflow } from '../services/control/src/catalog-workflow.js';
import { GrantWorkflow } from '../services/control/src/grants.js';
import { KeyAdmin } from '../services/control/src/keys.js';
import { AuditLedger, GENESIS, entryHash } from '../services/control/src/ledger.js';
import { migrate } from '../services/control/src/migrations.js';
import { PolicyPublisher } from '../services/control/src/policy-publisher.js';
import { probeTables } from '../services/control/src/source-probe.js';
import type { Principal, Role } from '../services/control/src/roles.js';
import { stack } from '../scripts/support/stack.js';

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
    expect(await migrate(conn)).toEqual([1, 2, 3, 4, 5]);
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
      expect(await ledger.verify()).toMatchObject({ entries: 7, head: { seq: 7 }, rehashed: 7, problems: [] });
    });

    it('detects a modified entry, also from the command line', async () => {
      const { conn, ledger } = await fresh(6);
      const verifyCli = () => spawnSync(process.execPath, ['packages/cli/bin/cdc.js', 'audit-verify', '--control-url', `mysql://root@${stack.targetMariadb.host}:${stack.targetMariadb.port}/${opened.at(-1)!.db}`, '--keyring', keyringFile], { cwd: stack.root, encoding: 'utf8' });
      expect(verifyCli()).toMatchObject({ status: 0, stdout: expect.stringMatching(/^audit ledger intact: 6 entries, signed head 6 [0-9a-f]{64}\n$/) });
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

    /** An insider with write access to the control database rewrites entry 2 and everything it would betray. */
    async function rewriteChain(conn: Pool, from: number): Promise<void> {
      const [rows] = await conn.query("SELECT seq, DATE_FORMAT(at, '%Y-%m-%dT%H:%i:%s.%fZ') AS at, actor, role, action, subject, details, prev_hash AS prevHash FROM audit_ledger ORDER BY seq");
      let prevHash = GENESIS;
      for (const r of rows as Array<Record<string, string>>) {
        const e = { seq: Number(r.seq), at: r.at!, actor: r.actor!, role: r.role!, action: r.action!, subject: r.subject!, details: JSON.parse(r.details!) as Record<string, unknown> };
        const hash = entryHash(prevHash, e);
        if (e.seq >= from) await conn.query('UPDATE audit_ledger SET prev_hash = ?, hash = ? WHERE seq = ?', [prevHash, hash, e.seq]);
        prevHash = hash;
      }
    }

    it('detects a rewritten chain whose checkpoints were deleted, and a tail deleted past the last checkpoint', async () => {
      const { conn, ledger } = await fresh(7);
      await conn.query(`UPDATE audit_ledger SET details = '{"column":"c2","class":"public"}' WHERE seq = 2`);
      await conn.query('DELETE FROM audit_checkpoints');
      await rewriteChain(conn, 2);
      const { problems } = await ledger.verify();
      expect(problems).toContainEqual(expect.objectContaining({ seq: 3, kind: 'checkpoint-missing' }));
      expect(problems).toContainEqual(expect.objectContaining({ seq: 6, kind: 'checkpoint-missing' }));
      expect(problems).toContainEqual(expect.objectContaining({ seq: 7, kind: 'modified', message: 'entry 7 differs from the signed head' }));
      // The head names the rewritten hash now, but its signature cannot follow without the audit key.
      const [[last]] = (await conn.query('SELECT hash FROM audit_ledger WHERE seq = 7')) as unknown as [[{ hash: string }]];
      await conn.query('UPDATE audit_head SET hash = ?', [last!.hash]);
      expect((await ledger.verify()).problems).toContainEqual(expect.objectContaining({ seq: 7, kind: 'head-forged' }));

      // The last entries (after checkpoint 6) are covered by the signed head.
      const other = await fresh(8);
      await other.conn.query('DELETE FROM audit_ledger WHERE seq >= 7');
      expect((await other.ledger.verify()).problems).toContainEqual(expect.objectContaining({ seq: 8, kind: 'truncated' }));
    });

    it('verifies incrementally from the last verified checkpoint, and remembers how long the ledger was', async () => {
      const { conn, ledger } = await fresh(6);
      const append = (i: number) => ledger.append({ actor: 'bob', role: 'sre', action: 'key.rotate', subject: 'pipeline', details: { n: i } });
      expect(await ledger.verify()).toMatchObject({ rehashed: 6, full: true, problems: [] });
      await append(7);
      // Checkpoint 6 was verified: only entry 7 is rehashed, not the whole chain.
      expect(await ledger.verify({ full: false })).toMatchObject({ entries: 7, rehashed: 1, full: false, problems: [] });
      // An old head, saved by an insider, restored after cutting the entry it does not cover.
      const [[saved]] = (await conn.query('SELECT * FROM audit_head')) as unknown as [[Record<string, unknown>]];
      await append(8);
      expect((await ledger.verify({ full: false })).problems).toEqual([]);
      await conn.query('DELETE FROM audit_ledger WHERE seq = 8');
      await conn.query('REPLACE INTO audit_head VALUES (?, ?, ?, ?, ?, ?)', [saved!.id, saved!.seq, saved!.hash, saved!.key_id, saved!.signature, saved!.signed_at]);
      expect((await ledger.verify({ full: false })).problems).toContainEqual(expect.objectContaining({ seq: 8, kind: 'truncated' }));
      // A fresh verifier (no memory) sees the restored head as valid: docs/control-plane.md says to note the head down.
      expect((await new AuditLedger(conn, keys, 3).verify()).problems).toEqual([]);
      // An entry removed from the verified part is seen by the count, a full run names it.
      await conn.query('DELETE FROM audit_ledger WHERE seq = 2');
      expect((await ledger.verify({ full: false })).problems).toContainEqual(expect.objectContaining({ kind: 'missing' }));
      expect((await ledger.verify()).problems).toContainEqual(expect.objectContaining({ seq: 2, kind: 'missing' }));
    });

    it('accepts checkpoints signed before the signed head, and refuses a checkpoint signed with a key of another list', async () => {
      const { conn, ledger } = await fresh(6);
      // As version 3 signed them: HMAC under the audit key's own bytes.
      const material = keys.activeKey('audit').material;
      const [rows] = await conn.query('SELECT seq, hash FROM audit_checkpoints');
      for (const c of rows as Array<{ seq: number; hash: string }>) {
        const legacy = createHmac('sha256', material).update(`cityshare-audit:${c.seq}:${c.hash}`).digest('hex');
        await conn.query("UPDATE audit_checkpoints SET signature = ?, scheme = 'v1' WHERE seq = ?", [legacy, c.seq]);
      }
      expect((await ledger.verify()).problems).toEqual([]);
      // A key of another list (a department's KEK the attacker holds) never signs for the ledger.
      const mixed = new FileKeyring({ version: 1, keys: { audit: [{ id: 'audit-1', material: Buffer.alloc(32, 9).toString('base64') }], 'department:health': [{ id: 'health-1', material: Buffer.alloc(32, 1).toString('base64') }] } });
      const forged = createHmac('sha256', mixed.keyById('health-1').material).update('cityshare-audit:3:x').digest('hex');
      await conn.query("UPDATE audit_checkpoints SET key_id = 'health-1', signature = ? WHERE seq = 3", [forged]);
      expect((await new AuditLedger(conn, mixed, 3).verify()).problems).toContainEqual(expect.objectContaining({ seq: 3, kind: 'checkpoint-forged', message: expect.stringContaining('not a key of the audit list') }));
    });
  });

  describe('grant workflow', () => {
    let grants: GrantWorkflow;
    let ledger: AuditLedger;
    const who = (role: Role, department?: string): Principal => ({ name: `${role}-user`, role, ...(department ? { department } : {}) });
    const health = who('department', 'health');
    const officer = who('security-officer');
    const spec = { columns: { id: 'pass', name: { mask: 'name' } }, filter: 'district == "海淀"' };
    const refused: Array<{ id: number; problem: string }> = [];

    beforeAll(async () => {
      const f = await fresh();
      ledger = f.ledger;
      grants = new GrantWorkflow(f.conn, ledger, undefined, (g, problem) => void refused.push({ id: g.id, problem }));
    });

    it('puts a grant in force only once a security officer approves it, and takes it out on revoke', async () => {
      const g = await grants.request(health, { department: 'health', table: 'cityhub.civil.citizens', spec, purpose: 'vaccination follow-up' });
      expect(g).toMatchObject({ status: 'requested', requestedBy: 'department-user', spec });
      expect(await grants.inForce()).toEqual([]);
      await grants.approve(officer, g.id, 'needed for the 2026 campaign');
      expect((await grants.inForce()).map((x) => x.id)).toEqual([g.id]);
      await grants.revoke(officer, g.id, 'campaign over');
      expect(await grants.inForce()).toEqual([]);
      await expect(grants.approve(officer, g.id, 'again')).rejects.toMatchObject({ code: 'STATE_CONFLICT', message: expect.stringMatching(/is revoked/) });
      await expect(grants.revoke(officer, g.id, 'twice')).rejects.toMatchObject({ code: 'STATE_CONFLICT', message: `grant ${g.id} is revoked; it can be revoked only while approved` });
      await expect(grants.approve(officer, 9999, 'no such')).rejects.toMatchObject({ code: 'UNKNOWN_ID' });
      // A rejected request is refused for its state, before anything about its contents.
      const rejected = await grants.request(health, { department: 'health', table: 'cityhub.civil.citizens', spec, purpose: 'second try' });
      await grants.reject(officer, rejected.id, 'not now');
      await expect(grants.approve(officer, rejected.id, 'changed my mind')).rejects.toMatchObject({ code: 'STATE_CONFLICT', message: `grant ${rejected.id} is rejected; it can be approved only while requested` });
    });

    it('puts in force only grants whose approval in the ledger carries their spec digest: changes made in the database are refused', async () => {
      const conn = opened.at(-1)!.conn;
      const approved = await grants.request(health, { department: 'health', table: 'cityhub.civil.citizens', spec, purpose: 'campaign' });
      await grants.approve(officer, approved.id, 'campaign');
      const revoked = await grants.request(health, { department: 'health', table: 'cityhub.civil.citizens', spec, purpose: 'old study' });
      await grants.approve(officer, revoked.id, 'study');
      await grants.revoke(officer, revoked.id, 'study over');
      const pending = await grants.request(health, { department: 'health', table: 'cityhub.civil.citizens', spec, purpose: 'never approved' });
      const inForce = async () => (await grants.inForce()).map((g) => g.id).filter((x) => [approved.id, revoked.id, pending.id].includes(x));
      expect(await inForce()).toEqual([approved.id]);
      // An insider with write access to the control database widens a grant, revives a revoked one, approves one no officer saw.
      await conn.query('UPDATE grant_requests SET spec = ? WHERE id = ?', [JSON.stringify({ columns: { ...spec.columns, phone: 'pass' }, filter: spec.filter }), approved.id]);
      await conn.query("UPDATE grant_requests SET status = 'approved' WHERE id IN (?, ?)", [revoked.id, pending.id]);
      await conn.query('UPDATE grant_requests SET expires_at = NULL WHERE id = ?', [revoked.id]);
      expect(await inForce()).toEqual([]);
      expect(refused.map((r) => r.id)).toEqual(expect.arrayContaining([approved.id, revoked.id, pending.id]));
      expect(refused.find((r) => r.id === approved.id)!.problem).toMatch(/differs from what the security officer approved/);
      // Restored as approved, it is in force again.
      await conn.query('UPDATE grant_requests SET spec = ? WHERE id = ?', [JSON.stringify(spec), approved.id]);
      await conn.query("UPDATE grant_requests SET status = 'revoked' WHERE id = ?", [revoked.id]);
      await conn.query("UPDATE grant_requests SET status = 'requested' WHERE id = ?", [pending.id]);
      expect(await inForce()).toEqual([approved.id]);
      await grants.revoke(officer, approved.id, 'cleanup');
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

  describe('catalog, keys, deliveries and the API', () => {
    const who = (role: Role, department?: string): Principal => ({ name: `${role}-user`, role, ...(department ? { department } : {}) });
    const dba = who('dba');
    const officer = who('security-officer');
    const health = who('department', 'health');
    const dir = mkdtempSync(join(tmpdir(), `${id}-catalog-`));
    const pipelineKeyring = join(dir, 'keyring.json');
    const base = (classes: Record<string, string> = { id: 'public', name: 'personal', phone: 'personal', district: 'public' }, extra = '') => `
kafka: { brokers: ["127.0.0.1:9092"], topicPrefix: ${id} }
schemaRegistry: { url: "http://127.0.0.1:8081/apis/ccompat/v7" }
keyring: { file: keyring.json }
sources:
  - name: cityhub
    connection: { host: 127.0.0.1, port: 3307, user: cdc_reader, password: "\${SOURCE_PASSWORD:-cdc_reader}" }
    serverId: 4242
    tables:
      - name: civil.citizens
        columns: ${JSON.stringify(classes)}
departments:
  - name: health
    target: { kind: postgres, url: "postgres://postgres@127.0.0.1:5432/postgres", schema: dept_health }
${extra}`;
    let conn: Pool;
    let ledger: AuditLedger;
    let store: CatalogStore;
    let catalog: CatalogWorkflow;
    let grants: GrantWorkflow;
    let keys: KeyAdmin;

    beforeAll(async () => {
      FileKeyring.ensure(pipelineKeyring, ['pipeline', 'department:health']);
      ({ conn, ledger } = await fresh());
      const publisher = new PolicyPublisher(join(dir, 'pipeline.yaml'), ledger, createLogger('test', 'silent'));
      store = new CatalogStore(conn);
      grants = new GrantWorkflow(conn, ledger, async (g) => void publisher.render(await store.load(), g));
      catalog = new CatalogWorkflow(conn, ledger, store, async (doc) => void publisher.render(doc, await grants.inForce()));
      keys = new KeyAdmin(conn, ledger, () => pipelineKeyring);
    });

    it('applies a pipeline file: the diff first (dry run changes nothing), then atomically with a ledger entry per change', async () => {
      const dry = await catalog.apply(dba, base(), { dryRun: true });
      expect(dry.applied).toBe(false);
      expect(dry.changes.map(describeChange)).toContain('+ column cityhub.civil.citizens.phone (personal)');
      expect((await store.load()).sources).toEqual([]);

      expect(dry.needsApproval).toBe(true);
      // Settings and a department's target come with it: the whole file waits for a security officer.
      const done = await catalog.apply(dba, base(), { reason: 'first registration' });
      expect(done).toMatchObject({ applied: false, pending: { id: expect.any(Number) }, changes: dry.changes });
      expect((await store.load()).sources).toEqual([]);
      await catalog.approveChange(officer, done.pending!.id, 'checked');
      expect((await store.load()).sources[0]!.tables[0]!.columns).toEqual({ id: 'public', name: 'personal', phone: 'personal', district: 'public' });
      const entries = (await ledger.entries()).filter((e) => /^catalog\.(setting|source|table|column|department)\./.test(e.action));
      expect(entries).toHaveLength(done.changes.length);
      expect(entries.find((e) => e.subject === 'health')).toMatchObject({ actor: 'dba-user', action: 'catalog.department.add', details: { reason: 'first registration' } });
      // Target URLs and passwords never enter the ledger.
      expect(JSON.stringify(entries)).not.toMatch(/postgres:\/\/|cdc_reader/);
      expect(await catalog.apply(dba, base())).toEqual({ applied: false, changes: [] });
    });

    it('refuses an invalid file as a whole, every problem listed, and changes nothing', async () => {
      const before = await store.load();
      const ledgerBefore = (await ledger.entries()).length;
      const err = await catalog.apply(dba, base({ id: 'public', name: 'top-secret' }, 'bogus: 1')).catch((e: unknown) => e);
      expect(isCdcError(err, 'CONFIG_INVALID')).toBe(true);
      expect((err as { details: { problems: string[] } }).details.problems).toEqual(expect.arrayContaining([expect.stringMatching(/columns\.name/), expect.stringMatching(/bogus/)]));
      expect(await store.load()).toEqual(before);
      expect((await ledger.entries()).length).toBe(ledgerBefore);
    });

    it('registers and classifies tables, and refuses to take away a class an approved grant uses', async () => {
      expect((await catalog.registerTable(dba, { source: 'cityhub', table: 'transport.trips', columns: { id: 'public', route: 'public' } })).changes.map(describeChange))
        .toEqual(['+ table cityhub.transport.trips', '+ column cityhub.transport.trips.id (public)', '+ column cityhub.transport.trips.route (public)']);
      await expect(catalog.registerTable(dba, { source: 'cityhub', table: 'transport.trips', columns: { id: 'public' } })).rejects.toThrow(/registered already/);
      await expect(catalog.registerTable(dba, { source: 'nowhere', table: 'a.b', columns: { id: 'public' } })).rejects.toThrow(/no source named nowhere/);
      const g = await grants.request(health, { department: 'health', table: 'cityhub.civil.citizens', spec: { columns: { id: 'pass', phone: { mask: 'phone' } } }, purpose: 'callbacks' });
      await grants.approve(officer, g.id, 'ok');
      await expect(catalog.classify(dba, { source: 'cityhub', table: 'civil.citizens', columns: { phone: null } })).rejects.toThrow(/column phone is not classified/);
      expect((await catalog.classify(dba, { source: 'cityhub', table: 'civil.citizens', columns: { phone: 'secret' } })).changes.map(describeChange)).toEqual(['~ column cityhub.civil.citizens.phone personal -> secret']);
    });

    it('shows a department the tables it may ask for and itself only, and nobody a secret', async () => {
      const seen = await catalog.list(health);
      expect(seen.sources).toEqual([expect.objectContaining({ name: 'cityhub' })]);
      expect(seen.sources[0]).not.toHaveProperty('connection');
      expect(seen.departments).toEqual([{ name: 'health', target: { kind: 'postgres' } }]);
      const full = await catalog.list(dba);
      expect(full.sources[0]!.connection).toEqual({ host: '127.0.0.1', port: 3307, user: 'cdc_reader' });
      expect(JSON.stringify(full)).not.toMatch(/cdc_reader@|password|postgres:\/\//);
    });

    it('rotates a key: the new one encrypts, the old one still decrypts, only ids in the ledger', async () => {
      const old = FileKeyring.load(pipelineKeyring).activeKey('department:health');
      const rotated = await keys.rotate(officer, 'department:health', 'yearly rotation');
      const after = FileKeyring.load(pipelineKeyring);
      expect(after.activeKey('department:health').id).toBe(rotated.id);
      expect(after.keyById(old.id).material).toEqual(old.material);
      expect((await keys.list(officer)).filter((k) => k.name === 'department:health').map((k) => [k.id, k.active, k.rotatedBy])).toEqual([[old.id, false, null], [rotated.id, true, 'security-officer-user']]);
      const entry = (await ledger.entries()).find((e) => e.action === 'key.rotate')!;
      expect(entry.details).toEqual({ keyId: rotated.id, previousKeyId: old.id, reason: 'yearly rotation' });
      await expect(keys.rotate(officer, 'department:nobody', 'x')).rejects.toThrow(/no key list named department:nobody/);
      // A department's own token key is created by its first rotation (the upgrade path).
      const own = await keys.rotate(officer, 'token:own:health', 'own token key');
      expect(FileKeyring.load(pipelineKeyring).activeKey('token:own:health').id).toBe(own.id);
    });

    it('allows the catalog and key operations only to their roles', async () => {
      const roles: Role[] = ['dba', 'security-officer', 'department', 'sre', 'auditor'];
      const outcome = async (f: () => Promise<unknown>) => f().then(() => 'allowed', (err: unknown) => (isCdcError(err, 'FORBIDDEN') ? 'denied' : 'allowed'));
      const matrix: Record<string, string[]> = { apply: [], classify: [], list: [], rotate: [], keys: [] };
      for (const role of roles) {
        const p = who(role, role === 'department' ? 'health' : undefined);
        matrix.apply!.push(await outcome(() => catalog.apply(p, base(), { dryRun: true })));
        matrix.classify!.push(await outcome(() => catalog.classify(p, { source: 'cityhub', table: 'civil.citizens', columns: { name: 'personal' }, dryRun: true })));
        matrix.list!.push(await outcome(() => catalog.list(p)));
        matrix.rotate!.push(await outcome(() => keys.rotate(p, 'pipeline', 'matrix')));
        matrix.keys!.push(await outcome(() => keys.list(p)));
      }
      // dba, security-officer, department, sre, auditor
      expect(matrix).toEqual({
        apply: ['allowed', 'denied', 'denied', 'denied', 'denied'],
        classify: ['allowed', 'denied', 'denied', 'denied', 'denied'],
        list: ['allowed', 'allowed', 'allowed', 'allowed', 'allowed'],
        rotate: ['denied', 'allowed', 'denied', 'denied', 'denied'],
        keys: ['denied', 'allowed', 'denied', 'allowed', 'allowed'],
      });
      expect(await ledger.verify()).toMatchObject({ problems: [] });
    });

    it('records a delivered batch once even when a sink reports it twice', async () => {
      const entry = { actor: 'sink:health', role: 'system', action: 'delivery.batch', subject: 'delivery/health/t.share.health.civil.citizens/0/10-19', details: { rows: 10, sha256: 'ab'.repeat(32) } };
      expect(await ledger.appendOnce(entry)).toMatchObject({ action: 'delivery.batch' });
      expect(await ledger.appendOnce(entry)).toBeUndefined();
      expect((await ledger.entries()).filter((e) => e.subject === entry.subject)).toHaveLength(1);
    });

    it('serves the API over HTTPS with the CLI trusting a private CA, and says why without it', async () => {
      const cert = join(dir, 'cert.pem');
      const key = join(dir, 'key.pem');
      const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
      expect(made.status, made.stderr).toBe(0);
      const sha = (t: string) => createHash('sha256').update(t).digest('hex');
      const server = await startApi({
        port: 0, tokens: [{ tokenSha256: sha('dba-token'), name: 'wang.dba', role: 'dba' }, { tokenSha256: sha('sre-token'), name: 'li.sre', role: 'sre' }, { tokenSha256: sha('officer-token'), name: 'zhang.officer', role: 'security-officer' }],
        grants, catalog, keys, ledger, acls: new AclKeeper(ledger, createLogger('test', 'silent'), () => undefined), logger: createLogger('test', 'silent'), status: async () => ({ grants: await grants.countByStatus() }), tls: { cert: readFileSync(cert), key: readFileSync(key) },
      });
      try {
        const api = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
        // Asynchronously: the API answers from this very process.
        const cdc = (...args: string[]) => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, ['packages/cli/bin/cdc.js', '--api', api, ...args], { cwd: stack.root });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('close', (status) => resolve({ status, stdout, stderr }));
        });
        const listed = await cdc('--token', 'dba-token', '--ca', cert, 'tables', 'list', '--json');
        expect(listed.status, listed.stderr).toBe(0);
        expect(JSON.parse(listed.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ source: 'cityhub', table: 'civil.citizens' })]));
        expect((await cdc('--token', 'dba-token', '--ca', cert, 'tables', 'list')).stdout).toMatch(/^source\s+table\s+kind\s+columns \(class\)\ncityhub\s+civil\.citizens\s+keyed\s+id:public/);
        // An untrusted certificate, a role that may not, an invalid request: each its own exit code.
        expect(await cdc('--token', 'dba-token', 'tables', 'list')).toMatchObject({ status: 1, stderr: expect.stringMatching(/certificate/) });
        expect(await cdc('--token', 'sre-token', '--ca', cert, 'tables', 'classify', 'cityhub', 'civil.citizens', '--column', 'name=secret')).toMatchObject({ status: 4, stderr: expect.stringMatching(/^FORBIDDEN: li.sre: role sre may not table.classify/) });
        const bad = await cdc('--token', 'dba-token', '--ca', cert, 'tables', 'classify', 'cityhub', 'civil.citizens', '--column', 'name=top-secret', '--column', 'id=unknown');
        expect(bad.status).toBe(3);
        expect(bad.stderr).toMatch(/columns\.name/);
        expect(bad.stderr).toMatch(/columns\.id/);
        expect(await cdc('--token', 'dba-token', '--ca', cert, 'tables', 'classify', 'cityhub', 'nope.nope', '--column', 'a=public')).toMatchObject({ status: 5 });
        // Not found is 5 for ids and files too; a usage error is 3 with commander's message.
        expect(await cdc('--token', 'officer-token', '--ca', cert, 'grants', 'approve', '99', '--reason', 'x')).toMatchObject({ status: 5, stderr: expect.stringMatching(/^UNKNOWN_ID: no grant request 99/) });
        expect(await cdc('--token', 'dba-token', '--ca', cert, 'apply', '/nonexistent/my-pipeline.yaml', '--reason', 'x')).toMatchObject({ status: 5, stderr: expect.stringMatching(/^CONFIG_NOT_FOUND: pipeline file \/nonexistent\/my-pipeline.yaml does not exist/) });
        expect(await cdc('--token', 'dba-token', '--ca', cert, 'tables', 'register', 'cityhub', 'civil.x')).toMatchObject({ status: 3, stderr: expect.stringMatching(/required option '--column <name=class>' not specified/) });
        expect(await cdc('--token', 'dba-token', '--ca', cert, 'no-such-command')).toMatchObject({ status: 3, stderr: expect.stringMatching(/unknown command 'no-such-command'/) });
      } finally {
        server.close();
      }
    });

    describe('API limits', () => {
      const sha = (t: string) => createHash('sha256').update(t).digest('hex');
      type Answer = { status: number; headers: Record<string, string | string[] | undefined>; body: Record<string, unknown> };

      /** The API over HTTP on a free port, its log lines captured as parsed JSON. */
      async function serve(limits: Partial<ApiLimits>, deps: { grants?: GrantWorkflow } = {}) {
        const lines: Array<Record<string, unknown>> = [];
        const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
        const server = await startApi({
          port: 0, tokens: [{ tokenSha256: sha('dba-token'), name: 'wang.dba', role: 'dba' }],
          grants: deps.grants ?? grants, catalog, keys, ledger, acls: new AclKeeper(ledger, logger, () => undefined), logger, status: async () => ({}), limits,
        });
        const port = (server.address() as { port: number }).port;
        /** One call, from `from` (any 127.x address reaches the loopback listener). */
        const call = (method: string, path: string, o: { token?: string; body?: Buffer; chunked?: boolean; from?: string } = {}) => new Promise<Answer>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port, method, path, localAddress: o.from ?? '127.0.0.1', headers: {
            ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
            ...(o.body ? { 'content-type': 'application/json', ...(o.chunked ? {} : { 'content-length': o.body.length }) } : {}),
          } }, (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c.toString('utf8')));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> }));
          });
          // The server may answer and close before the whole body is sent: the answer counts, not the broken pipe.
          req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err)));
          if (o.body && o.chunked) for (let i = 0; i < o.body.length; i += 16_384) req.write(o.body.subarray(i, i + 16_384));
          req.end(o.body && !o.chunked ? o.body : undefined);
        });
        return { call, lines, close: () => new Promise((r) => server.close(r)) };
      }

      it('answers a body over the limit with 413 REQUEST_TOO_LARGE, with or without a length, and goes on serving', async () => {
        const api = await serve({ maxBodyBytes: 64 * 1024 });
        try {
          const big = Buffer.from(JSON.stringify({ pipeline: 'x'.repeat(2 * 1024 * 1024) }));
          for (const chunked of [false, true]) {
            const answer = await api.call('POST', '/catalog/apply', { token: 'dba-token', body: big, chunked });
            expect(answer.status).toBe(413);
            expect(answer.body).toMatchObject({ code: 'REQUEST_TOO_LARGE', message: expect.stringMatching(/65536 bytes/), action: expect.stringMatching(/CONTROL_MAX_BODY_BYTES/) });
          }
          expect(await api.call('POST', '/catalog/apply', { token: 'dba-token', body: Buffer.from(JSON.stringify({ pipeline: base(), dryRun: true })) })).toMatchObject({ status: 200, body: { applied: false } });
          expect((await api.call('GET', '/catalog', { token: 'dba-token' })).status).toBe(200);
        } finally {
          await api.close();
        }
      });

      it('answers an internal failure with 500 INTERNAL, a generic message and a correlation id; the log line has the id and the real message', async () => {
        const broken = await fresh();
        await broken.conn.query('DROP TABLE grant_requests');
        const api = await serve({}, { grants: new GrantWorkflow(broken.conn, broken.ledger) });
        try {
          const answer = await api.call('GET', '/grants', { token: 'dba-token' });
          expect(answer.status).toBe(500);
          expect(answer.body).toEqual({ code: 'INTERNAL', message: 'internal error', action: expect.stringMatching(/correlation id/), correlationId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
          expect(answer.headers['x-correlation-id']).toBe(answer.body.correlationId);
          expect(JSON.stringify(answer.body)).not.toMatch(/grant_requests|exist|\n\s+at /);
          const logged = api.lines.filter((l) => l.correlationId === answer.body.correlationId);
          expect(logged).toHaveLength(1);
          expect(logged[0]).toMatchObject({ level: 50, method: 'GET', path: '/grants', err: { message: expect.stringMatching(/grant_requests.*doesn't exist/) } });
        } finally {
          await api.close();
        }
      });

      it('logs failed logins with the remote address, never the token, and answers 429 AUTH_THROTTLED with Retry-After after too many from one address', async () => {
        const api = await serve({ loginFailures: { max: 3, windowMs: 2000 } });
        try {
          for (let i = 1; i <= 3; i++) expect(await api.call('GET', '/catalog', { token: `guess-${i}` })).toMatchObject({ status: 401, body: { code: 'UNAUTHENTICATED' } });
          const failed = api.lines.filter((l) => l.msg === 'control API login failed');
          expect(failed).toHaveLength(3);
          expect(failed[2]).toMatchObject({ level: 40, remoteAddress: '127.0.0.1', failures: 3, path: '/catalog' });
          expect(JSON.stringify(api.lines)).not.toMatch(/guess-/);
          // Throttled: even the right token from that address, until the window ends.
          for (const token of ['guess-4', 'dba-token']) {
            const answer = await api.call('GET', '/catalog', { token });
            expect(answer).toMatchObject({ status: 429, body: { code: 'AUTH_THROTTLED', action: expect.stringMatching(/Retry-After/) } });
            expect(Number(answer.headers['retry-after'])).toBeGreaterThanOrEqual(1);
            expect(Number(answer.headers['retry-after'])).toBeLessThanOrEqual(2);
          }
          expect(api.lines.filter((l) => l.msg === 'control API logins throttled')).toEqual([expect.objectContaining({ remoteAddress: '127.0.0.1' })]);
          // Another address is not held back.
          expect((await api.call('GET', '/catalog', { token: 'dba-token', from: '127.0.0.2' })).status).toBe(200);
          await new Promise((r) => setTimeout(r, 2100));
          expect((await api.call('GET', '/catalog', { token: 'dba-token' })).status).toBe(200);
        } finally {
          await api.close();
        }
      });
    });
  });

  /**
   * Targets and the Kafka, registry and keyring settings decide where the data goes: a DBA
   * proposes, a security officer decides. Values hold credentials, so only digests leave.
   */
  describe('the catalog checks the source', () => {
    const probeDb = `${id}_probe`;
    const dba: Principal = { name: 'wang.dba', role: 'dba' };
    const officer: Principal = { name: 'zhang.officer', role: 'security-officer' };
    const health: Principal = { name: 'health.app', role: 'department', department: 'health' };
    let source: Awaited<ReturnType<typeof createConnection>>;
    let catalog: CatalogWorkflow;
    let grants: GrantWorkflow;
    let store: CatalogStore;

    beforeAll(async () => {
      source = await createConnection({ ...stack.source });
      await source.query(`CREATE DATABASE \`${probeDb}\``);
      await source.query(`CREATE TABLE \`${probeDb}\`.people (id INT PRIMARY KEY, name VARCHAR(40), district VARCHAR(20))`);
      await source.query(`CREATE TABLE \`${probeDb}\`.readings (sensor VARCHAR(20), value DOUBLE)`);
      const { conn, ledger } = await fresh();
      const dir = mkdtempSync(join(tmpdir(), 'probe-'));
      FileKeyring.ensure(join(dir, 'keyring.json'), ['pipeline', 'department:health', 'token:citizen', 'token:own:health']);
      const publisher = new PolicyPublisher(join(dir, 'pipeline.yaml'), ledger, createLogger('test', 'silent'));
      store = new CatalogStore(conn);
      grants = new GrantWorkflow(conn, ledger, async (g) => void publisher.render(await store.load(), g));
      catalog = new CatalogWorkflow(conn, ledger, store, async (doc) => void publisher.render(doc, await grants.inForce()), {
        probe: (doc, tables) => probeTables(doc, tables, (d) => publisher.render(d, []), dir),
        grantsInForce: () => grants.inForce(),
      });
      // The reader's own account and TLS, as the published policy gives them; the table name as the local catalog writes it.
      await catalog.importBase({ name: 'control-plane', role: 'dba' }, `
kafka: { brokers: ["127.0.0.1:9092"], topicPrefix: ${id}p }
schemaRegistry: { url: "http://127.0.0.1:8081/apis/ccompat/v7" }
keyring: { file: keyring.json }
sources:
  - name: cityhub
    connection: { host: 127.0.0.1, port: ${stack.source.port}, user: cdc_reader, password: "\${SOURCE_PASSWORD:-cdc_reader}", ssl: { ca: "${stack.sourceTlsCa}" } }
    serverId: 4243
    tables:
      - name: \${PROBE_DB:-${probeDb}}.people
        columns: { id: public, name: personal }
  - name: gone
    connection: { host: 127.0.0.1, port: 1, user: cdc_reader, password: x }
    serverId: 4244
    tables:
      - name: x.a
        columns: { id: public }
departments:
  - name: health
    target: { kind: postgres, url: "postgres://postgres@127.0.0.1:5432/postgres", schema: dept_health }
`.replace('keyring.json', join(dir, 'keyring.json')), 'test catalog');
    });

    afterAll(async () => {
      await source.query(`DROP DATABASE IF EXISTS \`${probeDb}\``);
      await source.end();
    });

    it('refuses a table the source does not have, a keyless one not registered append-only, and a column it does not have', async () => {
      await expect(catalog.registerTable(dba, { source: 'cityhub', table: `${probeDb}.nosuch`, columns: { id: 'public' } })).rejects.toMatchObject({ code: 'TABLE_NOT_FOUND', message: expect.stringContaining(`${probeDb}.nosuch does not exist on source cityhub`) });
      await expect(catalog.registerTable(dba, { source: 'cityhub', table: `${probeDb}.readings`, columns: { sensor: 'public' } })).rejects.toMatchObject({ code: 'TABLE_WITHOUT_KEY' });
      await expect(catalog.registerTable(dba, { source: 'cityhub', table: `${probeDb}.readings`, columns: { sensor: 'public', bogus: 'public' }, appendOnly: true, dryRun: true })).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('has no column bogus (its columns: sensor, value)') });
      expect(await catalog.registerTable(dba, { source: 'cityhub', table: `${probeDb}.readings`, columns: { sensor: 'public' }, appendOnly: true })).toMatchObject({ applied: true });
      // Classified by its resolved name, the way `tables list` and grants name it.
      await expect(catalog.classify(dba, { source: 'cityhub', table: `${probeDb}.people`, columns: { bogus: 'public' } })).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('has no column bogus') });
      expect(await catalog.classify(dba, { source: 'cityhub', table: `${probeDb}.people`, columns: { district: 'public' } })).toMatchObject({ applied: true, changes: [expect.objectContaining({ op: 'add', kind: 'column' })] });
      // A source that does not answer: nothing is registered unchecked.
      await expect(catalog.registerTable(dba, { source: 'gone', table: 'x.y', columns: { id: 'public' } })).rejects.toMatchObject({ code: 'SOURCE_UNREACHABLE', message: expect.stringContaining('CONTROL_SOURCE_CHECK=off') });
      expect((await store.load()).sources.find((s) => s.name === 'gone')!.tables.map((t) => t.name)).toEqual(['x.a']);
    });

    it('unregisters a table, refused while a grant in force reads it', async () => {
      const g = await grants.request(health, { department: 'health', table: `cityhub.${probeDb}.people`, spec: { columns: { id: 'pass' } }, purpose: 'probe' });
      await grants.approve(officer, g.id, 'ok');
      await expect(catalog.unregisterTable(dba, { source: 'cityhub', table: `${probeDb}.people` })).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining(`grant ${g.id} of health is in force on it: revoke it first`) });
      await grants.revoke(officer, g.id, 'done');
      const dry = await catalog.unregisterTable(dba, { source: 'cityhub', table: `${probeDb}.people`, dryRun: true });
      expect(dry.changes.map(describeChange)).toContain(`- table cityhub.\${PROBE_DB:-${probeDb}}.people`);
      expect(await catalog.unregisterTable(dba, { source: 'cityhub', table: `${probeDb}.people`, reason: 'no longer shared' })).toMatchObject({ applied: true });
      expect((await store.load()).sources.find((s) => s.name === 'cityhub')!.tables.map((t) => t.name)).toEqual([`${probeDb}.readings`]);
      await expect(catalog.unregisterTable(dba, { source: 'cityhub', table: `${probeDb}.people` })).rejects.toMatchObject({ code: 'TABLE_NOT_FOUND' });
    });
  });

  describe('settings and target changes', () => {
    const who = (role: Role): Principal => ({ name: `${role}-user`, role });
    const dba = who('dba');
    const officer = who('security-officer');
    const sha = (v: unknown) => createHash('sha256').update(canonicalJson(v)).digest('hex');
    const target = (schema: string) => ({ kind: 'postgres', url: 'postgres://app:${CTL_PG_PASSWORD:-s3cret-pw}@127.0.0.1:5432/postgres', schema });
    const file = (o: { schema?: string; brokers?: string; registry?: string; keyring?: string; classes?: Record<string, string> } = {}) => `
kafka: { brokers: ["${o.brokers ?? '127.0.0.1:9092'}"], topicPrefix: ${id}s }
schemaRegistry: { url: "${o.registry ?? 'http://127.0.0.1:8081/apis/ccompat/v7'}" }
keyring: { file: ${o.keyring ?? 'keyring.json'} }
sources:
  - name: cityhub
    connection: { host: "\${CTL_SOURCE_HOST}", port: 3307, user: "\${CTL_SOURCE_USER:-cdc_reader}", password: "\${SOURCE_PASSWORD:-cdc_reader}" }
    serverId: 4243
    tables:
      - name: civil.citizens
        columns: ${JSON.stringify(o.classes ?? { id: 'public', name: 'personal' })}
departments:
  - name: health
    target: ${JSON.stringify(target(o.schema ?? 'dept_health'))}
`;
    let conn: Pool;
    let ledger: AuditLedger;
    let store: CatalogStore;
    let catalog: CatalogWorkflow;
    const dir = mkdtempSync(join(tmpdir(), `${id}-settings-`));
    const pending = (r: unknown) => (r as { pending?: { id: number } }).pending?.id;

    beforeAll(async () => {
      // Set on this (the control) process: what the catalog shows must not resolve it.
      process.env.CTL_SOURCE_HOST = '10.77.0.9';
      FileKeyring.ensure(join(dir, 'keyring.json'), ['pipeline']);
      ({ conn, ledger } = await fresh());
      const publisher = new PolicyPublisher(join(dir, 'pipeline.yaml'), ledger, createLogger('test', 'silent'));
      store = new CatalogStore(conn);
      const grants = new GrantWorkflow(conn, ledger, async (g) => void publisher.render(await store.load(), g));
      catalog = new CatalogWorkflow(conn, ledger, store, async (doc) => void publisher.render(doc, await grants.inForce()));
      const first = await catalog.apply(dba, file(), { reason: 'first registration' });
      const firstId = pending(first);
      if (firstId !== undefined) await catalog.approveChange(officer, firstId, 'first registration');
    });

    afterAll(() => {
      delete process.env.CTL_SOURCE_HOST;
    });

    const healthSchema = async () => (await store.load()).departments[0]!.target as { schema: string };

    it('keeps a DBA\'s repointed target out of the catalog until a security officer approves it; the DBA cannot approve it', async () => {
      const r = await catalog.apply(dba, file({ schema: 'dept_elsewhere' }), { reason: 'new schema' });
      expect(r).toMatchObject({ applied: false, changes: [{ op: 'change', kind: 'department', subject: 'health', fields: ['target'] }] });
      const changeId = pending(r);
      expect(changeId).toEqual(expect.any(Number));
      expect((await healthSchema()).schema).toBe('dept_health');
      await expect(catalog.approveChange(dba, changeId!, 'my own')).rejects.toMatchObject({ code: 'FORBIDDEN' });
      expect((await healthSchema()).schema).toBe('dept_health');
      const listed = await catalog.changeRequests(officer);
      expect(listed).toContainEqual(expect.objectContaining({ id: changeId, status: 'requested', requestedBy: 'dba-user', reason: 'new schema', changes: [expect.objectContaining({ subject: 'health', fields: ['target'] })] }));
      // What the officer sees names fields and digests, never the values.
      expect(JSON.stringify(listed)).not.toMatch(/dept_elsewhere|s3cret|CTL_PG_PASSWORD/);
      const approved = await catalog.approveChange(officer, changeId!, 'schema moved');
      expect(approved).toMatchObject({ id: changeId, status: 'approved', decidedBy: 'security-officer-user' });
      expect((await healthSchema()).schema).toBe('dept_elsewhere');
      await expect(catalog.approveChange(officer, changeId!, 'again')).rejects.toThrow(/is approved/);
    });

    it('holds back kafka.brokers, schemaRegistry.url and keyring.file alike, and a rejected change never applies', async () => {
      const before = await store.load();
      for (const [o, subject, field] of [[{ brokers: '10.0.0.1:9092' }, 'kafka', 'brokers'], [{ registry: 'http://10.0.0.2:8081' }, 'schemaRegistry', 'url'], [{ keyring: 'other-keyring.json' }, 'keyring', 'file']] as const) {
        const r = await catalog.apply(dba, file({ schema: 'dept_elsewhere', ...o }));
        expect(r.changes).toEqual([expect.objectContaining({ op: 'change', kind: 'setting', subject, fields: [field] })]);
        const changeId = pending(r);
        expect(changeId).toEqual(expect.any(Number));
        expect(await store.load()).toEqual(before);
        expect(await catalog.rejectChange(officer, changeId!, 'not agreed')).toMatchObject({ status: 'rejected', decidedBy: 'security-officer-user' });
        await expect(catalog.approveChange(officer, changeId!, 'changed my mind')).rejects.toThrow(/is rejected/);
        expect(await store.load()).toEqual(before);
      }
      // Other catalog changes apply at once, as before.
      expect(await catalog.apply(dba, file({ schema: 'dept_elsewhere', classes: { id: 'public', name: 'secret' } }))).toMatchObject({ applied: true });
    });

    it('records digests of the old and new values in the ledger, never the values, and attests what the officer approved', async () => {
      const r = await catalog.apply(dba, file({ schema: 'dept_third', brokers: '10.0.0.3:9092', classes: { id: 'public', name: 'secret' } }), { reason: 'move' });
      await catalog.approveChange(officer, pending(r)!, 'agreed');
      const entries = (await ledger.entries()).filter((e) => e.action.startsWith('catalog.'));
      const target = entries.findLast((e) => e.action === 'catalog.department.change' && e.subject === 'health')!;
      expect(target.details).toMatchObject({ fields: ['target'], beforeSha256: sha(targetOf('dept_elsewhere')), afterSha256: sha(targetOf('dept_third')) });
      const kafka = entries.findLast((e) => e.action === 'catalog.setting.change' && e.subject === 'kafka')!;
      expect(kafka.details).toMatchObject({ fields: ['brokers'], beforeSha256: sha({ brokers: ['127.0.0.1:9092'], topicPrefix: `${id}s` }), afterSha256: sha({ brokers: ['10.0.0.3:9092'], topicPrefix: `${id}s` }) });
      const approval = entries.findLast((e) => e.action === 'catalog.change.approve')!;
      expect(approval).toMatchObject({ actor: 'security-officer-user', details: { change: pending(r), reason: 'agreed', requestedBy: 'dba-user' } });
      expect(ledger.attested('catalog.change.approve', approval.details.settingsSha256 as string, approval.details.attestation)).toBe(true);
      expect(JSON.stringify(entries)).not.toMatch(/10\.0\.0\.3|dept_third|s3cret|CTL_PG_PASSWORD/);
    });
    const targetOf = target;

    it('refuses to publish settings or targets changed in the database without an approval', async () => {
      await expect(catalog.approved()).resolves.toMatchObject({ departments: [expect.objectContaining({ name: 'health' })] });
      const [[row]] = (await conn.query("SELECT spec FROM catalog_departments WHERE name = 'health'")) as unknown as [[{ spec: string }]];
      await conn.query("UPDATE catalog_departments SET spec = ? WHERE name = 'health'", [JSON.stringify({ target: targetOf('attacker') })]);
      await expect(catalog.approved()).rejects.toMatchObject({ code: 'SETTINGS_TAMPERED' });
      await conn.query("UPDATE catalog_departments SET spec = ? WHERE name = 'health'", [row!.spec]);
      await expect(catalog.approved()).resolves.toBeDefined();
      await conn.query(`UPDATE catalog_settings SET value = '{"file":"other.json"}' WHERE name = 'keyring'`);
      await expect(catalog.approved()).rejects.toMatchObject({ code: 'SETTINGS_TAMPERED' });
      await conn.query(`UPDATE catalog_settings SET value = '{"file":"keyring.json"}' WHERE name = 'keyring'`);
      await expect(catalog.approved()).resolves.toBeDefined();
    });

    it('refuses to approve a change made stale by a later catalog change', async () => {
      const r = await catalog.apply(dba, file({ schema: 'dept_fourth', brokers: '10.0.0.3:9092', classes: { id: 'public', name: 'secret' } }));
      await catalog.classify(dba, { source: 'cityhub', table: 'civil.citizens', columns: { name: 'personal' } });
      await expect(catalog.approveChange(officer, pending(r)!, 'late')).rejects.toThrow(/changed since/);
      expect((await healthSchema()).schema).toBe('dept_third');
    });

    it('shows ${…} references as written, never resolved, in the API and the CLI; changes are listed and decided there too', async () => {
      const view = await catalog.list(dba);
      expect(view.sources[0]!.connection).toEqual({ host: '${CTL_SOURCE_HOST}', port: 3307, user: '${CTL_SOURCE_USER:-cdc_reader}' });
      expect(JSON.stringify(view)).not.toContain('10.77.0.9');
      const token = (t: string) => createHash('sha256').update(t).digest('hex');
      const silent = createLogger('test', 'silent');
      const grants = new GrantWorkflow(conn, ledger);
      const server = await startApi({
        port: 0, tokens: [{ tokenSha256: token('dba-token'), name: 'wang.dba', role: 'dba' }, { tokenSha256: token('officer-token'), name: 'zhang.officer', role: 'security-officer' }],
        grants, catalog, keys: new KeyAdmin(conn, ledger, () => join(dir, 'keyring.json')), ledger, acls: new AclKeeper(ledger, silent, () => undefined), logger: silent, status: async () => ({}),
      });
      try {
        const api = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
        const cdc = (...args: string[]) => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, ['packages/cli/bin/cdc.js', '--api', api, ...args], { cwd: stack.root, env: { ...process.env, CTL_SOURCE_HOST: '10.77.0.9' } });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('close', (status) => resolve({ status, stdout, stderr }));
        });
        const body = await (await fetch(`${api}/catalog`, { headers: { authorization: 'Bearer dba-token' } })).text();
        expect(body).toContain('${CTL_SOURCE_HOST}');
        expect(body).not.toContain('10.77.0.9');
        expect((await cdc('--token', 'dba-token', 'sources', 'list')).stdout).toMatch(/cityhub\s+\$\{CTL_SOURCE_HOST\}:3307/);

        const changed = join(dir, 'changed.yaml');
        writeFileSync(changed, file({ schema: 'dept_fifth', brokers: '10.0.0.3:9092' }));
        const applied = await cdc('--token', 'dba-token', 'apply', changed, '--reason', 'fifth');
        expect(applied, applied.stderr).toMatchObject({ status: 0, stdout: expect.stringMatching(/~ department health: target\n1 change\(s\) wait for a security officer: change \d+ \(cdc changes approve \d+\)\n/) });
        const changeId = Number(/change (\d+)/.exec(applied.stdout)![1]);
        expect((await cdc('--token', 'dba-token', 'changes', 'approve', String(changeId)))).toMatchObject({ status: 4, stderr: expect.stringMatching(/^FORBIDDEN/) });
        const listed = await cdc('--token', 'officer-token', 'changes', 'list', '--status', 'requested');
        expect(listed.stdout).toMatch(new RegExp(`^${changeId}\\s+requested\\s+wang\\.dba\\s+.*~ department health: target`, 'm'));
        expect(listed.stdout).not.toMatch(/dept_fifth|s3cret/);
        expect(await cdc('--token', 'officer-token', 'changes', 'approve', String(changeId), '--reason', 'ok')).toMatchObject({ status: 0, stdout: `change ${changeId} is approved; the pipeline picks it up within seconds\n` });
        expect((await healthSchema()).schema).toBe('dept_fifth');
        writeFileSync(changed, file({ schema: 'dept_sixth', brokers: '10.0.0.3:9092' }));
        const again = Number(/change (\d+)/.exec((await cdc('--token', 'dba-token', 'apply', changed)).stdout)![1]);
        // A usage error (here a missing --reason) is exit 3, commander's message kept.
        expect(await cdc('--token', 'officer-token', 'changes', 'reject', String(again))).toMatchObject({ status: 3, stderr: expect.stringMatching(/required option '--reason <text>' not specified/) });
        expect(await cdc('--token', 'officer-token', 'changes', 'reject', String(again), '--reason', 'no')).toMatchObject({ status: 0, stdout: `change ${again} is rejected\n` });
        expect((await healthSchema()).schema).toBe('dept_fifth');
      } finally {
        server.close();
      }
      expect(await ledger.verify()).toMatchObject({ problems: [] });
    });
  });
});
