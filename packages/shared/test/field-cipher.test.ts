import { describe, expect, it } from 'vitest';
import { FileKeyring } from '../src/crypto/keyring.js';
import { createCipheriv, randomBytes } from 'node:crypto';
import { ciphertextKeyId, columnAad, decryptField, encryptField, openValue, sealValue, sealingBounds } from '../src/crypto/field-cipher.js';
import { isCdcError } from '../src/errors.js';

const material = (byte: number) => Buffer.alloc(32, byte).toString('base64');
const keyring = new FileKeyring({
  version: 1,
  keys: {
    'department:health': [
      { id: 'health-1', material: material(1) },
      { id: 'health-2', material: material(2) },
    ],
    'department:police': [{ id: 'police-1', material: material(3) }],
  },
});

describe('field cipher (AES-256-GCM)', () => {
  const aad = columnAad('civil', 'citizens', 'id_card');

  it('round-trips under the active key and names that key', () => {
    const ct = encryptField(keyring.activeKey('department:health'), Buffer.from('110101199001011234'), aad);
    expect(ciphertextKeyId(ct)).toBe('health-2');
    expect(decryptField(keyring, ct, aad).toString()).toBe('110101199001011234');
  });

  it('still decrypts data written under a rotated-out key', () => {
    const ct = encryptField(keyring.keyById('health-1'), Buffer.from('x'), aad);
    expect(decryptField(keyring, ct, aad).toString()).toBe('x');
  });

  it('does not decrypt with another department key, another column or tampered bytes', () => {
    const ct = encryptField(keyring.activeKey('department:health'), Buffer.from('secret'), aad);
    const police = new FileKeyring({ version: 1, keys: { p: [{ id: 'health-2', material: material(3) }] } });
    expect(() => decryptField(police, ct, aad)).toThrow(/does not verify/);
    expect(() => decryptField(keyring, ct, columnAad('civil', 'citizens', 'phone'))).toThrow(/does not verify/);
    const tampered = Buffer.from(ct);
    tampered[tampered.length - 20]! ^= 1;
    try {
      decryptField(keyring, tampered, aad);
      expect.unreachable();
    } catch (err) {
      expect(isCdcError(err, 'DECRYPT_FAILED')).toBe(true);
    }
  });

  it('fails with KEY_NOT_FOUND for an unknown key id', () => {
    const other = new FileKeyring({ version: 1, keys: { x: [{ id: 'unknown-9', material: material(9) }] } });
    const ct = encryptField(other.activeKey('x'), Buffer.from('v'), aad);
    expect(() => decryptField(keyring, ct, aad)).toThrow(/no key with id unknown-9/);
  });

  it('seals JSON values for change events and opens them exactly', () => {
    const key = keyring.activeKey('department:police');
    for (const value of ['张三😀', '12345678901234567890.123', 42, null]) {
      const sealed = sealValue(key, value, aad);
      expect(sealed.startsWith('enc:v1:')).toBe(true);
      // Short texts ("42", "null") turn up in random base64 by chance; long ones must not.
      if (String(value).length >= 8) expect(sealed).not.toContain(String(value));
      expect(openValue(keyring, sealed, aad)).toEqual(value);
    }
  });

  it('produces a different ciphertext each time (random IV)', () => {
    const key = keyring.activeKey('department:health');
    expect(encryptField(key, Buffer.from('a'), aad).equals(encryptField(key, Buffer.from('a'), aad))).toBe(false);
  });

  /** The salt of a version-4 ciphertext: it names the derived key that sealed it. */
  const saltOf = (ct: Buffer) => ct.subarray(2 + ct[1]!, 2 + ct[1]! + 16).toString('hex');

  it('seals under a key derived from the keyring key, with a fresh salt after the count or age bound', () => {
    const key = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p-1', material: material(5) }] } }).activeKey('pipeline');
    const saved = { ...sealingBounds };
    sealingBounds.sealsPerSubkey = 3;
    try {
      const salts = Array.from({ length: 7 }, () => saltOf(encryptField(key, Buffer.from('v'), aad)));
      expect(salts.slice(0, 3).every((s) => s === salts[0])).toBe(true);
      expect(salts[3]).not.toBe(salts[0]);
      expect(new Set(salts).size).toBe(3);
      sealingBounds.sealsPerSubkey = saved.sealsPerSubkey;
      sealingBounds.maxAgeMs = 0;
      expect(saltOf(encryptField(key, Buffer.from('v'), aad))).not.toBe(saltOf(encryptField(key, Buffer.from('v'), aad)));
    } finally {
      Object.assign(sealingBounds, saved);
    }
    // The AES key is not the keyring key: a ciphertext opened with the raw key as AES key fails.
    const ct = encryptField(key, Buffer.from('v'), aad);
    expect(ct[0]).toBe(4);
    expect(decryptField(new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p-1', material: material(5) }] } }), ct, aad).toString()).toBe('v');
  });

  it('still opens version-1 values sealed under the keyring key itself (written before version 4)', () => {
    const key = keyring.activeKey('department:health');
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key.material, iv);
    cipher.setAAD(Buffer.from(aad));
    const body = Buffer.concat([cipher.update('"old"'), cipher.final()]);
    const v1 = Buffer.concat([Buffer.from([1, key.id.length]), Buffer.from(key.id), iv, body, cipher.getAuthTag()]);
    expect(openValue(keyring, `enc:v1:${v1.toString('base64')}`, aad)).toBe('old');
  });
});
