import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVICES, ensureServicesBuilt, serviceArgs, serviceNodeFlags } from './build-services.js';

const root = join(import.meta.dirname, '..');

describe('service bundles', () => {
  it('every service starts from its bundle with the same flags in `npm start`', () => {
    for (const name of SERVICES) {
      const pkg = JSON.parse(readFileSync(join(root, 'services', name, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
      expect(pkg.scripts.start, name).toBe(`node --import tsx ../../scripts/build-services.ts && node ${serviceNodeFlags(name).join(' ')} dist/main.mjs`);
    }
  });

  it('a bundle runs on plain node: each service loads and refuses a missing pipeline file with its code', { timeout: 60_000 }, async () => {
    await ensureServicesBuilt();
    for (const name of SERVICES) {
      const r = spawnSync(process.execPath, serviceArgs(name), { cwd: root, env: { PATH: process.env.PATH, CITYSHARE_PIPELINE: '/nonexistent/pipeline.yaml', CONTROL_DATABASE_URL: 'mysql://root@127.0.0.1:1/none' }, encoding: 'utf8', timeout: 30_000 });
      expect(r.status, `${name}: ${r.stderr}`).toBe(1);
      expect(`${r.stdout}${r.stderr}`, name).toMatch(/"code":"[A-Z_]+"/);
    }
  });
});
