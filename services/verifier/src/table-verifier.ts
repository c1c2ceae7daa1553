import { BucketDigests, keyBucket, rowVersion, type BinlogPosition, type CanonicalValue } from '@cityshare/shared';
import type { DepartmentSide, HeldRow } from './department-side.js';
import type { Lane, PipelineProgress } from './pipeline-progress.js';
import type { ExpectedRow, SnapshotPosition, SourceSide } from './source-side.js';

/** What one department holds of one table against policy(source). Keys are the department's (passed or tokenized), never a personal value. */
export interface TableResult {
  department: string;
  /** `source.db.table` of the grant. */
  table: string;
  /** The department's table. */
  targetTable: string;
  /** equal; different (some key below); unsettled (rows kept changing, or the department lagged: compare again). */
  status: 'equal' | 'different' | 'unsettled';
  /** Keys compared (rows of policy(source) and of the department, once each). */
  compared: number;
  missing: string[];
  extra: string[];
  different: string[];
  /** Keys whose rows changed under every look, or that the department had not caught up with: not a finding. */
  unsettled: string[];
  /** Why a table could not be settled at all (the department lags or its table is paused), if so. */
  reason?: string;
  /** What `cdc repair` asks the reader for: source keys to deliver again, source keys to delete, department keys to delete. */
  repair: { keys: Array<Record<string, CanonicalValue>>; deletes: Array<Record<string, CanonicalValue>>; shareKeys: string[] };
  /** The load on the source: queries and rows read. */
  source: { queries: number; rowsRead: number };
  seconds: number;
}

export interface TableVerifyOptions {
  source: SourceSide;
  department: DepartmentSide;
  progress: PipelineProgress;
  lane: Lane;
  /** How long to wait for the department to catch up with a source position. */
  settleMs: number;
  /** Key-hash buckets of the first pass (the digest file's `buckets`). */
  buckets?: number;
  /** Looks at the keys that differed while their rows were changing, before calling them unsettled. */
  rounds?: number;
  /** Rows of differing buckets held in memory at once (both sides); more are compared in further passes. */
  maxHeld?: number;
  /** Source keys of the department's extra rows, from its key texts (tables whose key it receives as passed). */
  sourceKeyOf: (held: HeldRow) => CanonicalValue[] | undefined;
}

export const DEFAULT_BUCKETS = 16_384;

type Verdict = 'equal' | 'different' | 'extra' | 'missing' | 'moving';

export interface Look {
  expected: ExpectedRow | undefined;
  held: HeldRow | undefined;
  verdict: Verdict;
}

/** The version a change at `p` carries at the earliest: a department row older than this was written before `p`. */
function versionAt(p: BinlogPosition): string {
  return rowVersion({ file: p.file, eventPos: p.pos, row: 0 });
}

/**
 * Compares one table of one department with policy(source), on a live source, without locks:
 *
 * 1. Both sides are hashed per bucket of the department's key (row-digest.ts): the source in
 *    one consistent snapshot at position P, the department once it has applied every change
 *    up to P (pipeline-progress.ts). A clean table costs one pass of hashing on each side.
 * 2. Rows of the buckets that differ are compared again, at a new snapshot P'. A row the
 *    department last wrote before P' and that differs is different; a row it holds and the
 *    source had not at P' is extra; either way, written at or after P', it was changing:
 *    looked at again. A row the department does not hold is missing only if a second look
 *    finds it missing with the same source row (a row deleted after P' and applied already
 *    looks the same once).
 * 3. Keys still changing after `rounds` looks are unsettled, never reported as differences.
 */
