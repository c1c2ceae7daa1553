import { createCipheriv, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FileKeyring, type KeyringFile } from '../src/crypto/keyring.js';
import { encryptField } from '../src/crypto/field-cipher.js';
import {
  bindingAad,
  decryptEnvelope,
  EnvelopeEncryptor,
  envelopeKeyIds,
  KeyringKekProvider,
  openDepartmentValue,
  rowKeyOf,
  type KeyEncryptionProvider,
  type ValueBinding,
} from '../src/crypto/envelope.js';
import { aesGcmOpen, aesGcmSeal, hmacSm3, sm4Ctr, type CipherSuiteName } from '../src/crypto/suites.js';
import { isCdcError, type ErrorCode } from '../src/errors.js';
import { canonicalJson } from '../src/canonical-json.js';

const hex = (s: string) => Buffer.from(s, 'hex');
const material = (byte: number) => Buffer.alloc(32, byte).toString('base64');
const KEK = 'department:health';
const aad: ValueBinding = { source: 'cityhub', department: 'health', db: 'civil', table: 'citizens', column: 'id_card', key: { id: '7' } };
const suites: CipherSuiteName[] = ['aes-256-gcm', 'sm4-ctr-hmac-sm3'];

function keyringOf(keys: KeyringFile['keys']): KeyringKekProvider {
  return new KeyringKekProvider(new FileKeyring({ version: 1, keys }));
}
const provider = keyringOf({ [KEK]: [{ id: 'health-1', material: material(1) }] });

function expectCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(isCdcError(err, code), String(err)).toBe(true);
    if (message) expect((err as Error).message).toMatch(message);
    return;
  }
  expect.unreachable(`expected ${code}`);
}

/** Regions of a v3 (or v2) ciphertext, by the documented layout. */
function regions(ct: Buffer, ivBytes: number, tagBytes: number) {
  const idEnd = 3 + ct[2]!;
  const headerEnd = idEnd + 2 + ct.readUInt16BE(idEnd);
  return {
    kekId: [3, idEnd],
    wrapped: [idEnd + 2, headerEnd],
    iv: [headerEnd, headerEnd + ivBytes],
    ciphertext: [headerEnd + ivBytes, ct.length - tagBytes],
    tag: [ct.length - tagBytes, ct.length],
  } as const;
}

describe('primitives match published vectors', () => {
  it('SM3("abc") (GB/T 32905 example 1)', () => {
    expect(createHash('sm3').update('abc').digest('hex')).toBe('66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0');
  });

  it('HMAC-SM3 is RFC 2104 HMAC over SM3 (64-byte block)', () => {
    const key = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    const msg = Buffer.from('abc');
    const padded = Buffer.concat([key, Buffer.alloc(64 - key.length)]);
    const xor = (b: number) => Buffer.from(padded.map((x) => x ^ b));
    const inner = createHash('sm3').update(Buffer.concat([xor(0x36), msg])).digest();
    const outer = createHash('sm3').update(Buffer.concat([xor(0x5c), inner])).digest();
    expect(hmacSm3(key, [Buffer.from('a'), Buffer.from('bc')]).equals(outer)).toBe(true);
  });

  it('SM4 (GB/T 32907 example 1) and SM4-CTR as the standard counter mode', () => {
    const key = hex('0123456789abcdeffedcba9876543210');
    const ecb = (block: Buffer) => {
      const c = createCipheriv('sm4-ecb', key, null).setAutoPadding(false);
      return Buffer.concat([c.update(block), c.final()]);
    };
    expect(ecb(hex('0123456789abcdeffedcba9876543210')).toString('hex')).toBe('681edf34d206965e86b3e94f536e4246');
    // CTR keystream = E(iv), E(iv+1), ... with a 128-bit big-endian increment (carry across bytes).
    const iv = hex('000102030405060708090a0b0c0dffff');
    const stream = sm4Ctr(key, iv, Buffer.alloc(40));
    expect(stream.subarray(0, 16).equals(ecb(iv))).toBe(true);
    expect(stream.subarray(16, 32).equals(ecb(hex('000102030405060708090a0b0c0e0000')))).toBe(true);
    expect(stream.subarray(32).equals(ecb(hex('000102030405060708090a0b0c0e0001')).subarray(0, 8))).toBe(true);
  });

  it('AES-256-GCM: McGrew-Viega test cases 14 (zero key) and 16 (with AAD)', () => {
    const tc14 = aesGcmSeal(Buffer.alloc(32), Buffer.alloc(12), Buffer.alloc(16), Buffer.alloc(0));
    expect(tc14.ciphertext.toString('hex')).toBe('cea7403d4d606b6e074ec5d3baf39d18');
    expect(tc14.tag.toString('hex')).toBe('d0d1c8a799996bf0265b98b5d48ab919');

    const key = hex('feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308');
    const iv = hex('cafebabefacedbaddecaf888');
    const pt = hex('d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39');
    const a = hex('feedfacedeadbeeffeedfacedeadbeefabaddad2');
    const tc16 = aesGcmSeal(key, iv, pt, a);
    expect(tc16.ciphertext.toString('hex')).toBe(
      '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662',
    );
    expect(tc16.tag.toString('hex')).toBe('76fc6ece0f4e1768cddf8853bb2d551b');
    expect(aesGcmOpen(key, iv, tc16.ciphertext, tc16.tag, a)?.equals(pt)).toBe(true);
    expect(aesGcmOpen(key, iv, tc16.ciphertext, tc16.tag.subarray(0, 12), a)).toBeNull();
  });
});

