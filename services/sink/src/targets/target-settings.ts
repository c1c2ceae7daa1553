import { z } from 'zod';
import { pemFile } from '@cityshare/shared';

/** Settings that more than one kind of target has, declared once. */

export const softDelete = z.boolean().default(false).describe('keep deleted rows with __deleted = true instead of deleting them');

/** A URL with TLS settings of its own conflicts with a TLS object: one place decides. */
const PG_URL_TLS_PARAMS = ['ssl', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey'];
export const withPostgresTls = <T extends { url: string; ssl?: unknown }>(o: T, ctx: z.RefinementCtx) => {
  if (o.ssl === undefined) return;
  const params = PG_URL_TLS_PARAMS.filter((p) => new RegExp(`[?&]${p}=`).test(o.url));
  if (params.length > 0) ctx.addIssue({ code: 'custom', path: ['ssl'], message: `the URL sets ${params.join(', ')} as well: set TLS either in ssl or in the URL, not both` });
};

/** TLS to Redis beyond the system CAs: the URL must be rediss://. */
export const redisTls = z
  .strictObject({ ca: pemFile('CA certificate(s) of the Redis server') })
  .optional()
  .describe('CA for a rediss:// Redis whose certificate is not signed by a system CA (rediss:// alone uses the system CAs; a password goes in the URL: rediss://:password@host:6380)');
export const redisTlsNeedsRediss = (o: { redisUrl: string; redisTls?: unknown }, ctx: z.RefinementCtx) => {
  if (o.redisTls !== undefined && !/^rediss:\/\//.test(o.redisUrl)) ctx.addIssue({ code: 'custom', path: ['redisTls'], message: 'redisTls needs a rediss:// redisUrl' });
};
