import {
  decodeRawMessage,
  isCdcError,
  qualityError,
  type ChangeEvent,
  type ColumnClass,
  type KeyProvider,
  type QualityCheck,
  type RawChangeEvent,
  type RawFrame,
  type SealedImages,
  type TableSchema,
} from '@cityshare/shared';
import { openImages, type RowImages } from './share-view.js';

/**
 * Why an event (or a whole frame) is dead-lettered, and at which step: every department
 * stream that reads it meets the same fault at the same step, so a department that would
 * have moved past the event before that step (a repair for another department, a table it
 * is not granted) still does.
 *   read   — the message or event cannot be read, or nothing authenticates it
 *   open   — its sealed columns do not open
 *   schema — its table schema cannot be read
 *   images — its images were altered, or it breaks a quality rule (after the grant check)
 */
export interface Fault {
  step: 'read' | 'open' | 'schema' | 'images';
  code: string;
  message: string;
  version?: string | undefined;
}

/** One change event of a frame, read and opened once for every department. */
export interface PreparedEvent {
  /** The event as the frame holds it (undefined: not an event). */
  parsed: RawChangeEvent | undefined;
  /** Its first fault; the steps before it went through. */
  fault?: Fault;
  /** With its table schema; set unless the fault is at `read`, `open` or `schema`. */
  event?: ChangeEvent;
  /** `source.db.table` */
  tableRef?: string;
  /** Clear and opened columns; set when there is no fault. */
  images?: RowImages;
  /** Its sealed columns opened (a repair's share key among them). */
  secrets?: SealedImages | null;
}

/** A raw message read once: the whole of it refused, or its events. */
export interface PreparedFrame {
  frame: RawFrame | undefined;
  /** The message as a whole is dead-lettered (unparseable, or its seal does not open). */
  refused?: Fault;
  events: PreparedEvent[];
}

/** The policy a frame is read under (replaced as a whole on reload). */
export interface ReadPolicy {
  keys: KeyProvider;
  classes: Map<string, Record<string, ColumnClass>>;
  quality: Map<string, QualityCheck>;
}

/**
 * Reads a raw message for every department at once: decodes it, checks its seal, opens its
 * sealed columns, resolves each event's table schema and builds its row images, checked
 * against the column classes and quality rules in force. What is left per department is its
 * grant and encoding. A table schema that cannot be resolved for a reason of
 * configuration or registry (a CdcError) is thrown: the transformer stops before its offsets
 * move.
 */
export async function prepareFrame(raw: Buffer, policy: ReadPolicy, resolveSchema: (event: RawChangeEvent) => Promise<TableSchema>, acceptLegacySeals: boolean): Promise<PreparedFrame> {
  let frame: RawFrame;
  try {
    frame = decodeRawMessage(raw, { acceptLegacySeals });
  } catch (err) {
    return { frame: undefined, refused: { step: 'read', code: 'unparseable', message: (err as Error).message }, events: [] };
  }
  // Authenticated before anything else is read from it: a frame whose seal does not open is dead-lettered whole.
  const broken = frame.sealError(policy.keys);
  if (broken) return { frame, refused: { step: 'read', code: broken.code, message: broken.message }, events: [] };
  const events: PreparedEvent[] = [];
  for (let index = 0; index < frame.events.length; index++) events.push(await prepareEvent(frame, index, policy, resolveSchema));
  return { frame, events };
}

async function prepareEvent(frame: RawFrame, index: number, policy: ReadPolicy, resolveSchema: (event: RawChangeEvent) => Promise<TableSchema>): Promise<PreparedEvent> {
  const parsed = frame.events[index] as RawChangeEvent | undefined;
  if (!parsed?.source || !(parsed.schemaRef || parsed.schema) || !parsed.op) {
    return { parsed, fault: { step: 'read', code: 'unparseable', message: 'missing source, schema reference or op' } };
  }
  const version = parsed.source.version;
  let secrets: SealedImages | null;
  try {
    secrets = frame.secretsOf(index, policy.keys);
  } catch (err) {
    if (!isCdcError(err)) throw err;
    return { parsed, fault: { step: 'open', code: err.code, message: err.message, version } };
  }
  let event: ChangeEvent;
  try {
    event = { ...parsed, schema: await resolveSchema(parsed) };
  } catch (err) {
    if (isCdcError(err)) throw err;
    return { parsed, secrets, fault: { step: 'schema', code: 'unparseable', message: (err as Error).message } };
  }
  const tableRef = `${event.source.name}.${event.source.db}.${event.source.table}`;
  try {
    const images = openImages(event, secrets, policy.classes.get(tableRef) ?? {});
    const quality = policy.quality.get(tableRef);
    const violations = quality && event.op !== 'd' && images.after ? quality(images.after) : [];
    if (violations.length > 0) throw qualityError(tableRef, violations);
    return { parsed, secrets, event, tableRef, images };
  } catch (err) {
    if (!isCdcError(err)) throw err;
    return { parsed, secrets, event, tableRef, fault: { step: 'images', code: err.code, message: err.message, version } };
  }
}

interface Entry {
  raw: Buffer;
  prepared: Promise<PreparedFrame>;
  /** Department streams yet to ask for it. */
  uses: number;
}

/**
 * Raw messages read once for every department stream that consumes them (prepareFrame).
 * Each department still fetches the raw topic with its own consumer group and commits its
 * own offsets and share records in its own transactions, so its isolation and exactly-once
 * guarantees do not change; what it no longer does is decode, authenticate and open the
 * same frame again. An entry is found by topic, partition and offset and used only when its
 * bytes equal the message fetched (the cache is never trusted over the broker). It is dropped
 * once every department stream of its topic asked for it, or, for a stream paused or behind,
 * when the cache holds more than `maxBytes` of raw messages (oldest first): that stream
 * reads the frame again on its own. A policy change starts a new cache (`clear`).
 */
export class PreparedFrames {
  private entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    /** Department streams consuming a raw topic now. */
    private readonly readersOf: (topic: string) => number,
    private readonly onLookup: (outcome: 'read' | 'shared') => void = () => undefined,
  ) {}

  get(topic: string, partition: number, offset: string, raw: Buffer, prepare: () => Promise<PreparedFrame>): Promise<PreparedFrame> {
    const id = `${topic}\u0000${partition}\u0000${offset}`;
    const found = this.entries.get(id);
    if (found && found.raw.equals(raw)) {
      this.onLookup('shared');
      if (--found.uses <= 0) this.drop(id, found);
      return found.prepared;
    }
    this.onLookup('read');
    if (found) this.drop(id, found);
    const prepared = prepare();
    const uses = this.readersOf(topic) - 1;
    if (uses <= 0) return prepared;
    const entry: Entry = { raw, prepared, uses };
    this.entries.set(id, entry);
    this.bytes += raw.length;
    // A frame that failed to prepare (registry down) is read again, not served from here.
    prepared.catch(() => this.entries.get(id) === entry && this.drop(id, entry));
    for (const [oldest, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.drop(oldest, e);
    }
    return prepared;
  }

  /** Forgets every entry (a new policy: frames are read again under it). */
  clear(): void {
    this.entries = new Map();
    this.bytes = 0;
  }

  get size(): number {
    return this.entries.size;
  }

  private drop(id: string, entry: Entry): void {
    if (this.entries.get(id) !== entry) return;
    this.entries.delete(id);
    this.bytes -= entry.raw.length;
  }
}
