import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, type KeyObject, createSecretKey } from 'node:crypto';
import { META_FIELDS } from '../avro/share-schema.js';
import { CdcError, isCdcError } from '../errors.js';
import { columnAad, randomIv } from './field-cipher.js';
import { keyNames, keysOfList, type DataKey, type KeyProvider } from './keyring.js';
import { DEK_BYTES, suiteById, suiteByName, type CipherSuite, type CipherSuiteName, type SuiteKeys } from './suites.js';

export type { CipherSuiteName } from './suites.js';
export { CIPHER_SUITE_NAMES } from './suites.js';

/**
 * Envelope encryption of the columns a department is granted `encrypt` on. Each value
 * is encrypted under a data key (DEK, 32 random bytes); the DEK is wrapped by the
 * department's key-encryption key (KEK) and travels, wrapped, in every ciphertext.
 * An encryptor reuses one DEK for many values (wrapping is paid once per DEK) and
 * moves to a fresh DEK after `maxValuesPerDek` values or `maxDekAgeMs`.
 *
 * Layout (version 3; all lengths big-endian):
 *   0x03 | suite id (1) | kekId length (1) | kekId (UTF-8) | wrapped DEK length (2) | wrapped DEK
 *        | iv | ciphertext | tag
 * Everything up to and including the wrapped DEK is the "header". The iv and tag sizes
 * depend on the suite (see suites.ts): 1 = aes-256-gcm (iv 12, tag 16),
 * 2 = sm4-ctr-hmac-sm3 (iv 16, mac 32). Ciphertexts are self-contained: a department
 * decrypts with its keyring alone. Version 1 (field-cipher.ts) stays the pipeline's
 * internal format; the first byte tells them apart.
 *
 * Binding (the suite's associated data, `bindingAad`): version 3 binds a value to where
 * it was delivered, the source, the department, `db.table.column` and the row's key as
 * the department receives it, so a value moved to another row, department or source does
 * not open. Version 2 (same bytes otherwise) bound `db.table.column` only: a value moved
 * to another row of the same column still opened. Version-2 ciphertexts written before
 * this release still open, bound to their column only, during a migration window (until
 * the next major release; `allowLayout2: false` refuses them now) — they sit in departments'
 * tables, and re-sending them all would need a re-snapshot of every table (and cannot
 * reach append-only change logs at all).
 *
 * KEK rotation: append a key to the department's keyring list. New DEKs (at the next
 * DEK rotation, or `rotate()`) are wrapped under it; ciphertexts under the old KEK
 * still decrypt as long as the old key stays in the keyring.
 */
const VERSION = 3;
/** Column-bound layout of earlier releases; opened, never written (migration window). */
const LAYOUT2 = 2;

// ---- binding ------------------------------------------------------------------------

/**
 * Where an encrypted value was delivered; both sides name it, and a ciphertext opens only
 * under the binding it was sealed with.
 */
export interface ValueBinding {
  /** The pipeline's source name (the first part of the grant's `source.db.table`). */
  source: string;
  department: string;
  db: string;
  table: string;
  column: string;
  /**
   * The row's key as the department receives it: the share record's Kafka key, its key
   * columns passed or tokenized (`{"id":"7"}`). Values compare as text, so `{"id":7}` from a
   * database driver is the same key. A table without a primary key (`appendOnly`) has
   * none: its change log is keyed by the change's position, so bind `{"__version": …}`
   * (`rowKeyOf`).
   */
  key: Record<string, unknown>;
}

/** A table without a primary key is a change log keyed by each change's position. */
const KEYLESS_KEY = META_FIELDS.version;

/** The key to bind: the share record's key, or for a keyless table the change's position. */
export function rowKeyOf(key: Record<string, unknown>, version: string): Record<string, unknown> {
  return Object.keys(key).length > 0 ? key : { [KEYLESS_KEY]: version };
}

function keyText(column: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  throw new CdcError('CONFIG_INVALID', `key column ${column} of an encrypted value's row must be given as text or a number, as in the share record's key (got ${value === null ? 'null' : typeof value})`, { details: { column } });
}

