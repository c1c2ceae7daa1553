import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import type { CanonicalValue } from '../column-types.js';
import { keyNames, type DataKey } from '../crypto/keyring.js';

/**
 * Deterministic tokens: a keyed HMAC of the canonical value under a token DOMAIN key.
 * Every department given tokens from the same domain (`token:citizen`) receives the same
 * token for the same value, so departments can join on tokens without ever seeing the
 * value; a department's own domain (grant action `tokenize`) keeps its tokens unjoinable
 * with anyone else's.
 *
 * The MAC input is `JSON.stringify(value)` of the canonical value, so the value's type is
 * part of it: the INT 123 and the BIGINT/DECIMAL '123' give different tokens. Tokenize
 * columns of the same SQL type family when they are meant to join.
 *
 * Formats:
 * - `opaque` (default): `tok:<keyId>:<base64url MAC>`. The key id makes rotation visible:
 *   after a new domain key is added, new tokens carry its id, old ones the old id.
 * - `digits`: a decimal string with as many digits as the value has (an ID card number,
 *   a phone number), for targets whose column only takes digits. A value without digits
 *   gets an opaque token.
 * - `preserve`: the value's shape: each ASCII digit becomes a digit, each ASCII letter a
 *   letter of the same case, each Han character a character of the CJK Unified
 *   Ideographs block (U+4E00..U+9FFF); digits and letters of other scripts become ASCII
 *   digits and letters; punctuation, symbols, spaces and marks stay as they are.
 *
 * Format-preserving tokens (`digits`, `preserve`) are derived from the same HMAC (expanded
 * by a counter-mode KDF, unbiased by rejection sampling): deterministic for a domain key, NOT
 * reversible (there is no decryption, not even with the key: they are not FPE
 * ciphertexts), and they carry no key id. Rotating the domain key therefore changes
 * every such token at once, silently: every department of the domain must reload its
 * tokenized tables (re-snapshot) after a rotation, and old and new tokens do not join.
 * They are also short: the fewer characters a value has, the likelier two values share a
 * token (4 digits give 10,000 tokens), and a token may look like, or even equal, some
 * other real value.
 */
export type TokenAlgorithm = 'hmac-sha256' | 'hmac-sm3';
export type TokenFormat = 'opaque' | 'digits' | 'preserve';

export interface TokenOptions {
  /** HMAC hash: SHA-256 (default) or SM3 (GB/T 32905, for 国密 compliance). */
  algorithm?: TokenAlgorithm;
  /** Shape of the token (default opaque). */
  format?: TokenFormat;
}

/** Keyring name of the key of a shared token domain: `token:<domain>`. */
export function tokenDomainKeyName(domain: string): string {
  return `token:${domain}`;
}

/** The key a department's tokens of `domain` are made with; no domain: its own (`token:own:<department>`). */
export function tokenKeyName(department: string, domain: string | undefined): string {
  return domain === undefined ? keyNames.ownTokens(department) : tokenDomainKeyName(domain);
}

const HASH: Record<TokenAlgorithm, string> = { 'hmac-sha256': 'sha256', 'hmac-sm3': 'sm3' };

function hmac(algorithm: TokenAlgorithm, key: Buffer | KeyObject, data: Buffer | string): Buffer {
  return createHmac(HASH[algorithm], key).update(data).digest();
}

/** A domain key as a key object, made once per key (a raw key is imported again by every createHmac). */
const keyObjects = new WeakMap<Buffer, KeyObject>();
function keyObjectOf(material: Buffer): KeyObject {
  let key = keyObjects.get(material);
  if (!key) keyObjects.set(material, (key = createSecretKey(material)));
  return key;
}

/**
 * An endless deterministic byte stream from a MAC: the counter-mode KDF of NIST SP 800-108
 * with the same HMAC, the MAC as key and the format as label:
 * block(i) = HMAC(mac, label || 0x00 || uint32be(i)), i = 1, 2, ...
 */
class ByteStream {
  private block: Buffer = Buffer.alloc(0);
  private offset = 0;
  private counter = 0;

  constructor(
    private readonly algorithm: TokenAlgorithm,
    private readonly prk: Buffer,
    private readonly label: string,
  ) {}

  next(): number {
    if (this.offset >= this.block.length) {
      const counter = Buffer.alloc(4);
      counter.writeUInt32BE(++this.counter);
      this.block = hmac(this.algorithm, this.prk, Buffer.concat([Buffer.from(this.label, 'utf8'), Buffer.of(0), counter]));
      this.offset = 0;
    }
    return this.block[this.offset++]!;
  }

  /** Uniform integer in [0, n), n <= 256, by rejection. */
  below(n: number): number {
    const limit = 256 - (256 % n);
    for (;;) {
      const b = this.next();
      if (b < limit) return b % n;
    }
  }

  /** Uniform integer in [0, n), n <= 65536, from two bytes, by rejection. */
  below16(n: number): number {
    const limit = 65536 - (65536 % n);
    for (;;) {
      const v = (this.next() << 8) | this.next();
      if (v < limit) return v % n;
    }
  }
}

const HAN = /^\p{Script=Han}$/u;
const OTHER_DIGIT = /^\p{Nd}$/u;
const UPPER = /^\p{Lu}$/u;
const OTHER_LETTER = /^\p{L}$/u;
const CJK_FIRST = 0x4e00;
const CJK_COUNT = 0x9fff - 0x4e00 + 1;
const LOWER_A = 0x61;
const UPPER_A = 0x41;

function digitsToken(stream: ByteStream, count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += String(stream.below(10)); // bytes >= 250 rejected
  return out;
}

function preserveToken(stream: ByteStream, text: string): string {
  let out = '';
  for (const c of text) {
    if ((c >= '0' && c <= '9') || OTHER_DIGIT.test(c)) out += String(stream.below(10));
    else if (c >= 'a' && c <= 'z') out += String.fromCharCode(LOWER_A + stream.below(26));
    else if (c >= 'A' && c <= 'Z') out += String.fromCharCode(UPPER_A + stream.below(26));
    else if (HAN.test(c)) out += String.fromCodePoint(CJK_FIRST + stream.below16(CJK_COUNT));
    else if (OTHER_LETTER.test(c)) out += String.fromCharCode((UPPER.test(c) ? UPPER_A : LOWER_A) + stream.below(26));
    else out += c;
  }
  return out;
}

/**
 * Token of a canonical value under a (domain) key. `tokenize(key, value)` is the opaque
 * HMAC-SHA256 token it has always been; see the module comment for the other formats.
 */
export function tokenize(key: DataKey, value: CanonicalValue, options: TokenOptions = {}): string {
  const algorithm = options.algorithm ?? 'hmac-sha256';
  const format = options.format ?? 'opaque';
  const mac = hmac(algorithm, keyObjectOf(key.material), JSON.stringify(value));
  if (format !== 'opaque') {
    const text = value === null ? '' : String(value);
    if (format === 'digits') {
      const count = (text.match(/\p{Nd}/gu) ?? []).length;
      if (count > 0) return digitsToken(new ByteStream(algorithm, mac, 'cityshare/token/digits'), count);
    } else if (format === 'preserve') {
      return preserveToken(new ByteStream(algorithm, mac, 'cityshare/token/preserve'), text);
    } else {
      // Exhaustiveness: the pipeline schema admits only the formats above, so no input reaches this line.
      const never: never = format;
      throw new Error(`unknown token format ${String(never)}`);
    }
  }
  return `tok:${key.id}:${mac.toString('base64url')}`;
}
