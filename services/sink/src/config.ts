import { z } from 'zod';
import { commonServiceEnv } from '@cityshare/shared';

export const sinkEnv = z.object({
  ...commonServiceEnv('sink'),
  SINK_DEPARTMENT: z.string().optional().describe('department to deliver; may be omitted when the pipeline has one'),
});

export type SinkEnv = z.infer<typeof sinkEnv>;
