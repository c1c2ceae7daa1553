/** What each row of a rows change becomes on a raw topic: its op and its version (event-builder.ts, event-encoder.ts, dead-letter.ts). */
import { repairVersion, rowVersion, type Op } from '@cityshare/shared';
import type { RowsChange } from './binlog-listener.js';

const KIND_OPS: Record<RowsChange['kind'], Op | null> = { insert: 'c', update: 'u', delete: 'd', snapshot: 'r', repair: null };

/** The op of a row of a change (other than a key change): a repair's row is read (r) when found, else deleted (d). */
export function rowOp(kind: RowsChange['kind'], hasAfter: boolean): Op {
  return KIND_OPS[kind] ?? (hasAfter ? 'r' : 'd');
}

/** The version of row `row` of a change: its binlog position, or a repair's (position.ts repairVersion). */
export function changeVersion(change: RowsChange, row: number): string {
  return change.repair
    ? repairVersion({ file: change.file, pos: change.eventPos }, change.repair.stamp, row)
    : rowVersion({ file: change.file, eventPos: change.eventPos, row });
}

