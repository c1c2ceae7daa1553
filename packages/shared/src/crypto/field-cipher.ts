import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { CdcError } from '../errors.js';
import type { DataKey, KeyProvider } from './keyring.js';

/**
 * AES-256-GCM for one value sealed inside the pipeline (raw frames, checkpoints' snapshot
 * keys, dead letters). Layout (version 4; the first byte tells this project's layouts apart:
 * 1 and 4 here, 2 and 3 department envelopes in envelope.ts):
 *   0x04 | keyIdLength (1 byte) | keyId (UTF-8) | salt (16) | iv (12) | ciphertext | tag (16)
 * The AES key is not the keyring key itself but HKDF-SHA256(key, salt, "cityshare/seal/v4"):
 * a sealer draws a fresh random salt, hence a fresh sealing key, after 2^24 seals or an
 * hour (`sealingBounds`), the way envelope encryption moves to a fresh data key. With
 * random 96-bit IVs, GCM stays within NIST SP 800-38D's bound (at most 2^32 messages per key)
 * by a factor of 256 per sealing key, and 128-bit salts do not repeat, so a pipeline key
 * has no usage bound of its own: rotate it on a schedule or on exposure (`cdc keys rotate
 * pipeline`), not by count. Version 1 (the keyring key used directly, still opened: raw
 * topics and checkpoints written before) is the same without the salt.
 * The associated data binds the ciphertext to its place (e.g. `db.table.column`), so a value
 * cannot be moved elsewhere and still decrypt.
 */
const VERSION = 4;
const LEGACY_VERSION = 1;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const SUBKEY_LABEL = 'cityshare/seal/v4';
/** When a sealer draws a fresh salt: after 2^24 seals or an hour under one derived key (settable for tests). */
export const sealingBounds = { sealsPerSubkey: 1 << 24, maxAgeMs: 3_600_000 };

// Random IVs drawn from a pool: one getrandom call per few hundred IVs instead of one each.
const IV_POOL_BYTES = 4096;
let ivPool = Buffer.alloc(0);
let ivOffset = 0;

/** `bytes` fresh random bytes for an IV or nonce (every cipher of the project draws from this pool). */
export function randomIv(bytes = IV_BYTES): Buffer {
  if (ivOffset + bytes > ivPool.length) {
    ivPool = randomBytes(IV_POOL_BYTES);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + bytes);
  ivOffset += bytes;
  return iv;
}

/** Associated data: a label such as `db.table.column`, or bytes (a raw frame's events). */
export type Aad = string | Buffer;

function aadBytes(aad: Aad): Buffer {
  return typeof aad === 'string' ? Buffer.from(aad, 'utf8') : aad;
}

function aadLabel(aad: Aad): string {
  return typeof aad === 'string' ? aad : `${aad.length} bytes of associated data`;
}

function deriveSealingKey(key: DataKey, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', key.material, salt, SUBKEY_LABEL, 32));
}

/** The current derived sealing key of each keyring key: its salt, how often and since when it sealed. */
const sealing = new WeakMap<DataKey, { salt: Buffer; key: Buffer; seals: number; born: number }>();
/** Derived keys met when opening, per keyring key by salt (bounded: a few salts per hour of data). */
const opening = new WeakMap<DataKey, Map<string, Buffer>>();
const OPENING_CACHE = 256;

function sealingKeyOf(key: DataKey): { salt: Buffer; key: Buffer } {
  let current = sealing.get(key);
  if (!current || current.seals >= sealingBounds.sealsPerSubkey || Date.now() - current.born >= sealingBounds.maxAgeMs) {
    const salt = randomBytes(SALT_BYTES);
    current = { salt, key: deriveSealingKey(key, salt), seals: 0, born: Date.now() };
    sealing.set(key, current);
  }
  current.seals++;
  return current;
}

