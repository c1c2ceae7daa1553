/**
 * Names the tests that failed in vitest's JSON reports (scripts/test.sh writes one per run
 * under .stack/test-results), with the first lines of each failure, so the end of a CI log
 * says what failed even after the component logs.
 *
 *   node --import tsx scripts/failed-tests.ts .stack/test-results/*.json
 */
import { readFileSync } from 'node:fs';

interface Assertion { fullName: string; status: string; failureMessages: string[] }
interface FileResult { name: string; status: string; message: string; assertionResults: Assertion[] }

export function failedTests(report: { testResults: FileResult[] }, lines = 6): string[] {
  const out: string[] = [];
  const head = (text: string) => text.split('\n').slice(0, lines).map((l) => `    ${l}`).join('\n');
  for (const file of report.testResults) {
    const failed = file.assertionResults.filter((a) => a.status === 'failed');
    for (const a of failed) out.push(`FAILED ${file.name} > ${a.fullName}\n${head(a.failureMessages[0] ?? '')}`);
    // A file can fail outside its tests (a hook, an import): vitest says so in the file's message.
    if (failed.length === 0 && file.status === 'failed') out.push(`FAILED ${file.name}\n${head(file.message || 'outside its tests (a beforeAll or afterAll hook, or an import): its error is in the log above, after the file\'s FAIL line')}`);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const path of process.argv.slice(2)) {
    try {
      for (const line of failedTests(JSON.parse(readFileSync(path, 'utf8')))) console.log(line);
    } catch (err) {
      console.log(`${path}: no report (${(err as Error).message.split('\n')[0]})`);
    }
  }
}
