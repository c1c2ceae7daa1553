import { describe, expect, it } from 'vitest';
import { failedTests } from './failed-tests.js';

describe('failedTests', () => {
  it('names each failed test with the head of its failure, and a file that failed outside its tests', () => {
    const report = {
      testResults: [
        {
          name: '/ci/test/a.test.ts', status: 'failed', message: '',
          assertionResults: [
            { fullName: 'a passes', status: 'passed', failureMessages: [] },
            { fullName: 'a > says TARGET_UNREACHABLE', status: 'failed', failureMessages: ['AssertionError: expected 1\nline 2\nline 3'] },
          ],
        },
        { name: '/ci/test/b.test.ts', status: 'failed', message: 'Hook timed out in 180000ms', assertionResults: [] },
        { name: '/ci/test/c.test.ts', status: 'passed', message: '', assertionResults: [{ fullName: 'c', status: 'passed', failureMessages: [] }] },
      ],
    };
    expect(failedTests(report, 2)).toEqual([
      'FAILED /ci/test/a.test.ts > a > says TARGET_UNREACHABLE\n    AssertionError: expected 1\n    line 2',
      'FAILED /ci/test/b.test.ts\n    Hook timed out in 180000ms',
    ]);
  });
});
