import { createHmac, timingSafeEqual } from 'node:crypto';
import { CdcError, isCdcError } from '../errors.js';
import { keyNames, subkey, type DataKey, type KeyProvider } from './keyring.js';

/**
 * Records the pipeline writes and acts on (reader checkpoints, table schemas, reader
 * signals, sinks' delivery records) carry a MAC in a Kafka header, so anyone who can write
 * to the broker cannot make the pipeline act on a record of theirs:
 *
 *   cityshare-mac: v1:<key id>:<base64 HMAC-SHA256>
 *
 * over the topic, the record key and the value (each length-prefixed, so no bytes move from
 * one to another), under a subkey derived from a pipeline key with HKDF-SHA256 and the label
 * below: the pipeline key's AES bytes are never used as an HMAC key. The JSON value stays
 * readable as it was. The active pipeline key signs; any key of the pipeline list verifies
 * (rotation), and only keys of that list: a department's key cannot pass for it. Delivery
 * records are signed under their own list (`deliveries`), so a sink never holds the pipeline key.
 */
export const RECORD_MAC_HEADER = 'cityshare-mac';

const VERSION = 'v1';
const SUBKEY_LABEL = 'cityshare/record-mac/v1';

type Bytes = Buffer | string | null | undefined;

/** Kafka headers as kafkajs hands them to a consumer. */
export type RecordHeaders = Record<string, Buffer | string | Array<Buffer | string> | undefined> | undefined;

function mac(key: DataKey, topic: string, recordKey: Bytes, value: Bytes): Buffer {
  const hmac = createHmac('sha256', subkey(key, SUBKEY_LABEL));
  for (const part of [topic, recordKey, value]) {
    const bytes = part === null || part === undefined ? null : typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
    // -1 for an absent key or value (a tombstone), distinct from an empty one.
    const length = Buffer.alloc(4);
    length.writeInt32BE(bytes ? bytes.length : -1);
    hmac.update(length);
    if (bytes) hmac.update(bytes);
  }
  return hmac.digest();
}

/** The MAC header of a record, under the active key of `list` (the pipeline key unless said). */
export function recordMacHeaders(keys: KeyProvider, topic: string, key: Bytes, value: Bytes, list: string = keyNames.pipeline): Record<string, string> {
  const active = keys.activeKey(list);
  return { [RECORD_MAC_HEADER]: `${VERSION}:${active.id}:${mac(active, topic, key, value).toString('base64')}` };
}

/**
 * Why a record read from `topic` is not authenticated by a pipeline key (null: it is): no
 * MAC header, a malformed one, a key outside the pipeline list, or a MAC that does not
 * match its topic, key and value. The refusal names the topic, never a value.
 */
export function recordForgery(keys: KeyProvider, topic: string, record: { key?: Bytes; value: Bytes; headers?: RecordHeaders }, list: string = keyNames.pipeline): CdcError | null {
  const header = record.headers?.[RECORD_MAC_HEADER];
  const forged = (why: string) => new CdcError('RECORD_FORGED', `record on ${topic} ${why}`, { details: { topic } });
  if (header === undefined) return forged(`has no ${RECORD_MAC_HEADER} header: it was not written by the pipeline (or by a version before records were signed)`);
  if (Array.isArray(header)) return forged(`has ${header.length} ${RECORD_MAC_HEADER} headers`);
  const text = header.toString();
  const first = text.indexOf(':');
  const last = text.lastIndexOf(':');
  if (first < 0 || last <= first || text.slice(0, first) !== VERSION) return forged(`has a ${RECORD_MAC_HEADER} header that is not ${VERSION}:<key id>:<MAC>`);
  const keyId = text.slice(first + 1, last);
  let key: DataKey;
  try {
    key = keys.keyOf(list, keyId);
  } catch (err) {
    if (!isCdcError(err, 'KEY_NOT_FOUND')) throw err;
    return forged(`names key ${keyId}, which is not a key of the ${list} list`);
  }
  // Compared as text: base64 decoding would accept other spellings of the same bytes.
  const given = Buffer.from(text.slice(last + 1), 'latin1');
  const expected = Buffer.from(mac(key, topic, record.key, record.value).toString('base64'), 'latin1');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return forged(`does not verify under ${list} key ${keyId}: its topic, key, value or MAC was altered`);
  return null;
}
