import { z } from 'zod';
import { pipelineSchemaOf } from './pipeline-schema.js';
import type { PipelineTargets, TargetSettings } from './pipeline-targets.js';

/** JSON Schema of the pipeline file with these targets (the sink's registry: `npm run schemas`), as input (defaults optional), from the zod schema. */
export function pipelineJsonSchema<T extends TargetSettings>(targets: PipelineTargets<T>): Record<string, unknown> {
  return {
    $id: 'https://cityshare.dev/schemas/pipeline.schema.json',
    title: 'cityshare pipeline file (pipeline.yaml)',
    ...z.toJSONSchema(pipelineSchemaOf(targets.schema), { io: 'input', unrepresentable: 'any' }),
  };
}
