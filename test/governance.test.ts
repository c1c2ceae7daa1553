import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring, POLICY_PUBLIC_KEYS_ENV, consumeShareTopics, departmentGroupPrefix, keyListsOf, policySigningKey, type ShareChange } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { kafkaSettingsOf } from '../scripts/support/kafka-security.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import { freePort, type ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';
import { serviceArgs } from '../scripts/build-services.js';

/**
 * Governed sharing end to end: a department requests a grant through the control API, a
 * security officer approves it, data flows; revoked, it stops; every step is in the ledger.
 */
describe('governance: request, approve, flow, revoke', () => {
  const run = new PipelineRun();
  const controlDb = `${run.id}_control`;
  const policyFile = join(dirname(run.keyringFile), 'policy.yaml');
  let api = '';
  let mysql: Connection;
  let control: ServiceProcess;
  let transformer: ServiceProcess;
  let reader: ServiceProcess;
  let sink: ServiceProcess;
  let readerHost: Record<string, string> = {};
  let sinkHost: Record<string, string> = {};
  let servicesEnv: NodeJS.ProcessEnv = {};
  const call = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${api}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & Array<Record<string, unknown>> };
  };
  const cdc = (token: string, ...args: string[]) =>
    spawnSync(process.execPath, ['packages/cli/bin/cdc.js', '--api', api, '--token', token, ...args], { cwd: stack.root, env: run.cliEnv, encoding: 'utf8' });
  const healthRows = async () =>
    (await run.pg.query(`SELECT id, name FROM "${run.pgSchema}".citizens ORDER BY id`).catch(() => ({ rows: [] }))).rows as Array<{ id: string; name: string }>;
  const insert = (id: number) =>
    run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES (?, '王小明', '110101199001010000', '13800000000', '海淀', NOW(6))`, [id]);

  beforeAll(async () => {
    await run.setUp();
    const controlKeys = FileKeyring.ensure(run.keyringFile, ['audit', 'policy']);
    mysql = await createConnection({ ...stack.targetMariadb });
    await mysql.query(`CREATE DATABASE \`${controlDb}\``);
    const tokensFile = join(dirname(run.keyringFile), 'tokens.json');
    const sha = (t: string) => createHash('sha256').update(t).digest('hex');
    writeFileSync(tokensFile, JSON.stringify([
      { tokenSha256: sha('officer-token'), name: 'zhang.officer', role: 'security-officer' },
      { tokenSha256: sha('health-token'), name: 'health.app', role: 'department', department: 'health' },
      { tokenSha256: sha('sre-token'), name: 'li.sre', role: 'sre' },
      { tokenSha256: sha('dba-token'), name: 'wang.dba', role: 'dba' },
      { tokenSha256: sha('service-token'), name: 'pipeline-hosts', role: 'service' },
    ]));
    const base = run.writePipelineFile('base.yaml', {
      serverId: 6001,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: [{ name: 'health', target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema }, grants: [] }],
    });
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    control = await run.start('control', {
      CONTROL_DB_URL: `mysql://root@${stack.targetMariadb.host}:${stack.targetMariadb.port}/${controlDb}`,
      CONTROL_BASE_PIPELINE: base,
      CONTROL_KEYRING: run.keyringFile,
      CONTROL_TOKENS: tokensFile,
      CONTROL_PORT: String(port),
      CITYSHARE_PIPELINE: policyFile,
    });
    // The services trust only what the control plane signs.
    const publicKeys = policySigningKey(controlKeys.activeKey('policy')).publicKey;
    const env = { CITYSHARE_PIPELINE: policyFile, [POLICY_PUBLIC_KEYS_ENV]: publicKeys };
    servicesEnv = { ...run.env, ...env };
    // The reader and the sink run as on hosts of their own: the policy fetched from the control
    // API into a local copy, a keyring of their own; nothing of the control plane's files.
    const host = (name: string, holder: 'cdc-reader' | 'sink', principal: string) => {
      const dir = join(dirname(run.keyringFile), `host-${name}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'token'), 'service-token\n', { mode: 0o600 });
      writeFileSync(join(dir, 'keyring.json'), JSON.stringify(run.keys.subset(keyListsOf(holder, run.keys.listNames(), 'health'))), { mode: 0o600 });
      return {
        CITYSHARE_PIPELINE: join(dir, 'policy.yaml'), CITYSHARE_POLICY_URL: `${api}/policy`, CITYSHARE_POLICY_TOKEN_FILE: join(dir, 'token'), CITYSHARE_POLICY_REFRESH_MS: '1000',
        CITYSHARE_KEYRING: join(dir, 'keyring.json'), [POLICY_PUBLIC_KEYS_ENV]: publicKeys, KAFKA_USERNAME: principal,
      };
    };
    readerHost = host('reader', 'cdc-reader', 'reader-cityhub');
    sinkHost = host('sink', 'sink', 'sink-health');
    reader = await run.start('cdc-reader', readerHost);
    transformer = await run.start('transformer', env);
    sink = await run.start('sink', sinkHost);
  });

  afterAll(async () => {
    await run.tearDown();
    await mysql.query(`DROP DATABASE IF EXISTS \`${controlDb}\``);
    await mysql.end();
  });

  it('delivers nothing without an approved grant, everything once it is approved, and nothing new once revoked', async () => {
    await insert(1);
    await new Promise((r) => setTimeout(r, 3000));
    expect(await healthRows()).toEqual([]);

    // The workflow from the command line, as the department and the security officer use it.
    const requested = cdc('health-token', 'grants', 'request', '--table', `cityhub.${run.civilDb}.citizens`, '--column', 'id=pass', '--column', 'name={mask: name}', '--purpose', 'follow-up of vaccination', '--json');
    expect(requested.status, requested.stderr).toBe(0);
    const id = (JSON.parse(requested.stdout) as { id: number }).id;
    // A department cannot approve its own request (exit 4); the refusal is audited.
    expect(cdc('health-token', 'grants', 'approve', String(id), '--reason', 'self')).toMatchObject({ status: 4, stderr: expect.stringMatching(/^FORBIDDEN/) });
    expect(cdc('officer-token', 'grants', 'approve', String(id), '--reason', 'campaign 2026')).toMatchObject({ status: 0, stdout: `grant ${id} (health, cityhub.${run.civilDb}.citizens) is approved\n` });
    expect(cdc('officer-token', 'grants', 'list', '--status', 'approved').stdout).toMatch(new RegExp(`^${id}\\s+health\\s+cityhub\\.${run.civilDb}\\.citizens\\s+approved\\s+id,name`, 'm'));

    await eventually(async () => expect(await healthRows()).toEqual([{ id: '1', name: '王**' }]), 60_000, 500);
    // Every delivered batch is in the ledger: counts, positions and a digest, never a value.
    await eventually(async () => {
      const [rows] = await mysql.query(`SELECT actor, subject, details FROM \`${controlDb}\`.audit_ledger WHERE action = 'delivery.batch'`);
      const batches = (rows as Array<{ actor: string; subject: string; details: string }>).map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> }));
      expect(batches.reduce((n, b) => n + Number(b.details.rows), 0)).toBeGreaterThanOrEqual(1);
      expect(batches[0]).toMatchObject({ actor: 'sink:health', subject: expect.stringMatching(new RegExp(`^delivery/health/${run.prefix}\\.share\\.health\\.`)), details: { department: 'health', table: 'citizens', sha256: expect.stringMatching(/^[0-9a-f]{64}$/), fromVersion: expect.any(String) } });
      expect(JSON.stringify(batches)).not.toContain('王');
    }, 30_000, 500);

    // The department reads its share topic itself too, as its own Kafka principal: the ACL the
    // control plane added with the grant lets it, and the revoke takes it away within 5 s.
    const seen: ShareChange[] = [];
    let refused: ((err: unknown) => void) | undefined;
    const refusal = new Promise<unknown>((resolve) => (refused = resolve));
    const direct = await eventually(() => consumeShareTopics({
      kafka: kafkaSettingsOf('department-health'),
      registryUrl: stack.registryUrl,
      topics: [`${run.prefix}.share.health.cityhub.${run.civilDb}.citizens`],
      groupId: `${departmentGroupPrefix(run.prefix, 'health')}direct`,
      onChange: async (c) => void seen.push(c),
      onError: (err) => refused?.(err),
    }), 15_000, 500);
    await eventually(() => expect(seen.map((c) => c.key.id)).toContain('1'), 30_000);

    expect((await call('officer-token', 'POST', `/grants/${id}/revoke`, { reason: 'campaign over' })).body).toMatchObject({ status: 'revoked' });
    const revokedAt = Date.now();
    await expect(Promise.race([refusal, new Promise((r) => setTimeout(() => r('still reading after 5 s'), 5_000))])).resolves.toMatchObject({ code: 'KAFKA_NOT_AUTHORIZED' });
    expect(Date.now() - revokedAt).toBeLessThan(5_000);
    await direct.stop();
    const [acl] = await mysql.query(`SELECT action, subject FROM \`${controlDb}\`.audit_ledger WHERE action LIKE 'kafka.acl.%' AND subject = 'User:department-health'`);
    expect((acl as Array<{ action: string }>).map((a) => a.action)).toEqual(expect.arrayContaining(['kafka.acl.add', 'kafka.acl.remove']));
    await new Promise((r) => setTimeout(r, 3000));
    await insert(2);
    await new Promise((r) => setTimeout(r, 5000));
    expect((await healthRows()).map((r) => r.id)).toEqual(['1']);
  });

  it('stops delivering when a grant expires', async () => {
    const expires = new Date(Date.now() + 30_000).toISOString();
    const requested = cdc('health-token', 'grants', 'request', '--table', `cityhub.${run.civilDb}.citizens`, '--column', 'id=pass', '--column', 'name={mask: name}', '--purpose', 'one-month study', '--expires', expires, '--json');
    const id = (JSON.parse(requested.stdout) as { id: number }).id;
    expect(cdc('officer-token', 'grants', 'approve', String(id), '--reason', 'study')).toMatchObject({ status: 0 });
    await insert(3);
    await eventually(async () => expect((await healthRows()).map((r) => r.id)).toContain('3'), 25_000, 500);
    await eventually(async () => expect(JSON.parse(cdc('officer-token', 'grants', 'list', '--status', 'expired', '--json').stdout)).toEqual([expect.objectContaining({ id })]), 40_000, 1000);
    await new Promise((r) => setTimeout(r, 3000));
    await insert(4);
    await new Promise((r) => setTimeout(r, 5000));
    expect((await healthRows()).map((r) => r.id)).not.toContain('4');
  });

  it('applies a changed pipeline file from the command line: diff first, then atomically, or not at all', async () => {
    const changed = run.writePipelineFile('changed.yaml', {
      serverId: 6001,
      tables: [{ name: `${run.civilDb}.citizens`, columns: { ...CITIZEN_CLASSES, address: 'secret' } }],
      departments: [{ name: 'health', target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema } }],
    });
    const dry = cdc('dba-token', 'apply', changed, '--dry-run');
    expect(dry).toMatchObject({ status: 0, stdout: `~ column cityhub.${run.civilDb}.citizens.address personal -> secret\n1 change(s); dry run, nothing applied (run again without --dry-run to apply)\n` });
    expect(readFileSync(policyFile, 'utf8')).toMatch(/address: personal/);
    // An officer may not change the catalog; an invalid file is refused whole with every problem.
    expect(cdc('officer-token', 'apply', changed)).toMatchObject({ status: 4 });
    const broken = run.writePipelineFile('broken.yaml', { serverId: 0, tables: [{ name: `${run.civilDb}.citizens`, columns: { id: 'nope' } }] });
    const refused = cdc('dba-token', 'apply', broken);
    expect(refused.status).toBe(3);
    expect(refused.stderr).toMatch(/serverId/);
    expect(refused.stderr).toMatch(/columns\.id/);

    expect(cdc('dba-token', 'apply', changed, '--reason', 'addresses are secret from now on')).toMatchObject({ status: 0, stdout: expect.stringContaining('1 change(s) applied') });
    await eventually(async () => expect(readFileSync(policyFile, 'utf8')).toMatch(/address: secret/), 10_000, 200);
    const [rows] = await mysql.query(`SELECT actor, details FROM \`${controlDb}\`.audit_ledger WHERE action = 'catalog.column.change'`);
    expect((rows as Array<{ actor: string; details: string }>).map((r) => [r.actor, JSON.parse(r.details).reason])).toEqual([['wang.dba', 'addresses are secret from now on']]);
  });

  it('publishes a DBA\'s repointed target only once a security officer approves it, and never one written in the control database', async () => {
    const moved = `${run.pgSchema}_moved`;
    const repointed = run.writePipelineFile('repointed.yaml', {
      serverId: 6001,
      tables: [{ name: `${run.civilDb}.citizens`, columns: { ...CITIZEN_CLASSES, address: 'secret' } }],
      departments: [{ name: 'health', target: { kind: 'postgres', url: stack.postgresUrl, schema: moved } }],
    });
    const applied = cdc('dba-token', 'apply', repointed, '--reason', 'health moves schema');
    expect(applied).toMatchObject({ status: 0, stdout: expect.stringMatching(/^~ department health: target\n1 change\(s\) wait for a security officer: change \d+ /) });
    const changeId = /change (\d+)/.exec(applied.stdout)![1]!;
    expect(cdc('dba-token', 'changes', 'approve', changeId)).toMatchObject({ status: 4, stderr: expect.stringMatching(/^FORBIDDEN/) });
    await new Promise((r) => setTimeout(r, 3000));
    const published = readFileSync(policyFile, 'utf8');
    expect(published).not.toContain(moved);
    expect(cdc('officer-token', 'changes', 'reject', changeId, '--reason', 'not agreed with health')).toMatchObject({ status: 0, stdout: `change ${changeId} is rejected\n` });

    // Written in the control database instead: refused, the published policy stays.
    const [[row]] = (await mysql.query(`SELECT spec FROM \`${controlDb}\`.catalog_departments WHERE name = 'health'`)) as unknown as [[{ spec: string }]];
    await mysql.query(`UPDATE \`${controlDb}\`.catalog_departments SET spec = ? WHERE name = 'health'`, [row!.spec.replaceAll(run.pgSchema, moved)]);
    await eventually(async () => expect(await control.metrics()).toMatch(/^cityshare_control_settings_refused\{[^}]*\} 1$/m), 10_000, 500);
    await new Promise((r) => setTimeout(r, 2000));
    expect(readFileSync(policyFile, 'utf8')).toBe(published);
    await mysql.query(`UPDATE \`${controlDb}\`.catalog_departments SET spec = ? WHERE name = 'health'`, [row!.spec]);
    await eventually(async () => expect(await control.metrics()).toMatch(/^cityshare_control_settings_refused\{[^}]*\} 0$/m), 10_000, 500);
    const [rows] = await mysql.query(`SELECT action, details FROM \`${controlDb}\`.audit_ledger WHERE subject = ? ORDER BY seq`, [`catalog-change/${changeId}`]);
    expect((rows as Array<{ action: string }>).map((r) => r.action)).toEqual(['catalog.change.request', 'denied:change.approve', 'catalog.change.reject']);
    expect(JSON.stringify(rows)).not.toContain(moved);
  });

  it('refuses a published pipeline file edited by anyone else, and the control plane writes the published one again', async () => {
    const published = readFileSync(policyFile, 'utf8');
    // Whoever can write the file repoints health's target to a schema of theirs, the signature line kept.
    const edited = published.replaceAll(run.pgSchema, 'elsewhere');
    expect(edited).not.toBe(published);
    const copy = join(dirname(policyFile), 'edited.yaml');
    writeFileSync(copy, edited);
    const started = spawnSync(process.execPath, serviceArgs('transformer'), { cwd: stack.root, env: { ...servicesEnv, CITYSHARE_PIPELINE: copy, METRICS_PORT: '0' }, encoding: 'utf8', timeout: 60_000 });
    expect(started.status).not.toBe(0);
    expect(started.stdout + started.stderr).toContain('POLICY_SIGNATURE_INVALID');
    // Edited in place: the control plane notices, records it and writes the published policy again.
    writeFileSync(policyFile, edited);
    await eventually(() => expect(readFileSync(policyFile, 'utf8')).toBe(published), 10_000, 200);
    const [rows] = await mysql.query(`SELECT details FROM \`${controlDb}\`.audit_ledger WHERE action = 'policy.tampered'`);
    expect((rows as Array<{ details: string }>).map((r) => JSON.parse(r.details) as Record<string, unknown>)).toEqual([{ found: createHash('sha256').update(edited).digest('hex'), published: createHash('sha256').update(published).digest('hex') }]);
    expect(transformer.running).toBe(true);
  });

  it('runs the reader and the sink on the policy fetched from the control plane, on hosts without its files', async () => {
    const published = readFileSync(policyFile, 'utf8');
    for (const [svc, where] of [[reader, readerHost], [sink, sinkHost]] as const) {
      await eventually(() => expect(readFileSync(where.CITYSHARE_PIPELINE!, 'utf8')).toBe(published), 15_000, 250);
      expect(readFileSync(svc.logFile, 'utf8')).toContain('policy fetched from the control plane');
      expect(where.CITYSHARE_PIPELINE).not.toBe(policyFile);
    }
    // A token of another role may not fetch it; no token at all is a failed login.
    expect((await call('health-token', 'GET', '/policy')).status).toBe(403);
    expect((await fetch(`${api}/policy`)).status).toBe(401);
  });

  it('shows the control plane in `cdc status` for an SRE', async () => {
    const status = spawnSync(process.execPath, ['packages/cli/bin/cdc.js', '-c', policyFile, '--api', api, '--token', 'sre-token', 'status', '--json'], { cwd: stack.root, env: run.cliEnv, encoding: 'utf8' });
    expect(status.status, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      pipeline: run.prefix,
      departments: [{ department: 'health' }],
      control: { catalog: { sources: 1, tables: 1, departments: 1 }, grants: { approved: 0, revoked: 1, expired: 1 }, policy: { sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }, audit: { problems: 0 } },
    });
    // A department may not see the control plane's status.
    expect(cdc('health-token', '-c', policyFile, 'status')).toMatchObject({ status: 4 });
  });

  it('exports the control metrics the alert rules use, the ledger verified intact', async () => {
    const text = await control.metrics();
    const rules = readFileSync(join(stack.root, 'deploy', 'prometheus', 'alerts.yml'), 'utf8');
    const used = [...new Set([...rules.matchAll(/\bcityshare_control_[a-z0-9_]+/g)].map((m) => m[0]))];
    expect(used.length).toBeGreaterThanOrEqual(2);
    for (const name of used) expect(text).toContain(`# TYPE ${name} `);
    expect(text).toMatch(/^cityshare_control_audit_problems\{[^}]*\} 0$/m);
  });

  it('records verifications and repairs in the ledger for the roles that run them, and refuses the others', async () => {
    const run1 = { department: 'health', startedAt: new Date().toISOString(), finishedAt: new Date().toISOString(), sha256: 'a'.repeat(64), tables: [{ table: 'cityhub.civil.citizens', status: 'different', compared: 10, missing: 1, extra: 0, different: 2, unsettled: 0 }] };
    const recorded = await call('sre-token', 'POST', '/verify/runs', run1);
    expect(recorded.status).toBe(201);
    expect(recorded.body.seq).toEqual(expect.any(Number));
    expect((await call('health-token', 'POST', '/verify/runs', run1)).status).toBe(403);
    expect((await call('sre-token', 'POST', '/verify/runs', { ...run1, sha256: 'not a digest' })).status).toBe(400);
    const repair = { department: 'health', request: 'repair-health-1', fromVerify: 'a'.repeat(64), tables: [{ table: 'cityhub.civil.citizens', deliver: 2, delete: 1 }] };
    expect((await call('officer-token', 'POST', '/repairs', repair)).status).toBe(201);
    expect((await call('dba-token', 'POST', '/repairs', repair)).status).toBe(403);
    const [rows] = await mysql.query(`SELECT actor, action, subject, details FROM \`${controlDb}\`.audit_ledger WHERE action IN ('verify.run', 'repair.request', 'denied:verify.record', 'denied:repair.request') ORDER BY seq`);
    expect((rows as Array<{ actor: string; action: string; subject: string }>).map((r) => [r.actor, r.action, r.subject])).toEqual([
      ['li.sre', 'verify.run', 'verify/health'],
      ['health.app', 'denied:verify.record', 'verify/health'],
      ['zhang.officer', 'repair.request', 'repair/health/repair-health-1'],
      ['wang.dba', 'denied:repair.request', 'repair/health'],
    ]);
  });

  it('keeps every step in a ledger that verifies, and refuses unknown tokens and roles', async () => {
    expect((await fetch(`${api}/grants`)).status).toBe(401);
    expect((await call('sre-token', 'GET', '/grants')).status).toBe(403);
    const verified = await call('sre-token', 'GET', '/audit/verify');
    expect(verified.body).toMatchObject({ problems: [] });
    const [rows] = await mysql.query(`SELECT action FROM \`${controlDb}\`.audit_ledger ORDER BY seq`);
    const actions = (rows as Array<{ action: string }>).map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['catalog.table.add', 'grant.request', 'denied:grant.approve', 'grant.approve', 'policy.publish', 'delivery.batch', 'grant.revoke', 'grant.expire', 'denied:catalog.apply', 'catalog.column.change', 'denied:grant.list']));
  });
});
