import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Brings the local stack up (idempotent) and builds the services' bundles once before the
 * integration suites; services start outside vitest, from their bundles.
 */
export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const result = spawnSync('bash', ['deploy/local/stack.sh', 'up'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) throw new Error('the local stack did not start; see the message above');
  const build = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/build-services.ts'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('the services did not build; see the message above');
}
