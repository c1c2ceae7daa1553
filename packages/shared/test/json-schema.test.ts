import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pipelineJsonSchema } from '../src/config/json-schema.js';

describe('schemas/pipeline.schema.json', () => {
  it('matches the zod schema the services validate with (run `npm run schemas` after changing it)', () => {
    const committed = JSON.parse(readFileSync(new URL('../../../schemas/pipeline.schema.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(pipelineJsonSchema())));
  });

  it('flags secrets so tools can redact them', () => {
    expect(JSON.stringify(pipelineJsonSchema())).toContain('"secret":true');
  });
});
