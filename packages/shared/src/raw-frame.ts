import { CdcError, isCdcError } from './errors.js';
import { sealedEventAad, type RawChangeEvent, type SealedImages } from './change-event.js';
import { openValue, sealJson } from './crypto/field-cipher.js';
import { keyNames, keysOfList, type DataKey, type KeyProvider } from './crypto/keyring.js';

/** Kafka header of a raw-topic frame: how many change events it holds. */
export const RAW_FRAME_HEADER = 'cityshare-frame';

/**
 * A raw-topic message as the reader writes it: the change events of one partition, in
 * order, and the sealed columns of all of them as one ciphertext (see the cdc-reader's
 * RawFrameWriter):
 *
 *   {"events":[<event>,<event>,...],"sealed":"enc:v1:<base64>"}
 *
 * The events hold their public and internal columns. `sealed` is the field ciphertext
 * (AES-256-GCM under the pipeline key) of a JSON array holding, for each event in order,
 * its personal, secret and unclassified columns (`{"before":{...},"after":{...}}`) or
 * null. Its associated data is the exact bytes of the events array, from `[` to `]`: the
 * ciphertext opens only with the events it was written with, unchanged and in the same
 * order. One AEAD operation per frame, not per row.
 *
 * Every frame is sealed, also when none of its events has a protected column (an array of
 * nulls): the seal is what authenticates the frame, so a frame without one
 * (`"sealed":null`), or one not laid out as above, is refused as RECORD_FORGED, whatever it
 * holds: anyone who can write to the broker could have written it.
 *
 * Readers before this layout wrote a JSON array of events, each with its own `sealed`
 * bound to `db.table@version` only: its clear part (op, key, clear columns) is not
 * authenticated, so a genuine seal can be re-sent under another key, op or clear column
 * (past a row filter). That layout is refused as RECORD_FORGED unless the reading side opts
 * in for a migration window (`acceptLegacySeals`, the transformer's
 * TRANSFORMER_ACCEPT_LEGACY_SEALS); even then, an event among them without a `sealed` of
 * its own is RECORD_FORGED. Nothing writes that layout any more: a dead letter holds an
 * event as a frame of one (`standalone`), whose seal binds the event's every byte.
 */
export const FRAME_LAYOUT = { head: '{"events":[', sealed: '],"sealed":', tail: '}' } as const;

const HEAD = Buffer.from(FRAME_LAYOUT.head);

export interface RawFrameOptions {
  /**
   * Open the per-event seals of earlier readers (which leave the clear part of an event
   * unauthenticated). Off: such a message is RECORD_FORGED, whole. Only while draining raw
   * topics and dead letters written before frame sealing (docs/security.md, "Upgrading from per-event
   * seals").
   */
  acceptLegacySeals?: boolean;
}

export class RawFrame {
  private opened: Array<SealedImages | null> | CdcError | undefined;

  private constructor(
    /** The message as it came. */
    readonly value: Buffer,
    readonly events: RawChangeEvent[],
    /** True for the frame layout above; false for events of earlier readers, which carry their own `sealed`. */
    readonly framed: boolean,
    private readonly sealed: string | null,
    private readonly aad: Buffer | null,
    private readonly acceptLegacySeals: boolean,
  ) {}

  /**
   * Reads a raw-topic message. Throws on anything that is not JSON (SyntaxError) or not events (RECORD_INVALID). A frame
   * laid out as the reader writes it is read from the bytes its seal authenticates: the
   * events from the events array, the ciphertext from what follows it, nothing else (a
   * second `"events"` key after the seal cannot replace the sealed events).
   */
  static decode(value: Buffer, { acceptLegacySeals = false }: RawFrameOptions = {}): RawFrame {
    if (value.subarray(0, HEAD.length).equals(HEAD)) {
      // The events array: from the `[` after the head to the `]` before the last `,"sealed":`.
      const end = value.lastIndexOf(FRAME_LAYOUT.sealed);
      const tail = end > 0 ? value.subarray(end + FRAME_LAYOUT.sealed.length) : null;
      if (!tail || tail[tail.length - 1] !== FRAME_LAYOUT.tail.charCodeAt(0)) throw new CdcError('RECORD_INVALID', `a raw frame that starts with ${FRAME_LAYOUT.head} ends with ${FRAME_LAYOUT.sealed}<sealed columns or null>${FRAME_LAYOUT.tail}`);
      const aad = value.subarray(HEAD.length - 1, end + 1);
      return RawFrame.frame(value, JSON.parse(aad.toString('utf8')), JSON.parse(tail.toString('utf8', 0, tail.length - 1)), aad);
    }
    const parsed = JSON.parse(value.toString('utf8')) as unknown;
    if (Array.isArray(parsed)) return new RawFrame(value, parsed as RawChangeEvent[], false, null, null, acceptLegacySeals);
    if (typeof parsed !== 'object' || parsed === null) throw new CdcError('RECORD_INVALID', 'a raw message is a frame or a change event');
    if (!('events' in parsed)) return new RawFrame(value, [parsed as RawChangeEvent], false, null, null, acceptLegacySeals);
    // A frame not laid out as the reader writes it: its seal cannot be checked (opening it fails).
    const { events, sealed } = parsed as { events: unknown; sealed?: unknown };
    return RawFrame.frame(value, events, sealed ?? null, null);
  }

  private static frame(value: Buffer, events: unknown, sealed: unknown, aad: Buffer | null): RawFrame {
    if (!Array.isArray(events)) throw new CdcError('RECORD_INVALID', 'the events of a raw frame are not an array');
    if (sealed !== null && typeof sealed !== 'string') throw new CdcError('RECORD_INVALID', 'the sealed columns of a raw frame are not a string or null');
    return new RawFrame(value, events as RawChangeEvent[], true, sealed, aad, false);
  }