describe.each(suites)('envelope %s', (suite) => {
  const ivBytes = suite === 'aes-256-gcm' ? 12 : 16;
  const tagBytes = suite === 'aes-256-gcm' ? 16 : 32;
  const enc = new EnvelopeEncryptor(provider, KEK, { suite });

  it('round-trips empty, large and Chinese plaintexts and names suite and KEK', () => {
    for (const pt of [Buffer.alloc(0), Buffer.from('张三，北京市朝阳区建国路88号 😀'), Buffer.alloc(1 << 20, 7)]) {
      const ct = enc.encrypt(pt, aad);
      expect(decryptEnvelope(provider, ct, aad).equals(pt)).toBe(true);
      expect(envelopeKeyIds(ct)).toEqual({ suite, kekId: 'health-1' });
      expect(ct[0]).toBe(3);
      expect(ct.length).toBe(regions(ct, ivBytes, tagBytes).ciphertext[0] + pt.length + tagBytes);
    }
  });

  it('decrypts with a fresh provider over the same keyring file (department side)', () => {
    const ct = enc.encrypt(Buffer.from('110101199001011234'), aad);
    const department = keyringOf({ [KEK]: [{ id: 'health-1', material: material(1) }] });
    expect(decryptEnvelope(department, ct, aad).toString()).toBe('110101199001011234');
  });

  it('produces different ciphertexts for equal values (random IV)', () => {
    expect(enc.encrypt(Buffer.from('a'), aad).equals(enc.encrypt(Buffer.from('a'), aad))).toBe(false);
  });

  it('fails with DECRYPT_FAILED for another AAD', () => {
    const ct = enc.encrypt(Buffer.from('secret'), aad);
    expectCode(() => decryptEnvelope(provider, ct, { ...aad, column: 'phone' }), 'DECRYPT_FAILED', /does not verify for civil\.citizens\.phone \(source cityhub, department health, row key id\)/);
  });

  it('binds the value to its row, department and source: moved anywhere else it fails with DECRYPT_FAILED', () => {
    const ct = enc.encrypt(Buffer.from('110101199001011234'), aad);
    for (const moved of [
      { ...aad, key: { id: '8' } }, // another row of the same column
      { ...aad, key: { id: '7', seq: '1' } }, // a row of a wider key
      { ...aad, department: 'police' }, // another department (holding the same KEK id, say)
      { ...aad, source: 'cityhub_west' }, // another source with the same db.table
      { ...aad, table: 'citizens_archive' },
    ]) {
      expectCode(() => decryptEnvelope(provider, ct, moved), 'DECRYPT_FAILED', /does not verify for/);
    }
    // The key as a driver returns it: numbers and text of the same key are the same key, in any order.
    const wide = enc.encrypt(Buffer.from('v'), { ...aad, key: { id: '7', seq: '1' } });
    expect(decryptEnvelope(provider, wide, { ...aad, key: { seq: 1, id: 7 } }).toString()).toBe('v');
    expect(decryptEnvelope(provider, ct, { ...aad, key: { id: 7 } }).toString()).toBe('110101199001011234');
  });

  it('binds a row of a table without a key (append-only change log) to its change position', () => {
    const keyless = { ...aad, table: 'audit_log', key: rowKeyOf({}, 'v-000123') };
    expect(keyless.key).toEqual({ __version: 'v-000123' });
    const ct = enc.encrypt(Buffer.from('v'), keyless);
    expect(decryptEnvelope(provider, ct, keyless).toString()).toBe('v');
    expectCode(() => decryptEnvelope(provider, ct, { ...keyless, key: { __version: 'v-000124' } }), 'DECRYPT_FAILED');
    expectCode(() => decryptEnvelope(provider, ct, { ...keyless, key: {} }), 'CONFIG_INVALID', /row key of civil\.audit_log\.id_card is empty/);
    expectCode(() => enc.encrypt(Buffer.from('v'), { ...keyless, key: {} }), 'CONFIG_INVALID');
  });

  it('fails for a tampered byte in every region', () => {
    const ct = enc.encrypt(Buffer.from('some personal value'), aad);
    const r = regions(ct, ivBytes, tagBytes);
    const flip = (i: number) => {
      const t = Buffer.from(ct);
      t[i]! ^= 0x01;
      return t;
    };
    // Header: version, suite id, wrapped-DEK length (both bytes), the other suite's id.
    // Version 3 -> 2 (flip of bit 0) opens as the column-bound layout, under another AAD; any other version is not an envelope.
    expectCode(() => decryptEnvelope(provider, flip(0), aad), 'DECRYPT_FAILED', /does not verify for civil\.citizens\.id_card:/);
    const v4 = Buffer.from(ct);
    v4[0] = 4;
    expectCode(() => decryptEnvelope(provider, v4, aad), 'DECRYPT_FAILED', /not a version-3/);
    expectCode(() => decryptEnvelope(provider, flip(1), aad), 'DECRYPT_FAILED', /unknown cipher suite/);
    expectCode(() => decryptEnvelope(provider, flip(r.kekId[1]), aad), 'DECRYPT_FAILED', /truncated/);
    expectCode(() => decryptEnvelope(provider, flip(r.kekId[1] + 1), aad), 'DECRYPT_FAILED', /wrapped data key is/);
    const swapped = Buffer.from(ct);
    swapped[1] = suite === 'aes-256-gcm' ? 2 : 1;
    expectCode(() => decryptEnvelope(provider, swapped, aad), 'DECRYPT_FAILED');
    // KEK id length: the fields after it shift, the wrapped length overruns the input.
    expectCode(() => decryptEnvelope(provider, flip(2), aad), 'DECRYPT_FAILED', /truncated/);
    // KEK id: names another key, which this keyring does not hold.
    expectCode(() => decryptEnvelope(provider, flip(r.kekId[0]), aad), 'KEY_NOT_FOUND');
    // Wrapped DEK, iv, ciphertext, tag: first and last byte of each.
    for (const [region, [start, end]] of Object.entries({ wrapped: r.wrapped, iv: r.iv, ciphertext: r.ciphertext, tag: r.tag })) {
      for (const i of [start, end - 1]) {
        expectCode(() => decryptEnvelope(provider, flip(i), aad), 'DECRYPT_FAILED', region === 'wrapped' ? /wrapped data key does not verify/ : /does not verify for/);
      }
    }
    // Still fine untouched (the DEK cache holds no damage).
    expect(decryptEnvelope(provider, ct, aad).toString()).toBe('some personal value');
  });

  it('fails with DECRYPT_FAILED for truncated input and non-envelopes', () => {
    const ct = enc.encrypt(Buffer.from('v'), aad);
    for (const n of [0, 1, 2, 3, 10, ct.length - tagBytes - 2, ct.length - 1]) {
      expectCode(() => decryptEnvelope(provider, ct.subarray(0, n), aad), 'DECRYPT_FAILED');
    }
    const v1 = encryptField(new FileKeyring({ version: 1, keys: { [KEK]: [{ id: 'health-1', material: material(1) }] } }).activeKey(KEK), Buffer.from('v'), bindingAad(aad));
    expectCode(() => decryptEnvelope(provider, v1, aad), 'DECRYPT_FAILED', /not a version-3/);
  });

  it('fails with DECRYPT_FAILED under other key material with the same KEK id', () => {
    const ct = enc.encrypt(Buffer.from('v'), aad);
    const impostor = keyringOf({ [KEK]: [{ id: 'health-1', material: material(9) }] });
    expectCode(() => decryptEnvelope(impostor, ct, aad), 'DECRYPT_FAILED', /does not verify under KEK health-1/);
  });

  it('fails with KEY_NOT_FOUND naming the KEK id when the department lacks it', () => {
    const ct = enc.encrypt(Buffer.from('v'), aad);
    const police = keyringOf({ 'department:police': [{ id: 'police-1', material: material(3) }] });
    expectCode(() => decryptEnvelope(police, ct, aad), 'KEY_NOT_FOUND', /health-1/);
    expectCode(() => new EnvelopeEncryptor(police, KEK, { suite }).encrypt(Buffer.from('v'), aad), 'KEY_NOT_FOUND', /department:health/);
  });
});

