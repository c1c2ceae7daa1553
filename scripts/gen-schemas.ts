/**
 * Writes schemas/pipeline.schema.json from the zod schema the services validate with,
 * so editors can check pipeline.yaml and the reference never drifts from the code.
 * A unit test fails when the committed file is stale: run `npm run schemas`.
 */
import { writeFileSync } from 'node:fs';
import { pipelineJsonSchema } from '../packages/shared/src/config/json-schema.js';

const target = new URL('../schemas/pipeline.schema.json', import.meta.url);
writeFileSync(target, JSON.stringify(pipelineJsonSchema(), null, 2) + '\n');
console.log(`wrote ${target.pathname}`);
