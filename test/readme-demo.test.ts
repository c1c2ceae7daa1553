import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { stack } from '../scripts/support/stack.js';

/**
 * The README's first command as a new user runs it: `npm run demo`, from the repository root,
 * to its end; then what "What the demo shows" says is checked against its output and against
 * the departments' tables it leaves behind.
 */
const readme = readFileSync(join(stack.root, 'README.md'), 'utf8');

describe('README: npm run demo', () => {
  it('runs as written, finishes by itself, and the departments hold what the README says', async () => {
    expect(readme).toContain('npm run demo   # set-up included');
    const demo = spawn('npm', ['run', 'demo'], { cwd: stack.root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    demo.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    demo.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        process.kill(-demo.pid!, 'SIGKILL');
        resolve(null);
      }, 240_000);
      demo.once('exit', (c) => (clearTimeout(timer), resolve(c)));
    });
    expect(code, `npm run demo exited with ${code}:\n${output.slice(-4000)}`).toBe(0);
    // eslint-disable-next-line no-control-regex
    const text = output.replace(/\x1b\[[0-9;]*m/g, '');

    // Names and phones masked, the ID card delivered as ciphertext that opens with the health key.
    const shown = [...text.matchAll(/^ {2}(\d+) +(\S+) -> (\S+) {2}(\d{11}) -> (\S+) {2}([0-9a-f]{16})… -> (\S+)$/gm)];
    expect(shown.length, text).toBe(6);
    for (const [, , name, masked, phone, maskedPhone, , idCard] of shown) {
      expect(masked).toBe(`${[...name!][0]}${'*'.repeat([...name!].length - 1)}`);
      expect(maskedPhone).toBe(`${phone!.slice(0, 3)}****${phone!.slice(-4)}`);
      expect(idCard).toMatch(/^\d{17}[\dX]$/);
    }
    expect(text).toContain('13911112222 -> 139****2222');
    expect(text).toMatch(/The health department received (\d+) citizens \(source holds \1\)/);
    // The negative fee breaks the quality rule and is dead-lettered.
    expect(text).toMatch(/cityshare_transformer_dlq_total\{[^}]*reason="QUALITY_FAILED"[^}]*department="health"[^}]*\} 1/);

    const source = await createConnection({ ...stack.source });
    const target = new pg.Client({ connectionString: stack.postgresUrl });
    await target.connect();
    try {
      const [rows] = await source.query("SELECT id FROM civil.citizens WHERE district = '海淀' ORDER BY id");
      const haidianAtSource = (rows as Array<{ id: number }>).map((r) => String(r.id));
      const haidian = await target.query('SELECT id::text AS id, birth_date, id_card FROM dept_haidian.citizens ORDER BY citizens.id');
      // Only its district's rows, birth dates as years, the ID card as a token.
      expect(haidian.rows.map((r) => r.id)).toEqual(haidianAtSource);
      expect(text).toContain(`received only its district's ${haidianAtSource.length} citizens`);
      for (const r of haidian.rows) {
        expect(String(r.birth_date)).toMatch(/^\d{4}$/);
        expect(String(r.id_card)).not.toMatch(/^\d{17}[\dX]$/);
      }
      // Columns not granted to health are not in its table; transport is not shared with it.
      const columns = await target.query("SELECT column_name FROM information_schema.columns WHERE table_schema = 'dept_health' AND table_name = 'citizens'");
      const names = columns.rows.map((r) => r.column_name as string);
      expect(names).toEqual(expect.arrayContaining(['id', 'name', 'phone', 'id_card']));
      expect(names).not.toContain('address');
      expect(names).not.toContain('registered_at');
      const transport = await target.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'dept_health' AND table_name = 'bus_card_taps'");
      expect(transport.rows[0].n).toBe(0);
      const fee = await target.query('SELECT pg_typeof(fee)::text AS t FROM dept_health.clinic_visits LIMIT 1');
      expect(fee.rows[0].t).toBe('numeric');
    } finally {
      await source.end();
      await target.end();
    }
  }, 260_000);
});