describe('DEK and KEK rotation', () => {
  /** Counts wraps and remembers the last provider answer. */
  function counting(inner: KeyEncryptionProvider) {
    const counts = { wrap: 0, unwrap: 0 };
    const p: KeyEncryptionProvider = {
      wrap: (name, dek) => (counts.wrap++, inner.wrap(name, dek)),
      unwrap: (id, wrapped) => (counts.unwrap++, inner.unwrap(id, wrapped)),
    };
    return { p, counts };
  }
  const wrappedOf = (ct: Buffer) => {
    const r = regions(ct, 12, 16);
    return ct.subarray(r.wrapped[0], r.wrapped[1]).toString('hex');
  };

  it('wraps once per DEK and draws a fresh DEK after maxValuesPerDek values', () => {
    const { p, counts } = counting(provider);
    const enc = new EnvelopeEncryptor(p, KEK, { maxValuesPerDek: 3 });
    const cts = Array.from({ length: 7 }, (_, i) => enc.encrypt(Buffer.from(`v${i}`), aad));
    expect(counts.wrap).toBe(3);
    const w = cts.map(wrappedOf);
    expect(new Set(w.slice(0, 3)).size).toBe(1);
    expect(new Set(w.slice(3, 6)).size).toBe(1);
    expect(new Set(w).size).toBe(3);
    expect(enc.current?.values).toBe(1);
    // The decrypt side unwraps once per DEK (LRU cache) and decrypts every value.
    const dec = counting(provider);
    cts.forEach((ct, i) => expect(decryptEnvelope(dec.p, ct, aad).toString()).toBe(`v${i}`));
    expect(dec.counts.unwrap).toBe(3);
  });

  it('draws a fresh DEK after maxDekAgeMs', () => {
    let now = 1_000;
    const { p, counts } = counting(provider);
    const enc = new EnvelopeEncryptor(p, KEK, { maxDekAgeMs: 60_000, now: () => now });
    enc.encrypt(Buffer.from('a'), aad);
    now += 59_999;
    enc.encrypt(Buffer.from('b'), aad);
    expect(counts.wrap).toBe(1);
    now += 1;
    enc.encrypt(Buffer.from('c'), aad);
    expect(counts.wrap).toBe(2);
    expect(enc.current).toEqual({ kekId: 'health-1', values: 1, createdAt: 61_000 });
  });

  it('uses an appended KEK for new DEKs while old ciphertexts still decrypt', () => {
    const entries = [{ id: 'health-1', material: material(1) }];
    const before = keyringOf({ [KEK]: entries });
    const enc = new EnvelopeEncryptor(before, KEK, { suite: 'sm4-ctr-hmac-sm3', maxValuesPerDek: 2 });
    const old = enc.encrypt(Buffer.from('old'), aad);
    expect(envelopeKeyIds(old).kekId).toBe('health-1');

    // The keyring is reloaded with a second key appended; the encryptor gets the new provider.
    const after = keyringOf({ [KEK]: [...entries, { id: 'health-2', material: material(2) }] });
    const enc2 = new EnvelopeEncryptor(after, KEK, { suite: 'sm4-ctr-hmac-sm3' });
    const fresh = enc2.encrypt(Buffer.from('new'), aad);
    expect(envelopeKeyIds(fresh)).toEqual({ suite: 'sm4-ctr-hmac-sm3', kekId: 'health-2' });
    expect(decryptEnvelope(after, old, aad).toString()).toBe('old');
    expect(decryptEnvelope(after, fresh, aad).toString()).toBe('new');
    // Once the old key is removed, its ciphertexts name the key they need.
    const only2 = keyringOf({ [KEK]: [{ id: 'health-2', material: material(2) }] });
    expectCode(() => decryptEnvelope(only2, old, aad), 'KEY_NOT_FOUND', /health-1/);
  });

  it('notices a changed active KEK at the next DEK rotation, or at once with rotate()', () => {
    // A provider whose active KEK changes underneath the encryptor (as a KMS rotation would).
    const keys = { [KEK]: [{ id: 'health-1', material: material(1) }] };
    let inner = keyringOf(keys);
    const p: KeyEncryptionProvider = { wrap: (n, d) => inner.wrap(n, d), unwrap: (i, w) => inner.unwrap(i, w) };
    const enc = new EnvelopeEncryptor(p, KEK, { maxValuesPerDek: 2 });
    const a = enc.encrypt(Buffer.from('a'), aad);
    inner = keyringOf({ [KEK]: [...keys[KEK], { id: 'health-2', material: material(2) }] });
    const b = enc.encrypt(Buffer.from('b'), aad); // same DEK
    const c = enc.encrypt(Buffer.from('c'), aad); // fresh DEK, new KEK
    expect([a, b, c].map((x) => envelopeKeyIds(x).kekId)).toEqual(['health-1', 'health-1', 'health-2']);

    inner = keyringOf({ [KEK]: [...keys[KEK], { id: 'health-2', material: material(2) }, { id: 'health-3', material: material(3) }] });
    expect(enc.rotate()).toBe('health-3');
    const d = enc.encrypt(Buffer.from('d'), aad);
    expect(envelopeKeyIds(d).kekId).toBe('health-3');
    for (const [ct, v] of [[a, 'a'], [b, 'b'], [c, 'c'], [d, 'd']] as const) expect(decryptEnvelope(p, ct, aad).toString()).toBe(v);
  });

  it('still opens version-2 ciphertexts of earlier releases (bound to the column only) during the migration window', () => {
    // Written by the previous release's EnvelopeEncryptor under health-1 = material(1), for civil.citizens.id_card.
    const layout2 = {
      'aes-256-gcm': 'AgEIaGVhbHRoLTEAPIQ+Z7jYdq8ynljALruRsWTcVN6K7K7AX2GjEMOrbhzFELyvAofra9Gg8ibYPH41bGDYoutClPqosVMW98a9EKZBzkVWeS5PS26gxw4EwZIeWgOA6EgNJjt94/XyeRWn4x5ROle48oOphQY10Q==',
      'sm4-ctr-hmac-sm3': 'AgIIaGVhbHRoLTEAPDw2KRNn3w6UyyYS3Vt9tZORGXbGXGIaNWCjxaJZsTXaJZhIUKUMLRipSC7GW4f4MmO5DLkwVkdXKBPRTDKW19rrfrkiHO9ybi8g1Cbw/CchSE6/n2Kl4zqnWuRnPBFSKRGQCoopoxnX6bPliRHuaAVSqUNDePN95kWC8o3QAnlG',
    };
    for (const [suite, b64] of Object.entries(layout2)) {
      const ct = Buffer.from(b64, 'base64');
      expect(envelopeKeyIds(ct)).toEqual({ suite, kekId: 'health-1' });
      // Any row opens it (that is what layout 3 fixes), another column does not.
      expect(decryptEnvelope(provider, ct, { ...aad, key: { id: '8' } }).toString()).toBe('"110101199001011234"');
      expectCode(() => decryptEnvelope(provider, ct, { ...aad, column: 'phone' }), 'DECRYPT_FAILED', /does not verify for civil\.citizens\.phone:/);
      expectCode(() => decryptEnvelope(provider, ct, aad, { allowLayout2: false }), 'DECRYPT_FAILED', /version 2 .* is refused/);
      // A version-3 ciphertext relabelled as version 2 does not open as one bound to its column only.
      const relabelled = Buffer.from(new EnvelopeEncryptor(provider, KEK, { suite: suite as CipherSuiteName }).encrypt(Buffer.from('v'), aad));
      relabelled[0] = 2;
      expectCode(() => decryptEnvelope(provider, relabelled, aad), 'DECRYPT_FAILED');
    }
  });

  it('refuses invalid options', () => {
    expectCode(() => new EnvelopeEncryptor(provider, KEK, { maxValuesPerDek: 0 }), 'CONFIG_INVALID');
    expectCode(() => new EnvelopeEncryptor(provider, KEK, { suite: 'rot13' as CipherSuiteName }), 'CONFIG_INVALID', /unknown cipher suite/);
  });
});

