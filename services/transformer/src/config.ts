import { hostname } from 'node:os';
import { z } from 'zod';
import { commonServiceEnv } from '@cityshare/shared';

export const transformerEnv = z.object({
  ...commonServiceEnv,
  TRANSFORMER_REGISTRY_CHECK_MS: z.coerce.number().int().min(100).default(30_000).describe('how often the transformer asks the registry for every contract it registered, and registers again those the registry lost (readers wait on SCHEMA_UNKNOWN meanwhile)'),
  TRANSFORMER_INSTANCE_ID: z.string().default(hostname()).describe('stable per instance: names the Kafka transactional id, so a restarted instance fences its old self'),
});

export type TransformerEnv = z.infer<typeof transformerEnv>;
