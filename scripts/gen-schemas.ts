/**
 * Writes schemas/pipeline.schema.json from the zod schema the services validate with, with
 * every department target of the sink's registry, so editors can check pipeline.yaml and the
 * reference never drifts from the code.
 * A unit test fails when the committed file is stale: run `npm run schemas`.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { pipelineJsonSchema } from '../packages/shared/src/config/json-schema.js';
import { pipelineTargets } from '../services/sink/src/targets/registry.js';

/** The JSON schema of pipeline.yaml as `npm run schemas` writes it. */
export function pipelineSchemaFile(): string {
  return JSON.stringify(pipelineJsonSchema(pipelineTargets), null, 2) + '\n';
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const target = new URL('../schemas/pipeline.schema.json', import.meta.url);
  writeFileSync(target, pipelineSchemaFile());
  console.log(`wrote ${target.pathname}`);
}
