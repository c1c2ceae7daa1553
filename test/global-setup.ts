import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Brings the local stack up (idempotent) before the integration suites; services start outside vitest. */
export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const result = spawnSync('bash', ['deploy/local/stack.sh', 'up'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) throw new Error('the local stack did not start; see the message above');
}
