import { createLogger } from '@cityshare/shared';
import { ExportTarget, type ExportTargetOptions } from '../../services/sink/src/targets/export.target.js';

/**
 * Runs one scheduled export of a staging schema in its own process and exits, so a test can
 * hold the export to a small heap (`node --max-old-space-size=…`): a table larger than that
 * heap is exported only if it is streamed. Options come as JSON in EXPORT_ONCE (secret in hex);
 * prints `{"table","rows"}` of each exported table.
 */
const { secret, tables, ...options } = JSON.parse(process.env.EXPORT_ONCE ?? '{}') as Omit<ExportTargetOptions, 'secret' | 'onExport'> & { secret?: string; tables: number };
let left = tables;
let done: () => void;
const finished = new Promise<void>((resolve) => (done = resolve));
const target = new ExportTarget({
  ...options,
  ...(secret ? { secret: Buffer.from(secret, 'hex') } : {}),
  onExport: (table, rows) => {
    process.stdout.write(`${JSON.stringify({ table, rows })}\n`);
    if (--left === 0) done();
  },
}, createLogger('export-once', 'warn'));
await target.connect();
await finished;
await target.close();
process.exit(0);