/** Associated data of a version-3 ciphertext: the binding as canonical JSON (one parse, field by field). */
export function bindingAad(b: ValueBinding): string {
  const keys = Object.keys(b.key);
  if (keys.length === 0) {
    throw new CdcError('CONFIG_INVALID', `the row key of ${columnAad(b.db, b.table, b.column)} is empty: pass the share record's key, or for a table without a primary key {"${KEYLESS_KEY}": version}`);
  }
  // canonicalJson of { layout, source, department, db, table, column, key } spelled out (its keys
  // sorted), as every encrypted and every opened value needs it: the same text, without the generic walk.
  const key = keys.sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(keyText(k, b.key[k]))}`).join(',');
  return `{"column":${JSON.stringify(b.column)},"db":${JSON.stringify(b.db)},"department":${JSON.stringify(b.department)},"key":{${key}},"layout":${VERSION},"source":${JSON.stringify(b.source)},"table":${JSON.stringify(b.table)}}`;
}

/** A binding for messages, naming key columns but not their values. */
function bindingLabel(b: ValueBinding): string {
  return `${columnAad(b.db, b.table, b.column)} (source ${b.source}, department ${b.department}, row key ${Object.keys(b.key).sort().join(', ') || 'none'})`;
}

// ---- key encryption -----------------------------------------------------------------

export interface WrappedDek {
  /** Id of the KEK version that wrapped the DEK; written into every ciphertext. */
  kekId: string;
  wrapped: Buffer;
}

/**
 * Wraps and unwraps DEKs under named KEKs. The KEK never leaves the provider.
 *
 * - `wrap(kekName, dek)` wraps under the name's current (active) KEK version and says
 *   which version that was.
 * - `unwrap(kekId, wrapped)` reverses it for any version still held; it throws
 *   CdcError KEY_NOT_FOUND for an unknown id and DECRYPT_FAILED when `wrapped` does
 *   not verify.
 *
 * KeyringKekProvider implements it over the local keyring. A KMS implements the same
 * two calls; for Vault Transit (KEK = a transit key, versions rotate inside Vault):
 *   wrap:   POST /v1/transit/encrypt/<kekName> {plaintext: base64(dek)} -> "vault:v<N>:…";
 *           kekId = `<kekName>:v<N>`, wrapped = the ciphertext string's UTF-8 bytes
 *   unwrap: POST /v1/transit/decrypt/<name from kekId> {ciphertext} -> base64(dek)
 * The interface is synchronous because both sides call it inline; unwraps are cached
 * and wraps happen once per DEK, so a remote implementation must serve these calls
 * from a synchronous path (or the interface grows async variants) — not done here.
 */
export interface KeyEncryptionProvider {
  wrap(kekName: string, dek: Buffer): WrappedDek;
  unwrap(kekId: string, wrapped: Buffer): Buffer;
}

const WRAP_IV_BYTES = 12;
const WRAP_TAG_BYTES = 16;
const WRAPPED_BYTES = WRAP_IV_BYTES + DEK_BYTES + WRAP_TAG_BYTES;
const WRAP_KEY_INFO = Buffer.from('cityshare envelope v2 kek-wrap', 'utf8');
const WRAP_AAD_PREFIX = 'cityshare-dek:';

/**
 * KEKs from a local keyring (`keyNames.department(name)` lists). Wrapped DEK layout:
 *   iv (12) | AES-256-GCM(wrapKey, dek) (32) | tag (16)      = 60 bytes
 * with AAD = "cityshare-dek:" + kekId (UTF-8), so a wrapped DEK only unwraps under the
 * KEK id written next to it. wrapKey = HKDF-SHA256(ikm = KEK material, salt = empty,
 * info = "cityshare envelope v2 kek-wrap", 32 bytes): the same keyring entry also keys
 * v1 field encryption and tokenisation, and the derivation keeps those uses apart.
 */
export class KeyringKekProvider implements KeyEncryptionProvider {
  private readonly wrapKeys = new WeakMap<DataKey, KeyObject>();

  constructor(private readonly keys: KeyProvider) {}

  wrap(kekName: string, dek: Buffer): WrappedDek {
    const kek = this.keys.activeKey(kekName);
    const iv = randomBytes(WRAP_IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.wrapKey(kek), iv, { authTagLength: WRAP_TAG_BYTES });
    cipher.setAAD(Buffer.from(WRAP_AAD_PREFIX + kek.id, 'utf8'));
    const body = Buffer.concat([cipher.update(dek), cipher.final()]);
    return { kekId: kek.id, wrapped: Buffer.concat([iv, body, cipher.getAuthTag()]) };
  }

  unwrap(kekId: string, wrapped: Buffer): Buffer {
    const kek = this.keys.keyById(kekId);
    if (wrapped.length !== WRAPPED_BYTES) {
      throw new CdcError('DECRYPT_FAILED', `wrapped data key is ${wrapped.length} bytes, expected ${WRAPPED_BYTES}`, { details: { kekId } });
    }
    const decipher = createDecipheriv('aes-256-gcm', this.wrapKey(kek), wrapped.subarray(0, WRAP_IV_BYTES), { authTagLength: WRAP_TAG_BYTES });
    decipher.setAAD(Buffer.from(WRAP_AAD_PREFIX + kekId, 'utf8'));
    decipher.setAuthTag(wrapped.subarray(WRAPPED_BYTES - WRAP_TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(wrapped.subarray(WRAP_IV_BYTES, WRAPPED_BYTES - WRAP_TAG_BYTES)), decipher.final()]);
    } catch (cause) {
      throw new CdcError('DECRYPT_FAILED', `wrapped data key does not verify under KEK ${kekId} (other key material or tampered)`, { cause, details: { kekId } });
    }
  }

  private wrapKey(kek: DataKey): KeyObject {
    let key = this.wrapKeys.get(kek);
    if (!key) {
      key = createSecretKey(Buffer.from(hkdfSync('sha256', kek.material, Buffer.alloc(0), WRAP_KEY_INFO, 32)));
      this.wrapKeys.set(kek, key);
    }
    return key;
  }
}

// ---- encrypt side -----------------------------------------------------------------

function header(suite: CipherSuite, { kekId, wrapped }: WrappedDek): Buffer {
  const id = Buffer.from(kekId, 'utf8');
  if (id.length === 0 || id.length > 255) throw new CdcError('CONFIG_INVALID', `KEK id "${kekId}" must be 1 to 255 bytes`, { details: { kekId } });
  if (wrapped.length > 0xffff) throw new CdcError('INTERNAL', `wrapped data key of ${wrapped.length} bytes exceeds 65535`, { details: { kekId } });
  const len = Buffer.allocUnsafe(2);
  len.writeUInt16BE(wrapped.length);
  return Buffer.concat([Buffer.from([VERSION, suite.id, id.length]), id, len, wrapped]);
}

export interface EnvelopeEncryptorOptions {
  /** Default aes-256-gcm. */
  suite?: CipherSuiteName;
  /** Values per DEK before a fresh one is drawn; default 100,000. */
  maxValuesPerDek?: number;
  /** Age of a DEK in milliseconds before a fresh one is drawn; default 1 hour. */
  maxDekAgeMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

interface ActiveDek {
  kekId: string;
  keys: SuiteKeys;
  header: Buffer;
  createdAt: number;
  values: number;
}

/**
 * Encrypts values for one department KEK name with one suite. Not shared across
 * departments: each has its own KEK and therefore its own encryptor.
 */
export class EnvelopeEncryptor {
  readonly suite: CipherSuiteName;
  private readonly impl: CipherSuite;
  private readonly maxValues: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private dek: ActiveDek | null = null;

  constructor(
    private readonly provider: KeyEncryptionProvider,
    readonly kekName: string,
    options: EnvelopeEncryptorOptions = {},
  ) {
    this.impl = suiteByName(options.suite ?? 'aes-256-gcm');
    this.suite = this.impl.name;
    this.maxValues = positive('maxValuesPerDek', options.maxValuesPerDek ?? 100_000);
    this.maxAgeMs = positive('maxDekAgeMs', options.maxDekAgeMs ?? 3_600_000);
    this.now = options.now ?? Date.now;
  }

  encrypt(plaintext: Buffer, binding: ValueBinding): Buffer {
    const aad = bindingAad(binding);
    let dek = this.dek;
    if (!dek || dek.values >= this.maxValues || this.now() - dek.createdAt >= this.maxAgeMs) {
      this.rotate();
      dek = this.dek!;
    }
    dek.values++;
    const iv = randomIv(this.impl.ivBytes);
    const { ciphertext, tag } = this.impl.seal(dek.keys, dek.header, iv, plaintext, Buffer.from(aad, 'utf8'));
    return Buffer.concat([dek.header, iv, ciphertext, tag]);
  }

  /**
   * Draws a fresh DEK now and wraps it under the name's active KEK (so a KEK appended
   * to the keyring takes effect immediately). Returns the KEK id now in use.
   */
  rotate(): string {
    const dek = randomBytes(DEK_BYTES);
    try {
      const wrapped = this.provider.wrap(this.kekName, dek);
      this.dek = { kekId: wrapped.kekId, keys: this.impl.prepare(dek), header: header(this.impl, wrapped), createdAt: this.now(), values: 0 };
      return wrapped.kekId;
    } finally {
      dek.fill(0); // the key objects hold their own copies
    }
  }

  /** The current DEK's KEK id, value count and creation time; null before the first value. */
  get current(): { kekId: string; values: number; createdAt: number } | null {
    return this.dek && { kekId: this.dek.kekId, values: this.dek.values, createdAt: this.dek.createdAt };
  }
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new CdcError('CONFIG_INVALID', `${name} must be a positive number, got ${value}`, { details: { [name]: value } });
  return value;
}

// ---- decrypt side -----------------------------------------------------------------

interface ParsedEnvelope {
  /** VERSION, or LAYOUT2 (bound to the column only). */
  layout: number;
  suite: CipherSuite;
  kekId: string;
  wrapped: Buffer;
  /** Bytes 0 .. end of the wrapped DEK. */
  headerEnd: number;
}

function failed(message: string, details: Record<string, unknown> = {}): CdcError {
  return new CdcError('DECRYPT_FAILED', message, { details });
}

function parse(ct: Buffer): ParsedEnvelope {
  if (ct.length < 3 || (ct[0] !== VERSION && ct[0] !== LAYOUT2)) {
    throw failed(ct.length === 0 ? 'envelope ciphertext is empty' : `not a version-3 (or version-2) envelope ciphertext (first byte ${ct[0]})`);
  }
  const suite = suiteById(ct[1]!);
  if (!suite) throw failed(`envelope ciphertext names unknown cipher suite id ${ct[1]}`, { suiteId: ct[1] });
  const idEnd = 3 + ct[2]!;
  if (ct.length < idEnd + 2) throw failed(`envelope ciphertext is truncated (${ct.length} bytes) inside its KEK id`);
  const kekId = ct.toString('utf8', 3, idEnd);
  const headerEnd = idEnd + 2 + ct.readUInt16BE(idEnd);
  if (ct.length < headerEnd + suite.ivBytes + suite.tagBytes) {
    throw failed(`envelope ciphertext is truncated (${ct.length} bytes, at least ${headerEnd + suite.ivBytes + suite.tagBytes} expected)`, { kekId, suite: suite.name });
  }
  return { layout: ct[0]!, suite, kekId, wrapped: ct.subarray(idEnd + 2, headerEnd), headerEnd };
}

/** Suite and KEK id of an envelope ciphertext, without decrypting it (for tooling). */
export function envelopeKeyIds(ciphertext: Buffer): { suite: CipherSuiteName; kekId: string } {
  const { suite, kekId } = parse(ciphertext);
  return { suite: suite.name, kekId };
}

const DEK_CACHE_ENTRIES = 1_000;

/** Unwrapped DEKs (as suite key objects) of one provider, by header bytes; LRU order. */
const dekCaches = new WeakMap<KeyEncryptionProvider, Map<string, SuiteKeys>>();

function dekKeys(provider: KeyEncryptionProvider, ct: Buffer, env: ParsedEnvelope): SuiteKeys {
  let cache = dekCaches.get(provider);
  if (!cache) dekCaches.set(provider, (cache = new Map()));
  // Suite id, KEK id and wrapped DEK identify the unwrapped keys.
  const cacheKey = ct.toString('latin1', 1, env.headerEnd);
  const hit = cache.get(cacheKey);
  if (hit) {
    cache.delete(cacheKey);
    cache.set(cacheKey, hit);
    return hit;
  }
  let dek: Buffer;
  try {
    dek = provider.unwrap(env.kekId, env.wrapped);
  } catch (cause) {
    if (isCdcError(cause)) throw cause;
    throw new CdcError('DECRYPT_FAILED', `cannot unwrap the data key under KEK ${env.kekId}`, { cause, details: { kekId: env.kekId } });
  }
  if (dek.length !== DEK_BYTES) throw failed(`unwrapped data key is ${dek.length} bytes, expected ${DEK_BYTES}`, { kekId: env.kekId });
  const keys = env.suite.prepare(dek);
  cache.set(cacheKey, keys);
  if (cache.size > DEK_CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
  return keys;
}

export interface OpenOptions {
  /**
   * Open version-2 ciphertexts (bound to `db.table.column` only, written before row
   * binding) during the migration window; default true. False refuses them: a department
   * whose rows were all delivered again since (a re-snapshot) can close the window early.
   */
  allowLayout2?: boolean;
}

/**
 * Decrypts an envelope ciphertext with the department's provider (its keyring), under the
 * binding it was sealed with. Throws DECRYPT_FAILED for malformed, truncated or tampered
 * input, another KEK's material, another binding (column, row, department or source), or a
 * version-2 ciphertext when `allowLayout2` is false; KEY_NOT_FOUND when the KEK id is not held.
 */
export function decryptEnvelope(provider: KeyEncryptionProvider, ciphertext: Buffer, binding: ValueBinding, options: OpenOptions = {}): Buffer {
  const env = parse(ciphertext);
  const { layout, suite, kekId, headerEnd } = env;
  if (layout === LAYOUT2 && options.allowLayout2 === false) {
    throw failed(`envelope ciphertext of ${columnAad(binding.db, binding.table, binding.column)} is version 2 (bound to its column only, not its row) and version 2 is refused`, { kekId, layout });
  }
  // An SM4 ciphertext on a Node build without SM4: say so rather than "does not verify".
  if (suite.name !== 'aes-256-gcm') suiteByName(suite.name);
  const aad = layout === LAYOUT2 ? columnAad(binding.db, binding.table, binding.column) : bindingAad(binding);
  const keys = dekKeys(provider, ciphertext, env);
  const ivEnd = headerEnd + suite.ivBytes;
  const tagStart = ciphertext.length - suite.tagBytes;
  const plaintext = suite.open(
    keys,
    ciphertext.subarray(0, headerEnd),
    ciphertext.subarray(headerEnd, ivEnd),
    ciphertext.subarray(ivEnd, tagStart),
    ciphertext.subarray(tagStart),
    Buffer.from(aad, 'utf8'),
  );
  if (!plaintext) {
    const where = layout === LAYOUT2 ? columnAad(binding.db, binding.table, binding.column) : bindingLabel(binding);
    throw failed(`envelope ciphertext (${suite.name}, KEK ${kekId}) does not verify for ${where}: another column, row, department or source, or tampered`, { kekId, suite: suite.name, layout });
  }
  return plaintext;
}

/**
 * Department side: the value of a column the department was granted `encrypt` on, as
 * delivered in its share topic or target table, opened with the department's keyring
 * under the binding it was delivered with (its source, department, column and row key).
 * Returns the canonical value (see column-types.ts) the source held.
 */
export function openDepartmentValue(keys: KeyProvider, ciphertext: Buffer, binding: ValueBinding, options: OpenOptions = {}): unknown {
  const plain = decryptEnvelope(departmentKeks(keys, binding.department), ciphertext, binding, options);
  return JSON.parse(plain.toString('utf8'));
}

const kekProviders = new WeakMap<KeyProvider, Map<string, KeyringKekProvider>>();

/**
 * The KEK provider of one department over a keyring: it unwraps only under keys of that
 * department's list, so a ciphertext naming another list's key id (a pipeline or token key
 * held in the same keyring) is KEY_NOT_FOUND, never opened. One per keyring and department,
 * so unwrapped data keys are cached across values.
 */
function departmentKeks(keys: KeyProvider, department: string): KeyringKekProvider {
  let byDepartment = kekProviders.get(keys);
  if (!byDepartment) kekProviders.set(keys, (byDepartment = new Map()));
  let provider = byDepartment.get(department);
  if (!provider) byDepartment.set(department, (provider = new KeyringKekProvider(keysOfList(keys, keyNames.department(department)))));
  return provider;
}
