import { defineConfig } from 'vitest/config';

/**
 * The integration suites share one stack (each with its own databases, topic prefix and
 * schemas), in two lanes that `npm test` (scripts/test.sh) runs side by side, each one file at
 * a time, balanced by their recorded durations; new files join the second lane. Files that
 * use the same fixed resources (the README's demo and tutorial) share a lane; the capture of
 * the loopback traffic runs alone, after both lanes.
 */
const ALONE = ['test/wire-capture.test.ts'];
const LANE_1 = [
  // The README's demo and tutorial share the demo's databases and the local control plane: one lane, one after the other.
  'test/readme-tutorial.test.ts', 'test/readme-demo.test.ts',
  'test/verify.test.ts', 'test/policy.test.ts', 'test/scale-out.test.ts', 'test/registry-recovery.test.ts', 'test/oversize-event.test.ts',
  'test/reader-recovery.test.ts', 'test/forged-records.test.ts', 'test/webhook-revocation.test.ts', 'test/sink-delivery.test.ts',
  'test/resilience.test.ts', 'test/reader-failover.test.ts', 'test/rabbitmq.test.ts', 'test/registry-tls.test.ts', 'test/target-tls.test.ts',
];
const integration = {
  globalSetup: ['test/global-setup.ts'],
  testTimeout: 180_000,
  hookTimeout: 180_000,
  fileParallelism: false,
};

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'scripts/**/*.test.ts', 'bench/**/*.test.ts'],
        },
      },
      { test: { name: 'integration', include: LANE_1, ...integration } },
      { test: { name: 'integration-lane-2', include: ['test/**/*.test.ts'], exclude: [...LANE_1, ...ALONE], ...integration } },
      { test: { name: 'integration-alone', include: ALONE, ...integration } },
    ],
  },
});
