import { describe, expect, it } from 'vitest';
import { FileKeyring } from '../src/crypto/keyring.js';
import { ciphertextKeyId, columnAad, decryptField, encryptField, openValue, sealValue } from '../src/crypto/field-cipher.js';
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
});
