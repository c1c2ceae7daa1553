import { z } from 'zod';
import { commonServiceEnv } from '@cityshare/shared';

export const sinkEnv = z.object({
  ...commonServiceEnv('sink'),
  SINK_DEPARTMENT: z.string().optional().describe('department to deliver; may be omitted when the pipeline has one'),
  SINK_PARTITIONS_CONCURRENTLY: z.coerce.number().int().min(1).max(16).default(1).describe('share partitions delivered at once: while the target writes one batch, the next is decoded (a table target writes each on a connection of its own, 4 at most). 3 measured 2x faster into PostgreSQL (BENCHMARKS.md), but while a target is down the sink then reports its brokers silent instead of the target (KAFKA_UNREACHABLE, not TARGET_UNREACHABLE): 1 until that is fixed'),
});

export type SinkEnv = z.infer<typeof sinkEnv>;
