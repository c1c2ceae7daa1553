import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  getCiphers,
  getHashes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { CdcError } from '../errors.js';

/**
 * The cipher suites of department envelope ciphertexts (format v2, see envelope.ts).
 * Every suite takes a 32-byte data key (DEK) and produces `iv | ciphertext | tag`:
 *
 *   1  aes-256-gcm        DEK = AES-256 key. IV 12 random bytes, tag 16 bytes,
 *                         AAD = the caller's associated data (e.g. `db.table.column`).
 *                         The envelope header is not in the GCM AAD: it is bound
 *                         already, the wrapped DEK being authenticated under the KEK
 *                         (with the KEK id), so any header change yields another key.
 *   2  sm4-ctr-hmac-sm3   National-standard option (GB/T 32907 SM4, GB/T 32905 SM3).
 *                         DEK bytes 0..15 = SM4 key, bytes 16..31 = HMAC-SM3 key (two
 *                         independent halves of one random DEK). IV 16 random bytes
 *                         (the initial 128-bit big-endian counter block). Encrypt then MAC:
 *                           mac = HMAC-SM3(macKey, header | iv | len(aad) as u32 BE | aad | ciphertext)
 *                         32-byte MAC, verified in constant time before decrypting. The
 *                         AAD is length-prefixed and precedes the variable-length
 *                         ciphertext so the MAC input has exactly one parse.
 *
 * The primitives are exported so tests can check them against published vectors
 * through exactly the calls the suites make.
 */
export type CipherSuiteName = 'aes-256-gcm' | 'sm4-ctr-hmac-sm3';

export const CIPHER_SUITE_NAMES: readonly CipherSuiteName[] = ['aes-256-gcm', 'sm4-ctr-hmac-sm3'];

/** Key objects of one DEK for one suite, built once per DEK on either side. */
export interface SuiteKeys {
  enc: KeyObject;
  mac: KeyObject | null;
}

export interface CipherSuite {
  readonly id: number;
  readonly name: CipherSuiteName;
  readonly ivBytes: number;
  readonly tagBytes: number;
  prepare(dek: Buffer): SuiteKeys;
  seal(keys: SuiteKeys, header: Buffer, iv: Buffer, plaintext: Buffer, aad: Buffer): { ciphertext: Buffer; tag: Buffer };
  /** The plaintext, or null when the tag/MAC does not verify. */
  open(keys: SuiteKeys, header: Buffer, iv: Buffer, ciphertext: Buffer, tag: Buffer, aad: Buffer): Buffer | null;
}

export const DEK_BYTES = 32;

// ---- primitives -------------------------------------------------------------------

export function aesGcmSeal(key: KeyObject | Buffer, iv: Buffer, plaintext: Buffer, aad: Buffer): { ciphertext: Buffer; tag: Buffer } {
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

export function aesGcmOpen(key: KeyObject | Buffer, iv: Buffer, ciphertext: Buffer, tag: Buffer, aad: Buffer): Buffer | null {
  // authTagLength pins the tag size: a truncated tag is refused, not checked on fewer bytes.
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  decipher.setAAD(aad);
  try {
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    return null;
  }
}

/** SM4 in counter mode; the same call encrypts and decrypts. */
export function sm4Ctr(key: KeyObject | Buffer, iv: Buffer, data: Buffer): Buffer {
  const cipher = createCipheriv('sm4-ctr', key, iv);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

export function hmacSm3(key: KeyObject | Buffer, parts: Buffer[]): Buffer {
  const hmac = createHmac('sm3', key);
  for (const part of parts) hmac.update(part);
  return hmac.digest();
}

let smAvailable: boolean | undefined;

/** Throws a clear error when Node's OpenSSL lacks SM4-CTR or SM3 (some builds omit them). */
export function assertSuiteAvailable(name: CipherSuiteName): void {
  if (name !== 'sm4-ctr-hmac-sm3') return;
  smAvailable ??= getCiphers().includes('sm4-ctr') && getHashes().includes('sm3');
  if (!smAvailable) {
    throw new CdcError(
      'CONFIG_INVALID',
      `cipher suite sm4-ctr-hmac-sm3 needs sm4-ctr and sm3, which this Node build's OpenSSL (${process.versions.openssl}) does not provide; use aes-256-gcm or a Node build with SM4/SM3`,
      { details: { suite: name, openssl: process.versions.openssl } },
    );
  }
}

// ---- suites -----------------------------------------------------------------------

const aesGcm: CipherSuite = {
  id: 1,
  name: 'aes-256-gcm',
  ivBytes: 12,
  tagBytes: 16,
  prepare: (dek) => ({ enc: createSecretKey(dek), mac: null }),
  seal: (keys, _header, iv, plaintext, aad) => aesGcmSeal(keys.enc, iv, plaintext, aad),
  open: (keys, _header, iv, ciphertext, tag, aad) => aesGcmOpen(keys.enc, iv, ciphertext, tag, aad),
};

function aadLength(aad: Buffer): Buffer {
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(aad.length);
  return len;
}

const sm4HmacSm3: CipherSuite = {
  id: 2,
  name: 'sm4-ctr-hmac-sm3',
  ivBytes: 16,
  tagBytes: 32,
  prepare: (dek) => ({ enc: createSecretKey(dek.subarray(0, 16)), mac: createSecretKey(dek.subarray(16, 32)) }),
  seal(keys, header, iv, plaintext, aad) {
    const ciphertext = sm4Ctr(keys.enc, iv, plaintext);
    return { ciphertext, tag: hmacSm3(keys.mac!, [header, iv, aadLength(aad), aad, ciphertext]) };
  },
  open(keys, header, iv, ciphertext, tag, aad) {
    const expected = hmacSm3(keys.mac!, [header, iv, aadLength(aad), aad, ciphertext]);
    // Verify before decrypting; lengths are equal by construction (the parser cuts 32 bytes).
    if (tag.length !== expected.length || !timingSafeEqual(tag, expected)) return null;
    return sm4Ctr(keys.enc, iv, ciphertext);
  },
};

const byId = new Map<number, CipherSuite>([aesGcm, sm4HmacSm3].map((s) => [s.id, s]));
const byName = new Map<string, CipherSuite>([aesGcm, sm4HmacSm3].map((s) => [s.name, s]));

export function suiteById(id: number): CipherSuite | undefined {
  return byId.get(id);
}

export function suiteByName(name: string): CipherSuite {
  const suite = byName.get(name);
  if (!suite) {
    throw new CdcError('CONFIG_INVALID', `unknown cipher suite ${name}; expected one of ${CIPHER_SUITE_NAMES.join(', ')}`, { details: { suite: name } });
  }
  assertSuiteAvailable(suite.name);
  return suite;
}