export async function verifyTable(o: TableVerifyOptions): Promise<TableResult> {
  const started = Date.now();
  const buckets = o.buckets ?? DEFAULT_BUCKETS;
  const maxHeld = o.maxHeld ?? 200_000;
  const view = o.source.view;
  const result: TableResult = {
    department: view.department, table: o.lane.rawTopic, targetTable: '', status: 'equal', compared: 0,
    missing: [], extra: [], different: [], unsettled: [], repair: { keys: [], deletes: [], shareKeys: [] }, source: { queries: 0, rowsRead: 0 }, seconds: 0,
  };
  const finish = () => {
    result.source = { queries: o.source.queries, rowsRead: o.source.rowsRead };
    result.seconds = (Date.now() - started) / 1000;
    result.status = result.missing.length + result.extra.length + result.different.length > 0 ? 'different' : result.unsettled.length > 0 || result.reason ? 'unsettled' : 'equal';
    for (const list of [result.missing, result.extra, result.different, result.unsettled]) list.sort();
    return result;
  };

  const lagging = () => `department ${view.department} did not catch up with the source within ${o.settleMs / 1000} s (lagging, or its table paused): compare again later`;

  // 1. Digests per bucket, each side once, both read at once.
  const sourceDigests = new BucketDigests(buckets);
  const heldDigests = new BucketDigests(buckets);
  let heldRows = 0;
  const first = await readBoth(o, (rows) => rows.forEach((r) => sourceDigests.add(r.key, r.digest)), (rows) => {
    heldRows += rows.length;
    rows.forEach((r) => heldDigests.add(r.key, r.digest));
  });
  if (!first) {
    result.reason = lagging();
    return finish();
  }
  const sourceCount = sourceDigests.counts.reduce((n, c) => n + c, 0);
  result.compared = Math.max(sourceCount, heldRows);
  const differing = sourceDigests.differing(heldDigests);
  if (differing.length === 0) return finish();

  // 2. Rows of the differing buckets, in groups that fit in memory.
  const looks = new Map<string, Look[]>();
  for (const group of groups(differing, (b) => sourceDigests.counts[b]! + heldDigests.counts[b]!, maxHeld)) {
    const inGroup = new Set(group);
    const expected = new Map<string, ExpectedRow>();
    const held = new Map<string, HeldRow>();
    const at = await readBoth(
      o,
      (rows) => rows.forEach((r) => inGroup.has(keyBucket(r.key, buckets)) && expected.set(r.key, r)),
      (rows) => rows.forEach((r) => inGroup.has(keyBucket(r.key, buckets)) && held.set(r.key, r)),
    );
    if (!at) {
      result.reason = lagging();
      break;
    }
    const end = await o.source.binlogEnd();
    for (const key of new Set([...expected.keys(), ...held.keys()])) {
      const look = judge(expected.get(key), held.get(key), at, end);
      if (look.verdict !== 'equal') looks.set(key, [look]);
    }
  }

  // 3. Another look at what was changing, or missing once.
  const rounds = o.rounds ?? 3;
  for (let round = 0; round < rounds; round++) {
    const open = [...looks].filter(([, l]) => !settled(l));
    if (open.length === 0) break;
    await new Promise((r) => setTimeout(r, 500 * (round + 1)));
    const at = await o.source.begin();
    const byKey = await lookAgain(o, open, buckets);
    await o.source.end();
    if (!(await o.progress.waitFor(o.lane, at.high, o.settleMs))) break;
    const held = await o.department.byKeys(open.map(([key]) => key));
    const end = await o.source.binlogEnd();
    for (const [key, l] of open) l.push(judge(byKey.get(key), held.get(key), at, end));
  }

  for (const [key, l] of looks) {
    const last = l[l.length - 1]!;
    if (!settled(l)) {
      result.unsettled.push(key);
      continue;
    }
    if (last.verdict === 'equal') continue;
    if (last.verdict === 'missing') result.missing.push(key);
    else if (last.verdict === 'extra') result.extra.push(key);
    else result.different.push(key);
    const primaryKey = o.source.schema.primaryKey;
    const named = (values: CanonicalValue[]) => Object.fromEntries(primaryKey.map((k, i) => [k, values[i] ?? null]));
    if (last.expected) result.repair.keys.push(named(last.expected.sourceKey));
    else if (last.held) {
      const sourceKey = o.sourceKeyOf(last.held);
      if (sourceKey) result.repair.deletes.push(named(sourceKey));
      else result.repair.shareKeys.push(last.held.shareKey);
    }
  }
  return finish();
}

