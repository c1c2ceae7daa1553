import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stack } from '../scripts/support/stack.js';

/**
 * The README's "Share your own table" as a new user follows it: `npm run control` in a first
 * terminal, then every line of the tutorial block run as written, in order, by bash from the
 * repository root (an `export` line carries on to the next lines, as in a terminal), then the
 * commands to try after it (docs/control-plane.md).
 */
const readme = readFileSync(join(stack.root, 'README.md'), 'utf8');
const controlPlaneDoc = readFileSync(join(stack.root, 'docs', 'control-plane.md'), 'utf8');
/** The marked command blocks of a page, in the order they appear. */
const tutorialBlocks = (text: string) => [...text.matchAll(/<!-- tutorial:begin[^>]*-->\n```bash\n([\s\S]*?)```\n<!-- tutorial:end -->/g)].map((m) => m[1]!);
const blocks = [...tutorialBlocks(readme), ...tutorialBlocks(controlPlaneDoc)];
const lines = blocks.join('').split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));

const resetTutorialData = async () => {
  const source = await createConnection({ ...stack.source });
  await source.query('DROP DATABASE IF EXISTS parks');
  await source.end();
  const target = new pg.Client({ connectionString: stack.postgresUrl });
  await target.connect();
  await target.query('DROP TABLE IF EXISTS dept_health.benches');
  await target.end();
};

describe('README: share your own table', () => {
  let control: ChildProcess;
  let output = '';

  beforeAll(async () => {
    expect(blocks.length, 'the README has the tutorial, docs/control-plane.md the commands to try after it').toBe(2);
    await resetTutorialData();
    // Terminal 1, as the README says.
    expect(readme).toContain('npm run control   # the control plane');
    control = spawn('npm', ['run', 'control'], { cwd: stack.root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    control.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    control.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 170_000;
    while (!output.includes('control plane ready')) {
      if (control.exitCode !== null) throw new Error(`npm run control exited with ${control.exitCode}:\n${output}`);
      if (Date.now() > deadline) throw new Error(`npm run control not ready after 170 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }, 180_000);

  afterAll(async () => {
    if (control?.pid && control.exitCode === null) {
      const exited = new Promise((r) => control.once('exit', r));
      process.kill(-control.pid, 'SIGINT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
      if (control.exitCode === null) {
        try {
          process.kill(-control.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
    await resetTutorialData();
  });

  it('runs every command of the tutorial as written, and the department receives what was granted', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.CDC_TOKEN;
    delete env.CDC_CONTROL_API;
    delete env.CITYSHARE_PIPELINE;
    let rows = '';
    for (const line of lines) {
      if (line.startsWith('export ')) {
        for (const [, name, value] of line.slice(7).matchAll(/(\w+)=(\S+)/g)) env[name!] = value;
        continue;
      }
      // Step 4 says to run it again while the rows are on their way.
      const again = line.startsWith('psql ');
      const deadline = Date.now() + 60_000;
      for (;;) {
        const r = spawnSync('bash', ['-c', line], { cwd: stack.root, env, encoding: 'utf8', timeout: 120_000 });
        const done = r.status === 0 && (!again || r.stdout.includes('玉渊潭公园'));
        if (done) {
          if (again) rows = r.stdout;
          break;
        }
        if (!again || Date.now() > deadline) throw new Error(`${line}\nexited with ${r.status}:\n${r.stdout}\n${r.stderr}`);
        await new Promise((res) => setTimeout(res, 1000));
      }
    }
    // As granted: ids and parks as they are, sponsors masked, nothing else.
    expect(rows).toMatch(/ 1 \| 玉渊潭公园 \| 张\*/);
    expect(rows).toMatch(/ 2 \| 朝阳公园\s+\| 李\*/);
    expect(rows).not.toMatch(/张伟|李娜|installed/);
  });
});