  /**
   * The sealed columns of event `index`, opened (a frame's ciphertext once for all its
   * events); null when it has none. Throws RECORD_FORGED when nothing authenticates the
   * event, DECRYPT_FAILED when its seal does not open (or KEY_NOT_FOUND for a key that is
   * not a pipeline key).
   */
  secretsOf(index: number, keys: KeyProvider): SealedImages | null {
    const event = this.events[index]!;
    const { db, table, version } = event.source;
    let secrets: SealedImages | null;
    if (this.framed) {
      secrets = this.openFrame(keys)[index] ?? null;
    } else {
      const refused = this.legacyRefused();
      if (refused) throw refused;
      if (typeof event.sealed !== 'string') {
        throw new CdcError('RECORD_FORGED', `change event ${db}.${table}@${version} on its own carries no seal: nothing authenticates it`);
      }
      secrets = openValue(keysOfList(keys, keyNames.pipeline), event.sealed, sealedEventAad(db, table, version)) as SealedImages | null;
    }
    if (!secrets && (event.protected?.length ?? 0) > 0) {
      throw new CdcError('DECRYPT_FAILED', `change event ${db}.${table}@${version} has protected columns but no sealed images: the raw record was altered`);
    }
    return secrets;
  }

  /**
   * Event `index` as a message on its own, still sealed (for a dead letter): a frame of that
   * one event, its sealed columns resealed under the active pipeline key, so `decode` reads
   * it again as authenticated as it came: the seal's associated data is the event's every
   * byte (source, op, key and clear columns, schema reference). When the frame's ciphertext
   * does not open, the whole frame as it came. An event of an earlier reader's layout stays
   * as it came, never resealed: its seal never authenticated its clear part, and a frame
   * seal would vouch for it past the migration window.
   */
  standalone(index: number, keys: KeyProvider): Buffer {
    const event = this.events[index];
    if (!this.framed || !event?.source) return Buffer.from(JSON.stringify(event ?? null));
    const opened = this.openOnce(keys);
    if (opened instanceof CdcError) return this.value;
    // What the frame holds for it, even when that is nothing (an event stripped of its sealed columns stays so).
    return encodeFrame(keys.activeKey(keyNames.pipeline), [event], [opened[index] ?? null]);
  }

  /**
   * Why the message as a whole is not authenticated: the frame's one ciphertext does not
   * open or is missing, or it is of the earlier per-event layout outside its migration
   * window. Null: it opens, or (inside the window) its events carry their own seals.
   */
  sealError(keys: KeyProvider): CdcError | null {
    if (!this.framed) return this.legacyRefused();
    const opened = this.openOnce(keys);
    return opened instanceof CdcError ? opened : null;
  }

  private legacyRefused(): CdcError | null {
    if (this.acceptLegacySeals) return null;
    return new CdcError(
      'RECORD_FORGED',
      `raw message of ${this.events.length} event(s) in the earlier per-event sealed layout, whose seals do not authenticate op, key or clear columns: no longer accepted (readers write sealed frames). Raw data of readers before frame sealing (and dead letters of that time) is read only with TRANSFORMER_ACCEPT_LEGACY_SEALS=true, while draining it`,
    );
  }

  private openFrame(keys: KeyProvider): Array<SealedImages | null> {
    const opened = this.openOnce(keys);
    if (opened instanceof CdcError) throw opened;
    return opened;
  }

  /** The frame's sealed columns, opened on first use, or why they do not open. */
  private openOnce(keys: KeyProvider): Array<SealedImages | null> | CdcError {
    if (this.opened === undefined) {
      try {
        this.opened = this.openSealed(keys);
      } catch (err) {
        if (!isCdcError(err)) throw err;
        this.opened = err;
      }
    }
    return this.opened;
  }

  private openSealed(keys: KeyProvider): Array<SealedImages | null> {
    if (this.sealed === null) {
      throw new CdcError('RECORD_FORGED', `raw frame of ${this.events.length} events carries no seal: nothing authenticates it`);
    }
    if (!this.aad) {
      throw new CdcError('RECORD_FORGED', `raw frame is not laid out as ${FRAME_LAYOUT.head}…${FRAME_LAYOUT.sealed}…${FRAME_LAYOUT.tail}: its seal cannot be checked`);
    }
    const list = openValue(keysOfList(keys, keyNames.pipeline), this.sealed, this.aad);
    if (!Array.isArray(list) || list.length !== this.events.length) {
      throw new CdcError('DECRYPT_FAILED', `the sealed columns of a raw frame of ${this.events.length} events are not one entry per event`);
    }
    return list as Array<SealedImages | null>;
  }
}

/**
 * A frame as the reader lays it out (the RawFrameWriter writes the same bytes as events
 * arrive): `events` and their protected columns (null: none), sealed under `key`.
 */
export function encodeFrame(key: DataKey, events: unknown[], secrets: Array<SealedImages | null>): Buffer {
  const array = JSON.stringify(events);
  const sealed = sealJson(key, Buffer.from(JSON.stringify(secrets), 'utf8'), Buffer.from(array, 'utf8'));
  // The layout's head ends with the array's `[` and its `"sealed"` part starts with its `]`.
  return Buffer.from(`${FRAME_LAYOUT.head}${array.slice(1, -1)}${FRAME_LAYOUT.sealed}"${sealed}"${FRAME_LAYOUT.tail}`, 'utf8');
}

/** A raw-topic message's change events and their sealed columns. Throws on anything that is not JSON. */
export function decodeRawMessage(value: Buffer, options?: RawFrameOptions): RawFrame {
  return RawFrame.decode(value, options);
}
