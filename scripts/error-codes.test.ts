import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '@cityshare/shared';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Every `.ts` under the workspaces' src folders, relative to the repository. */
const sources = ['packages', 'services'].flatMap((group) =>
  readdirSync(join(root, group)).flatMap((workspace) => {
    const src = join(group, workspace, 'src');
    try {
      return readdirSync(join(root, src), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(src, f));
    } catch {
      return [];
    }
  }),
);

/**
 * Plain errors in files other work is changing now, to be coded there (issue 19): each
 * entry is the file and how many it may still hold.
 */
const PENDING: Record<string, number> = {
};

describe('error codes in the code', () => {
  it('a code written as a literal (a log line, an answer, a status line) is one of the catalogue', () => {
    expect(sources.length).toBeGreaterThan(50);
    const unknown: string[] = [];
    for (const file of sources) {
      for (const m of readFileSync(join(root, file), 'utf8').matchAll(/\bcode: '([A-Z][A-Z0-9_]+)'/g)) {
        if (!(m[1]! in ERROR_CODES)) unknown.push(`${file}: ${m[1]}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  it('an error an operator can meet is a CdcError: a plain Error only with a comment above saying why none can', () => {
    const plain: string[] = [];
    for (const file of sources) {
      const lines = readFileSync(join(root, file), 'utf8').split('\n');
      const uncommented = lines.filter((line, i) => /\bnew Error\(/.test(line) && !/^\s*\/\//.test(lines[i - 1] ?? '') && !/^\s*\/\//.test(lines[i - 2] ?? ''));
      if (uncommented.length > (PENDING[file] ?? 0)) plain.push(...uncommented.map((l) => `${file}: ${l.trim()}`));
    }
    expect(plain).toEqual([]);
  });
});
