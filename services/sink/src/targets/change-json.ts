import type { RowChange } from './target.js';

/**
 * A change as the stream targets carry it (http.target.ts, in webhook batches; rabbitmq.target.ts,
 * one message each): metadata beside the data values.
 */
export interface ChangeJson {
  op: string;
  version: string;
  source_ts_ms: string;
  deleted: boolean;
  values: Record<string, unknown>;
}

/** 64-bit integers as text, bytes (encrypted values) as base64; share metadata fields left out of `values`. */
export function changeJson(c: RowChange): ChangeJson {
  const values: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c.values)) if (!k.startsWith('__')) values[k] = typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? v.toString('base64') : v;
  return { op: c.op, version: c.version, source_ts_ms: String(c.sourceTsMs), deleted: c.deleted, values };
}
