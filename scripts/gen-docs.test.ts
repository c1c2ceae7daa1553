import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { generatedDocs } from './gen-docs.js';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('references generated from the code', () => {
  it('docs/settings.md, docs/errors.md and the role matrix in docs/control-plane.md are up to date (npm run docs)', () => {
    for (const { path, content } of generatedDocs()) expect(readFileSync(`${root}/${path}`, 'utf8'), `${path} is stale: run npm run docs`).toBe(content);
  });

  it('every setting says what it does', () => {
    const settings = generatedDocs().find((d) => d.path === 'docs/settings.md')!.content;
    const undescribed = settings.split('\n').filter((l) => /^\| `[A-Z_]+` \| [^|]+ \| +(\(|\|)/.test(l));
    expect(undescribed).toEqual([]);
  });
});
