import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CdcError } from '../errors.js';
import type { DataKey, KeyProvider } from './keyring.js';

/**
 * AES-256-GCM for one column value. Layout (version 1):
 *   0x01 | keyIdLength (1 byte) | keyId (UTF-8) | iv (12) | ciphertext | tag (16)
 * The associated data binds the ciphertext to its column (e.g. `db.table.column`), so
 * a value cannot be moved to another column or table and still decrypt.
 */
const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

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

export function encryptField(key: DataKey, plaintext: Buffer, aad: Aad): Buffer {
  const keyId = Buffer.from(key.id, 'utf8');
  if (keyId.length > 255) throw new Error('key id longer than 255 bytes');
  const iv = randomIv();
  const cipher = createCipheriv('aes-256-gcm', key.material, iv);
  cipher.setAAD(aadBytes(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION, keyId.length]), keyId, iv, body, cipher.getAuthTag()]);
}

export function ciphertextKeyId(ciphertext: Buffer): string {
  if (ciphertext.length < 2 || ciphertext[0] !== VERSION) {
    throw new CdcError('DECRYPT_FAILED', 'not a version-1 field ciphertext');
  }
  return ciphertext.subarray(2, 2 + ciphertext[1]!).toString('utf8');
}

export function decryptField(keys: KeyProvider, ciphertext: Buffer, aad: Aad): Buffer {
  const keyId = ciphertextKeyId(ciphertext);
  const key = keys.keyById(keyId);
  const start = 2 + ciphertext[1]!;
  if (ciphertext.length < start + IV_BYTES + TAG_BYTES) throw new CdcError('DECRYPT_FAILED', 'field ciphertext is truncated');
  const iv = ciphertext.subarray(start, start + IV_BYTES);
  const tag = ciphertext.subarray(ciphertext.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key.material, iv);
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