/**
 * Both sides at one source position: a consistent snapshot of the source opens at P, the
 * department is read once it applied every change up to P, and both are read at the same
 * time (the source's snapshot stays at P however long the department takes). Undefined when
 * the department did not catch up with P within the settle time.
 */
async function readBoth(o: TableVerifyOptions, onSource: (rows: ExpectedRow[]) => void, onHeld: (rows: HeldRow[]) => void): Promise<SnapshotPosition | undefined> {
  const at = await o.source.begin();
  try {
    if (!(await o.progress.waitFor(o.lane, at.high, o.settleMs))) return undefined;
    await Promise.all([o.source.scan(onSource), o.department.exists().then((exists) => (exists ? o.department.scan(onHeld) : undefined))]);
    return at;
  } finally {
    await o.source.end().catch(() => undefined);
  }
}

/**
 * One look at a key: what policy(source) has at snapshot `at`, and what the department
 * holds once it applied every change up to it. A department row written before `at` (or
 * carrying a version the source never reached: written by hand) is compared; one written
 * after was changing.
 */
export function judge(expected: ExpectedRow | undefined, held: HeldRow | undefined, at: SnapshotPosition, sourceEnd: BinlogPosition): Look {
  // A version at or past the source's end is none the source wrote: the row was written at the department by hand.
  const before = (h: HeldRow) => h.version < versionAt(at.low) || h.version >= versionAt(sourceEnd);
  if (expected && held) return { expected, held, verdict: expected.digest.equals(held.digest) ? 'equal' : before(held) ? 'different' : 'moving' };
  if (held) return { expected, held, verdict: before(held) ? 'extra' : 'moving' };
  if (expected) return { expected, held, verdict: 'missing' };
  return { expected, held, verdict: 'equal' };
}

/** A key is settled when its last look is a finding (missing needs two looks alike) or equal. */
export function settled(looks: Look[]): boolean {
  const last = looks[looks.length - 1]!;
  if (last.verdict === 'moving') return false;
  if (last.verdict !== 'missing') return true;
  const previous = looks[looks.length - 2];
  return previous?.verdict === 'missing' && previous.expected!.digest.equals(last.expected!.digest);
}

/** policy(source) of the open keys now: by source key where known, else (tokenized keys the source lacked) by scanning their buckets. */
async function lookAgain(o: TableVerifyOptions, open: Array<[string, Look[]]>, buckets: number): Promise<Map<string, ExpectedRow>> {
  const out = new Map<string, ExpectedRow>();
  const byKey: CanonicalValue[][] = [];
  const scanBuckets = new Set<number>();
  for (const [key, l] of open) {
    const known = l.find((x) => x.expected)?.expected?.sourceKey ?? (l[0]!.held ? o.sourceKeyOf(l[0]!.held) : undefined);
    if (known) byKey.push(known);
    else scanBuckets.add(keyBucket(key, buckets));
  }
  for (const row of (await o.source.byKeys(byKey)).values()) if (row) out.set(row.key, row);
  if (scanBuckets.size > 0) await o.source.scan((rows) => rows.forEach((r) => scanBuckets.has(keyBucket(r.key, buckets)) && out.set(r.key, r)));
  return out;
}

/** Buckets in groups whose rows, counted by `size`, stay within `max` (a bucket larger than that alone). */
function groups(list: number[], size: (b: number) => number, max: number): number[][] {
  const out: number[][] = [];
  let current: number[] = [];
  let total = 0;
  for (const b of list) {
    if (current.length > 0 && total + size(b) > max) {
      out.push(current);
      current = [];
      total = 0;
    }
    current.push(b);
    total += size(b);
  }
  if (current.length > 0) out.push(current);
  return out;
}
