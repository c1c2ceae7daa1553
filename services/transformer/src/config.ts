import { z } from 'zod';
import { commonServiceEnv } from '@cityshare/shared';

export const transformerEnv = z.object({
  ...commonServiceEnv('transformer'),
  TRANSFORMER_ACCEPT_LEGACY_SEALS: z.enum(['true', 'false']).default('false').transform((v) => v === 'true').describe('migration window: also read raw records (and dead letters) of readers before frame sealing, whose per-event seals do not authenticate op, key or clear columns; off, they are RECORD_FORGED. Set it only until those are drained (docs/security.md, "Upgrading from per-event seals")'),
  TRANSFORMER_REGISTRY_CHECK_MS: z.coerce.number().int().min(100).default(30_000).describe('how often the transformer asks the registry for every contract it registered, and registers again those the registry lost (readers wait on SCHEMA_UNKNOWN meanwhile)'),
  TRANSFORMER_SHARED_FRAMES_MIB: z.coerce.number().int().min(0).default(8).describe('raw messages (MiB) kept read (decoded, authenticated, opened) for the department streams that have not reached them yet, so each frame is read once for every department; a stream paused or further behind reads its frames again on its own. 0: every department stream reads every frame itself'),
});

export type TransformerEnv = z.infer<typeof transformerEnv>;
