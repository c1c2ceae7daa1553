import { z } from 'zod';
import { pipelineSchema } from './pipeline-schema.js';

/** JSON Schema of the pipeline file, as input (defaults optional), from the zod schema. */
export function pipelineJsonSchema(): Record<string, unknown> {
  return {
    $id: 'https://cityshare.dev/schemas/pipeline.schema.json',
    title: 'cityshare pipeline file (pipeline.yaml)',
    ...z.toJSONSchema(pipelineSchema, { io: 'input', unrepresentable: 'any' }),
  };
}
