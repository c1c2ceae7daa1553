import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Brings the local stack up (idempotent) and builds the services' bundles once before the
 * integration suites; services start outside vitest, from their bundles. Each integration
 * lane runs this at its start: under one lock, so two lanes never start the stack or build
 * at the same time (the second finds it all up and built).
 */
export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const lock = join(tmpdir(), `cityshare-setup-${createHash('sha256').update(root).digest('hex').slice(0, 12)}.lock`);
  const result = spawnSync('flock', [lock, 'bash', 'deploy/local/stack.sh', 'up'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) throw new Error('the local stack did not start; see the message above');
  const build = spawnSync('flock', [lock, process.execPath, '--import', 'tsx', 'scripts/build-services.ts'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('the services did not build; see the message above');
}
