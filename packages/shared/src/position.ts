/**
 * A position in a source's binlog. `file`+`pos` is the resume point of the transaction
 * boundary; `gtid` names the transaction; `eventPos`+`row` place one row inside it.
 */
export interface BinlogPosition {
  file: string;
  pos: number;
  gtid?: string | undefined;
}

export interface RowPosition extends BinlogPosition {
  /** Position of the rows event that carried the row. */
  eventPos: number;
  /** Index of the row within its rows event. */
  row: number;
}

const FILE_SEQ = /\.(\d+)$/;

/**
 * A version string that sorts like the binlog: byte-wise comparison of two versions of
 * the same source orders them by commit order. The sink's version guard compares these.
 */
export function rowVersion(p: Pick<RowPosition, 'file' | 'eventPos' | 'row'>): string {
  const seq = FILE_SEQ.exec(p.file)?.[1];
  // Invariant of the servers: MySQL and MariaDB always end binlog file names with a sequence number.
  if (seq === undefined) throw new Error(`binlog file name without sequence number: ${p.file}`);
  return `${seq.padStart(10, '0')}.${String(p.eventPos).padStart(12, '0')}.${String(p.row).padStart(6, '0')}`;
}

/** The row index a repair's versions take at their position: past any rows event's or snapshot chunk's rows. */
const REPAIR_ROW = 999_999;

/**
 * The version of row `row` of a repair read at binlog position `high` (its high watermark):
 * after every version at or before `high` (other rows events' and snapshot chunks' there
 * included, whose row index stays below 999999), before every change after it. `stamp`
 * (milliseconds, increasing per reader) orders two repairs at the same position, as on an
 * idle source, so a second repair still beats the first one's rows. Every segment has a
 * fixed width, so a target comparing versions as text under any collation orders them alike.
 */
export function repairVersion(high: Pick<BinlogPosition, 'file' | 'pos'>, stamp: number, row: number): string {
  return `${rowVersion({ file: high.file, eventPos: high.pos, row: REPAIR_ROW })}.${String(stamp).padStart(13, '0')}.${String(row).padStart(6, '0')}`;
}

export function compareVersions(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