export function encryptField(key: DataKey, plaintext: Buffer, aad: Aad): Buffer {
  const keyId = Buffer.from(key.id, 'utf8');
  // The keyring refuses such ids at load; a key made in code reaches this check.
  if (keyId.length > 255) throw new CdcError('CONFIG_INVALID', `key id ${key.id.slice(0, 32)}… is longer than 255 bytes, the most a ciphertext can name: give the key a shorter id`);
  const { salt, key: aesKey } = sealingKeyOf(key);
  const iv = randomIv();
  const cipher = createCipheriv('aes-256-gcm', aesKey, iv);
  cipher.setAAD(aadBytes(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION, keyId.length]), keyId, salt, iv, body, cipher.getAuthTag()]);
}

export function ciphertextKeyId(ciphertext: Buffer): string {
  if (ciphertext.length < 2 || (ciphertext[0] !== VERSION && ciphertext[0] !== LEGACY_VERSION)) {
    throw new CdcError('DECRYPT_FAILED', 'not a sealed value of this pipeline (version 4 or 1)');
  }
  return ciphertext.subarray(2, 2 + ciphertext[1]!).toString('utf8');
}

/** Opens a sealed value with the key its ciphertext names, looked up in `keys` (pass the one list the value belongs to). */
export function decryptField(keys: KeyProvider, ciphertext: Buffer, aad: Aad): Buffer {
  const keyId = ciphertextKeyId(ciphertext);
  const key = keys.keyById(keyId);
  let start = 2 + ciphertext[1]!;
  let aesKey = key.material;
  if (ciphertext[0] === VERSION) {
    if (ciphertext.length < start + SALT_BYTES) throw new CdcError('DECRYPT_FAILED', 'field ciphertext is truncated');
    const salt = ciphertext.subarray(start, start + SALT_BYTES);
    start += SALT_BYTES;
    let bySalt = opening.get(key);
    if (!bySalt) opening.set(key, (bySalt = new Map()));
    const saltId = salt.toString('base64');
    let derived = bySalt.get(saltId);
    if (!derived) {
      derived = deriveSealingKey(key, salt);
      if (bySalt.size >= OPENING_CACHE) bySalt.delete(bySalt.keys().next().value!);
      bySalt.set(saltId, derived);
    }
    aesKey = derived;
  }
  if (ciphertext.length < start + IV_BYTES + TAG_BYTES) throw new CdcError('DECRYPT_FAILED', 'field ciphertext is truncated');
  const iv = ciphertext.subarray(start, start + IV_BYTES);
  const tag = ciphertext.subarray(ciphertext.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', aesKey, iv);
  decipher.setAAD(aadBytes(aad));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ciphertext.subarray(start + IV_BYTES, ciphertext.length - TAG_BYTES)), decipher.final()]);
  } catch (cause) {
    throw new CdcError('DECRYPT_FAILED', `field ciphertext does not verify under key ${keyId} for ${aadLabel(aad)}`, { cause, details: { keyId, aad: aadLabel(aad) } });
  }
}

/** Values inside JSON change events travel as this prefix plus base64 ciphertext. */
export const SEALED_PREFIX = 'enc:v1:';

export function sealValue(key: DataKey, value: unknown, aad: Aad): string {
  return sealJson(key, Buffer.from(JSON.stringify(value), 'utf8'), aad);
}

/** `sealValue` of JSON already written as UTF-8 bytes. */
export function sealJson(key: DataKey, json: Buffer, aad: Aad): string {
  return SEALED_PREFIX + encryptField(key, json, aad).toString('base64');
}

export function openValue(keys: KeyProvider, sealed: string, aad: Aad): unknown {
  if (!sealed.startsWith(SEALED_PREFIX)) throw new CdcError('DECRYPT_FAILED', `value of ${aadLabel(aad)} is not sealed`);
  const plain = decryptField(keys, Buffer.from(sealed.slice(SEALED_PREFIX.length), 'base64'), aad).toString('utf8');
  try {
    return JSON.parse(plain);
  } catch (cause) {
    throw new CdcError('DECRYPT_FAILED', `value of ${aadLabel(aad)} opens but is not JSON: it was sealed by something other than this project`, { cause });
  }
}

/** Associated data naming a column; the same on both sides of a cipher. */
export function columnAad(db: string, table: string, column: string): string {
  return `${db}.${table}.${column}`;
}
