import { hostname } from 'node:os';
import { z } from 'zod';
import { commonServiceEnv } from '@cityshare/shared';

export const transformerEnv = z.object({
  ...commonServiceEnv,
  TRANSFORMER_INSTANCE_ID: z.string().default(hostname()).describe('stable per instance: names the Kafka transactional id, so a restarted instance fences its old self'),
});

export type TransformerEnv = z.infer<typeof transformerEnv>;
