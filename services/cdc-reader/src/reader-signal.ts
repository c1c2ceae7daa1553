import { z } from 'zod';
import { isCdcError, keyNames, keysOfList, openValue, recordMacHeaders, sealValue, topics, type ErrorCode, type KeyProvider } from '@cityshare/shared';

/** Keys one repair signal may name (keys, deletes and share keys together); `cdc repair` splits larger repairs. */
export const MAX_REPAIR_KEYS = 10_000;

const tableName = z.string().regex(/^[^.]+\.[^.]+$/);
/** A source primary key: column name to value, canonical or as a department's table holds it (text). */
const sourceKey = z.record(z.string().max(256), z.union([z.string().max(65_535), z.number(), z.boolean(), z.null()]));

/** Snapshot registered tables again from their first key (`cdc snapshot`). */
const snapshotSignal = z.object({
  action: z.literal('snapshot'),
  source: z.string(),
  tables: z.array(tableName).min(1),
  requestedBy: z.string().optional(),
});

/**
 * Deliver named rows of one table again to one department only (`cdc repair`), through the
 * pipeline: `keys` are read at the source and delivered as they are; `deletes` too, and
 * those the source has no row for are deleted at the department; `shareKeys` (the share
 * topic's message key JSON, for keys the department holds tokenized) are deleted at the
 * department by that key, unconditionally (the reader cannot map a token back to a row).
 */
const repairSignal = z.object({
  action: z.literal('repair'),
  source: z.string(),
  table: tableName,
  department: z.string().min(1).max(200),
  /** The repair's id, for logs and the ledger; it travels with every event of the repair. */
  request: z.string().min(1).max(200),
  keys: z.array(sourceKey).max(MAX_REPAIR_KEYS).default([]),
  deletes: z.array(sourceKey).max(MAX_REPAIR_KEYS).default([]),
  shareKeys: z.array(z.string().min(2).max(65_535)).max(MAX_REPAIR_KEYS).default([]),
  requestedBy: z.string().optional(),
});

/** A request to the reader of one source, sent on `<prefix>.signals` (keyed by source). */
export const readerSignal = z.discriminatedUnion('action', [snapshotSignal, repairSignal]).superRefine((signal, ctx) => {
  if (signal.action !== 'repair') return;
  const named = signal.keys.length + signal.deletes.length + signal.shareKeys.length;
  if (named === 0) ctx.addIssue({ code: 'custom', message: 'a repair names no keys, deletes or share keys' });
  if (named > MAX_REPAIR_KEYS) ctx.addIssue({ code: 'custom', message: `a repair names ${named} keys, over ${MAX_REPAIR_KEYS}: split it` });
});

/** A signal as `signalRecord` takes it (what a repair leaves out is empty). */
export type ReaderSignal = z.input<typeof readerSignal>;
/** A signal as the reader acts on it. */
export type ReaderSignalOf = z.output<typeof readerSignal>;
export type RepairSignal = z.output<typeof repairSignal>;

/** The parts of a repair that name rows: sealed on the topic, since a key may be personal data. */
const NAMED = ['keys', 'deletes', 'shareKeys'] as const;

/** Binds a repair's sealed keys to its source, table, department and request. */
function namedAad(signal: { source: string; table: string; department: string; request: string }): string {
  return `signal:${signal.source}:${signal.table}:${signal.department}:${signal.request}:keys`;
}

/**
 * The record that asks a source's reader to act, signed with the pipeline key (the reader
 * ignores any other). A repair's keys, deletes and share keys travel sealed under the pipeline
 * key (`sealed`), bound to the rest of the repair: the signals topic never holds a key in clear.
 */
export function signalRecord(keys: KeyProvider, prefix: string, signal: ReaderSignal): { topic: string; message: { key: string; value: string; headers: Record<string, string> } } {
  const topic = topics.signals(prefix);
  const parsed = readerSignal.parse(signal);
  let wire: Record<string, unknown> = parsed;
  if (parsed.action === 'repair') {
    const { keys: named, deletes, shareKeys, ...rest } = parsed;
    wire = { ...rest, sealed: sealValue(keys.activeKey(keyNames.pipeline), { keys: named, deletes, shareKeys }, namedAad(parsed)) };
  }
  const value = JSON.stringify(wire);
  return { topic, message: { key: parsed.source, value, headers: recordMacHeaders(keys, topic, parsed.source, value) } };
}

/**
 * A signal's value (its MAC already checked) as the reader acts on it, a repair's keys
 * opened; or why not: the problems name paths and limits, never a value (a key may be personal).
 */
export function openSignal(keys: KeyProvider, value: string): ReaderSignalOf | { code: ErrorCode; problems: string[] } {
  let wire: unknown;
  try {
    wire = JSON.parse(value);
  } catch {
    return { code: 'SIGNAL_REFUSED', problems: ['not JSON'] };
  }
  if (typeof wire === 'object' && wire !== null && (wire as { action?: unknown }).action === 'repair') {
    const { sealed, ...rest } = wire as Record<string, unknown>;
    if (NAMED.some((k) => k in rest)) return { code: 'SIGNAL_REFUSED', problems: ['a repair names its keys sealed, never in clear'] };
    const head = repairSignal.pick({ source: true, table: true, department: true, request: true }).safeParse(rest);
    if (!head.success || typeof sealed !== 'string') return { code: 'SIGNAL_REFUSED', problems: head.success ? ['a repair without its sealed keys'] : issues(head.error) };
    try {
      wire = { ...rest, ...(openValue(keysOfList(keys, keyNames.pipeline), sealed, namedAad(head.data)) as object) };
    } catch (err) {
      if (!isCdcError(err)) throw err;
      return { code: err.code, problems: [err.message] };
    }
  }
  const signal = readerSignal.safeParse(wire);
  return signal.success ? signal.data : { code: 'SIGNAL_REFUSED', problems: issues(signal.error) };
}

function issues(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.map(String).join('.') || 'signal'}: ${i.message}`).slice(0, 5);
}

/** What a log line says of a signal: its tables and counts, never a key. */
export function signalSummary(signal: ReaderSignalOf): Record<string, unknown> {
  if (signal.action === 'snapshot') return { action: signal.action, tables: signal.tables, requestedBy: signal.requestedBy };
  const { action, table, department, request, requestedBy } = signal;
  return { action, table, department, request, requestedBy, keys: signal.keys.length, deletes: signal.deletes.length, shareKeys: signal.shareKeys.length };
}

