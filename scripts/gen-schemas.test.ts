import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pipelineSchemaFile } from './gen-schemas.js';

describe('schemas/pipeline.schema.json', () => {
  it('matches the zod schema the services validate with, every target included (run `npm run schemas` after changing it)', () => {
    const committed = readFileSync(new URL('../schemas/pipeline.schema.json', import.meta.url), 'utf8');
    expect(JSON.parse(committed)).toEqual(JSON.parse(pipelineSchemaFile()));
  });

  it('flags secrets so tools can redact them', () => {
    expect(pipelineSchemaFile()).toContain('"secret": true');
  });
});