describe('department side', () => {
  it('opens with the department\'s own list only: a data key wrapped under another list\'s key id is KEY_NOT_FOUND', () => {
    const keyring = new FileKeyring({ version: 1, keys: { [KEK]: [{ id: 'health-1', material: material(1) }], pipeline: [{ id: 'pipeline-1', material: material(2) }] } });
    const own = new EnvelopeEncryptor(new KeyringKekProvider(keyring), KEK).encrypt(Buffer.from('"110101"'), aad);
    expect(openDepartmentValue(keyring, own, aad)).toBe('110101');
    // Someone able to write the department's table wraps a data key under the pipeline key, which the keyring also holds.
    const underPipeline = new EnvelopeEncryptor(new KeyringKekProvider(keyring), 'pipeline').encrypt(Buffer.from('"x"'), aad);
    expectCode(() => openDepartmentValue(keyring, underPipeline, aad), 'KEY_NOT_FOUND', /pipeline-1/);
  });
});

describe('bindingAad', () => {
  it('is the canonical JSON of the binding, spelled out', () => {
    const bindings = [
      { source: 'cityhub', department: 'health', db: 'civil', table: 'citizens', column: 'id_card', key: { id: '42' } },
      { source: 's"1', department: '卫生', db: 'd\\b', table: 't\u0001', column: 'c', key: { b: 7, a: 'x"y' } },
      { source: 's', department: 'd', db: 'd', table: 't', column: 'c', key: { __version: '0000000003.000000001234.000001' } },
    ];
    for (const b of bindings) {
      const key = Object.fromEntries(Object.entries(b.key).map(([k, v]) => [k, String(v)]));
      expect(bindingAad(b)).toBe(canonicalJson({ layout: 3, source: b.source, department: b.department, db: b.db, table: b.table, column: b.column, key }));
    }
  });
});
