import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring, POLICY_PUBLIC_KEYS_ENV, policySigningKey } from '@cityshare/shared';
import { LOCAL_TOKENS } from '../scripts/control-local.js';
import { eventually } from '../scripts/support/eventually.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import { freePort, type ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';
import { launchChromium, personOf, signIn } from './support/console-browser.js';

/**
 * Where the test run leaves its screenshots: docs/screens (the README's and
 * docs/control-plane.md's) when UPDATE_SCREENSHOTS=1, else the stack's folder, so an ordinary
 * run leaves the checkout as it was (every run's pages differ in ids and times).
 */
const SCREENS = process.env.UPDATE_SCREENSHOTS === '1' ? join(stack.root, 'docs', 'screens') : join(stack.stackDir, 'screens');

/**
 * The web console in headless Chromium against one control plane and one pipeline run
 * (control service, reader, transformer, sink on the policy it publishes): each role signs in
 * and sees its pages; the department requests, the officer approves on what the department
 * would receive, rows arrive at the department's PostgreSQL table and stop after the revoke;
 * a role is refused what it may not do (403 shown, in the ledger); the language switches; and
 * the browser-facing defences (CSP, cookie flags, CSRF, no token in URLs or logs) hold.
 */
describe('web console', () => {
  const run = new PipelineRun();
  const controlDb = `${run.id}_control`;
  const policyFile = join(dirname(run.keyringFile), 'policy.yaml');
  const table = `cityhub.${run.civilDb}.citizens`;
  let base = '';
  let browser: Browser;
  let control: ServiceProcess;
  let mysql: Connection;
  const people: Array<{ urls: string[] }> = [];

  const person = async (role: keyof typeof LOCAL_TOKENS) => {
    const p = await personOf(browser, base);
    people.push(p);
    await signIn(p.page, LOCAL_TOKENS[role].token);
    return p.page;
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: join(SCREENS, `${name}.png`), fullPage: true });
  const healthRows = async () =>
    (await run.pg.query(`SELECT id, name, district FROM "${run.pgSchema}".citizens ORDER BY id`).catch(() => ({ rows: [] }))).rows as Array<{ id: string; name: string; district: string }>;
  const insert = (id: number, district: string) =>
    run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES (?, '王小明', '110101199001010000', '13800000000', ?, NOW(6))`, [id, district]);
  const ledger = async (action: string, actor: string) =>
    ((await mysql.query(`SELECT subject FROM \`${controlDb}\`.audit_ledger WHERE action = ? AND actor = ?`, [action, actor]))[0] as Array<{ subject: string }>);

  beforeAll(async () => {
    mkdirSync(SCREENS, { recursive: true });
    await run.setUp();
    const controlKeys = FileKeyring.ensure(run.keyringFile, ['audit', 'policy']);
    mysql = await createConnection({ ...stack.targetMariadb });
    await mysql.query(`CREATE DATABASE \`${controlDb}\``);
    const dir = dirname(run.keyringFile);
    const sha = (t: string) => createHash('sha256').update(t).digest('hex');
    writeFileSync(join(dir, 'tokens.json'), JSON.stringify(Object.values(LOCAL_TOKENS).map(({ token, ...who }) => ({ tokenSha256: sha(token), ...who }))));
    const basePipeline = run.writePipelineFile('base.yaml', {
      serverId: 6301,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: [{ name: 'health', target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema }, grants: [] }],
    });
    const metricsTargets = join(dir, 'metrics-targets.json');
    writeFileSync(metricsTargets, '[]');
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    control = await run.start('control', {
      CONTROL_DB_URL: `mysql://root@${stack.targetMariadb.host}:${stack.targetMariadb.port}/${controlDb}`,
      CONTROL_BASE_PIPELINE: basePipeline,
      CONTROL_KEYRING: run.keyringFile,
      CONTROL_TOKENS: join(dir, 'tokens.json'),
      CONTROL_PORT: String(port),
      CONTROL_METRICS_TARGETS: metricsTargets,
      CITYSHARE_PIPELINE: policyFile,
    });
    const env = { CITYSHARE_PIPELINE: policyFile, [POLICY_PUBLIC_KEYS_ENV]: policySigningKey(controlKeys.activeKey('policy')).publicKey };
    await run.start('cdc-reader', env);
    await run.start('transformer', env);
    await run.start('sink', env);
    run.writeMetricsTargets(metricsTargets);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await run.tearDown();
    await mysql?.query(`DROP DATABASE IF EXISTS \`${controlDb}\``);
    await mysql?.end();
  });

  it('signs each role in and shows it only its pages, dates in its own time zone', async () => {
    const expected: Record<keyof typeof LOCAL_TOKENS, string[]> = {
      dba: ['数据目录', '访问申请', '管道状态'],
      officer: ['数据目录', '访问申请', '管道状态', '审计', '密钥'],
      health: ['数据目录', '访问申请'],
      sre: ['数据目录', '管道状态', '密钥'],
      auditor: ['数据目录', '访问申请', '审计', '密钥'],
    };
    const first = await personOf(browser, base);
    people.push(first);
    await first.page.waitForSelector('form.sign-in');
    await shot(first.page, 'sign-in');
    await first.context.close();
    for (const role of Object.keys(expected) as Array<keyof typeof LOCAL_TOKENS>) {
      const page = await person(role);
      expect((await page.locator('nav a').allInnerTexts()).map((s) => s.trim()), role).toEqual(expected[role]);
      expect(await page.locator('[data-testid=who]').innerText()).toContain(LOCAL_TOKENS[role].name);
      expect(await page.locator('footer').innerText()).toContain('Asia/Shanghai');
      await page.context().close();
    }
  });

  it('shows the catalog; a DBA previews a classification as a diff, and a refused registration lists every problem', async () => {
    const page = await person('dba');
    const row = page.locator(`tr[data-table="${run.civilDb}.citizens"]`);
    await expect.poll(() => row.innerText()).toContain('id_card: 机密');
    await row.getByRole('button').click();
    const editor = page.locator('[data-testid=table-editor]');
    const registeredAt = editor.locator('tr[data-column=registered_at] select');
    await registeredAt.selectOption('personal');
    await editor.getByRole('button', { name: '预览变更' }).click();
    await expect.poll(() => editor.locator('[data-testid=catalog-diff]').innerText()).toMatch(/~ column cityhub\..*citizens\.registered_at: internal → personal[\s\S]*尚未应用/);
    await shot(page, 'catalog');
    await registeredAt.selectOption('internal');
    await page.locator('button', { hasText: '登记新表' }).click();
    const register = page.locator('[data-testid=table-editor]');
    await register.locator('input[name=table]').fill(`${run.civilDb}.no_such_table`);
    await register.locator('input[name=column-0]').fill('id');
    await register.getByRole('button', { name: '预览变更' }).click();
    await expect.poll(() => register.locator('[role=alert]').getAttribute('data-code')).toBe('TABLE_NOT_FOUND');
    await page.context().close();
  });

  it('lets the department request with a live check of its filter; the officer approves on what the department would receive; rows arrive, and stop after the revoke', async () => {
    await insert(1, '海淀');
    await insert(2, '朝阳');
    const health = await person('health');
    await health.goto(`${base}/console/#/access`);
    const form = health.locator('[data-testid=request-form]');
    await form.locator('select[name=table]').selectOption(table);
    await form.locator('select[name=action-id]').selectOption('pass');
    await form.locator('select[name=action-name]').selectOption('mask:name');
    await form.locator('select[name=action-phone]').selectOption('mask:phone');
    await form.locator('select[name=action-id_card]').selectOption('tokenize');
    await form.locator('select[name=action-district]').selectOption('pass');
    const check = form.locator('[data-testid=live-check]');
    // SQL's `=` is not the filter language's `==`: the API says so while the department types.
    await form.locator('input[name=filter]').fill("district = '海淀'");
    await expect.poll(() => check.getAttribute('data-state'), { timeout: 10_000 }).toBe('invalid');
    expect(await check.innerText()).toContain('CONFIG_INVALID');
    await form.locator('input[name=filter]').fill('district == "海淀"');
    // On failure the poll says what the API found wrong.
    await expect.poll(async () => ((await check.getAttribute('data-state')) === 'valid' ? 'valid' : check.innerText()), { timeout: 10_000 }).toBe('valid');
    await form.locator('input[name=purpose]').fill('疫苗接种随访');
    await shot(health, 'access-request');
    await form.locator('button[type=submit]').click();
    const sent = await health.locator('[data-testid=request-sent]').innerText();
    const id = Number(/\d+/.exec(sent)![0]);

    const officer = await person('officer');
    await officer.goto(`${base}/console/#/access`);
    await officer.locator(`[data-testid=queue] tr[data-grant="${id}"] a`).click();
    const preview = officer.locator('[data-testid=preview]');
    await expect.poll(() => preview.innerText()).toMatch(/name\s+个人信息\s+mask name\s+张三丰\s+张\*\*/);
    expect(await preview.innerText()).toMatch(/phone\s+个人信息\s+mask phone\s+13812345678\s+138\*\*\*\*5678/);
    expect(await preview.innerText()).toMatch(/id_card\s+机密\s+tokenize\s+110101199003074578\s+tok:preview:/);
    expect(await preview.locator('tr.sensitive').count()).toBe(3);
    await officer.fill('textarea[name=reason]', '2026 年疫苗接种随访');
    await shot(officer, 'access-review');
    await officer.click('button[data-decision=approve]');
    await expect.poll(() => officer.locator('[data-testid=decided]').innerText()).toContain('已批准');
    expect(await ledger('grant.approve', LOCAL_TOKENS.officer.name)).toEqual([{ subject: `grant/${id}` }]);

    // The department's table: the granted columns, masked as approved, only the rows the filter lets through.
    await eventually(async () => expect(await healthRows()).toEqual([{ id: '1', name: '王**', district: '海淀' }]), 60_000, 500);
    await insert(3, '海淀');
    await eventually(async () => expect((await healthRows()).map((r) => r.id)).toEqual(['1', '3']), 30_000, 500);

    await officer.goto(`${base}/console/#/access`);
    await officer.locator(`[data-testid=in-force] tr[data-grant="${id}"] a`).click();
    await officer.fill('textarea[name=reason]', '随访结束');
    await officer.click('button[data-decision=revoke]');
    await expect.poll(() => officer.locator('[data-testid=decided]').innerText()).toContain('已撤销');
    // Revocation takes effect within 5 s; a row inserted after it never arrives.
    await new Promise((r) => setTimeout(r, 5000));
    await insert(4, '海淀');
    await new Promise((r) => setTimeout(r, 5000));
    expect((await healthRows()).map((r) => r.id)).toEqual(['1', '3']);
    await health.context().close();
    await officer.context().close();
  });

  it("shows an SRE the pipeline's status, refreshing by itself", async () => {
    const sre = await person('sre');
    await sre.goto(`${base}/console/#/pipeline`);
    await expect.poll(() => sre.locator('[data-testid=sources]').innerText(), { timeout: 15_000 }).toMatch(/cityhub\s+\S+:\d+\s+\S+:\d+/);
    expect(await sre.locator('[data-testid=departments]').innerText()).toMatch(/health\s+postgres\s+\d+\s+\d+/);
    expect(await sre.locator('[data-testid=services]').innerText()).toMatch(/cdc-reader[\s\S]*transformer[\s\S]*sink/);
    const first = await sre.locator('[data-testid=updated]').innerText();
    await expect.poll(() => sre.locator('[data-testid=updated]').innerText(), { timeout: 12_000 }).not.toBe(first);
    await shot(sre, 'pipeline');
    await sre.context().close();
  });

  it('refuses a role what it may not do: the 403 is shown and written to the ledger', async () => {
    const sre = await person('sre');
    await sre.goto(`${base}/console/#/audit`);
    const refusal = sre.locator('[role=alert][data-status="403"]').first();
    await expect.poll(() => refusal.innerText()).toMatch(/^403 FORBIDDEN: li\.sre: role sre may not audit\.show/);
    expect(await refusal.innerText()).toContain('Ask someone with the right role');
    expect(await ledger('denied:audit.show', LOCAL_TOKENS.sre.name)).not.toEqual([]);
    await sre.context().close();
  });

  it('shows the auditor the ledger, filtered and verified, and the delivery records per department', async () => {
    const auditor = await person('auditor');
    await auditor.goto(`${base}/console/#/audit`);
    await auditor.click('[data-testid=verify]');
    await expect.poll(() => auditor.locator('[data-testid=verification]').innerText()).toMatch(/^完整：\d+ 条，签名头 \d+ [0-9a-f]{16}/);
    await auditor.locator('[data-testid=deliveries] select').selectOption('health');
    await expect.poll(() => auditor.locator('[data-testid=deliveries]').innerText()).toMatch(/批次: [1-9]\d* · 行数: [1-9]/);
    await auditor.fill('input[name=action]', 'grant.revoke');
    await auditor.click('form.filters button[type=submit]');
    await expect.poll(() => auditor.locator('[data-testid=ledger] tbody tr').count()).toBe(1);
    expect(await auditor.locator('[data-testid=ledger] tbody').innerText()).toContain('随访结束');
    await auditor.click('form.filters button:has-text("清除")');
    await expect.poll(() => auditor.locator('[data-testid=ledger] tbody tr').count()).toBeGreaterThan(5);
    await shot(auditor, 'audit');
    await auditor.context().close();
  });

  it('lets the officer rotate a key with a reason; the list shows the new active version', async () => {
    const officer = await person('officer');
    await officer.goto(`${base}/console/#/keys`);
    await officer.locator('[data-testid=rotate] select[name=name]').selectOption('department:haidian');
    await officer.fill('[data-testid=rotate] input[name=reason]', '年度轮换');
    await officer.click('[data-testid=rotate] button[type=submit]');
    await expect.poll(() => officer.locator('tr[data-key-list="department:haidian"]').count()).toBe(2);
    expect(await officer.locator('tr[data-key-list="department:haidian"]').last().innerText()).toContain(LOCAL_TOKENS.officer.name);
    expect(await ledger('key.rotate', LOCAL_TOKENS.officer.name)).toEqual([{ subject: 'key/department:haidian' }]);
    await shot(officer, 'keys');
    await officer.context().close();
  });

  it('switches to English and back, and keeps only that choice in the browser', async () => {
    const page = await person('officer');
    await page.click('[data-testid=lang-switch]');
    expect((await page.locator('nav a').allInnerTexts()).map((s) => s.trim())).toEqual(['Catalog', 'Access requests', 'Pipeline status', 'Audit', 'Keys']);
    expect(await page.locator('html').getAttribute('lang')).toBe('en');
    await shot(page, 'catalog-en');
    await page.reload();
    await page.waitForSelector('nav a');
    expect(await page.locator('nav a').first().innerText()).toBe('Catalog');
    await page.click('[data-testid=lang-switch]');
    expect(await page.locator('nav a').first().innerText()).toBe('数据目录');
    const stored = await page.evaluate('({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie })');
    expect(stored).toEqual({ local: { 'cityshare.lang': 'zh-CN' }, session: {}, cookie: '' });
    await page.context().close();
  });

  it('holds its defences: strict CSP, HttpOnly SameSite=Strict cookies, CSRF on every change, no token in a URL or a log', async () => {
    const page = await person('officer');
    const index = await page.request.get(`${base}/console/`);
    const csp = index.headers()['content-security-policy']!;
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:/);
    expect(await index.text()).not.toMatch(/<script>|<style>|style="/);
    const cookies = await page.context().cookies();
    expect(cookies.find((c) => c.name === 'cityshare_session')).toMatchObject({ httpOnly: true, sameSite: 'Strict', secure: false, path: '/' });
    expect(cookies.find((c) => c.name === 'cityshare_csrf')).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    // The page's own session, without the CSRF token only its script holds: refused, nothing rotated.
    const forged = await page.evaluate(async () => {
      const res = await fetch('/keys/rotate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'department:haidian', reason: 'forged' }) });
      return { status: res.status, body: (await res.json()) as { code: string } };
    });
    expect(forged).toMatchObject({ status: 403, body: { code: 'CSRF_INVALID' } });
    expect(await ledger('key.rotate', LOCAL_TOKENS.officer.name)).toHaveLength(1);
    await page.context().close();

    const tokens = Object.values(LOCAL_TOKENS).map((t) => t.token);
    const urls = people.flatMap((p) => p.urls);
    expect(urls.length).toBeGreaterThan(20);
    expect(urls.filter((u) => tokens.some((t) => u.includes(t)))).toEqual([]);
    const logs = run.services.map((s) => readFileSync(s.logFile, 'utf8')).join('\n');
    expect(logs).toContain('"service":"control"');
    expect(tokens.filter((t) => logs.includes(t))).toEqual([]);
    expect(readFileSync(control.logFile, 'utf8')).not.toMatch(/cityshare_session=|x-csrf-token/);
  });
});
