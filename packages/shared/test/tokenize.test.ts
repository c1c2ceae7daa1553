import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { grantAction } from '../src/config/pipeline-schema.js';
import type { DataKey } from '../src/crypto/keyring.js';
import { tokenDomainKeyName, tokenize } from '../src/policy/tokenize.js';

const citizen: DataKey = { id: 'token-citizen-1', material: Buffer.alloc(32, 7) };
const citizenRotated: DataKey = { id: 'token-citizen-2', material: Buffer.alloc(32, 8) };
const health: DataKey = { id: 'department-health-1', material: Buffer.alloc(32, 9) };

/** HMAC per RFC 2104 from the bare hash, independent of createHmac. SM3 has 64-byte blocks. */
function rfc2104(hash: string, blockSize: number, key: Buffer, message: Buffer): Buffer {
  const k = Buffer.alloc(blockSize);
  (key.length > blockSize ? createHash(hash).update(key).digest() : key).copy(k);
  const ipad = Buffer.from(k.map((b) => b ^ 0x36));
  const opad = Buffer.from(k.map((b) => b ^ 0x5c));
  const inner = createHash(hash).update(Buffer.concat([ipad, message])).digest();
  return createHash(hash).update(Buffer.concat([opad, inner])).digest();
}

describe('token domains', () => {
  it('names the keyring key of a domain', () => {
    expect(tokenDomainKeyName('citizen')).toBe('token:citizen');
  });

  it('keeps the old opaque HMAC-SHA256 token for tokenize(key, value)', () => {
    const expected = createHmac('sha256', citizen.material).update(JSON.stringify('13812341234')).digest('base64url');
    expect(tokenize(citizen, '13812341234')).toBe(`tok:token-citizen-1:${expected}`);
    expect(tokenize(citizen, '13812341234', { algorithm: 'hmac-sha256', format: 'opaque' })).toBe(`tok:token-citizen-1:${expected}`);
  });

  it('gives the same token for the same value and domain key, different ones otherwise', () => {
    for (const options of [{}, { format: 'digits' as const }, { format: 'preserve' as const }, { algorithm: 'hmac-sm3' as const }]) {
      const a = tokenize(citizen, '110101199001011234', options);
      expect(tokenize({ ...citizen, material: Buffer.from(citizen.material) }, '110101199001011234', options)).toBe(a);
      expect(tokenize(health, '110101199001011234', options)).not.toBe(a);
      expect(tokenize(citizenRotated, '110101199001011234', options)).not.toBe(a);
      expect(tokenize(citizen, '110101199001011235', options)).not.toBe(a);
    }
  });

  it('tells the canonical types apart (the INT 123 is not the BIGINT "123")', () => {
    expect(tokenize(citizen, 123)).not.toBe(tokenize(citizen, '123'));
  });

  it('carries the key id on opaque tokens only', () => {
    expect(tokenize(citizenRotated, 'x')).toMatch(/^tok:token-citizen-2:[A-Za-z0-9_-]{43}$/);
    expect(tokenize(citizenRotated, '138', { format: 'digits' })).toMatch(/^\d{3}$/);
  });
});

describe('HMAC-SM3', () => {
  it('hashes the GB/T 32905 test vector', () => {
    expect(createHash('sm3').update('abc').digest('hex')).toBe('66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0');
  });

  it('matches an independent RFC 2104 HMAC over SM3', () => {
    for (const value of ['13812341234', '欧阳娜娜', 42, null]) {
      const mac = rfc2104('sm3', 64, citizen.material, Buffer.from(JSON.stringify(value), 'utf8'));
      expect(tokenize(citizen, value, { algorithm: 'hmac-sm3' })).toBe(`tok:token-citizen-1:${mac.toString('base64url')}`);
    }
    // A key longer than the block is hashed first.
    const longKey: DataKey = { id: 'long', material: Buffer.alloc(100, 1) };
    const mac = rfc2104('sm3', 64, longKey.material, Buffer.from('"v"'));
    expect(tokenize(longKey, 'v', { algorithm: 'hmac-sm3' })).toBe(`tok:long:${mac.toString('base64url')}`);
  });

  it('differs from HMAC-SHA256 under the same key', () => {
    expect(tokenize(citizen, 'v', { algorithm: 'hmac-sm3' })).not.toBe(tokenize(citizen, 'v'));
  });
});

describe('digits format', () => {
  it('has as many digits as the value', () => {
    expect(tokenize(citizen, '110101199001011234', { format: 'digits' })).toMatch(/^\d{18}$/);
    expect(tokenize(citizen, '11010119900101123X', { format: 'digits' })).toMatch(/^\d{17}$/);
    expect(tokenize(citizen, '+86 138-1234-1234', { format: 'digits', algorithm: 'hmac-sm3' })).toMatch(/^\d{13}$/);
    expect(tokenize(citizen, 13812341234, { format: 'digits' })).toMatch(/^\d{11}$/);
    expect(tokenize(citizen, 'x'.repeat(10) + '1'.repeat(200), { format: 'digits' })).toMatch(/^\d{200}$/);
  });

  it('falls back to an opaque token for a value without digits', () => {
    expect(tokenize(citizen, '张三', { format: 'digits' })).toMatch(/^tok:token-citizen-1:/);
    expect(tokenize(citizen, '张三', { format: 'digits' })).toBe(tokenize(citizen, '张三'));
  });

  it('is uniform over the digits', () => {
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 2000; i++) for (const d of tokenize(citizen, `1101011990${String(i).padStart(8, '0')}`, { format: 'digits' })) counts[Number(d)]!++;
    // 36,000 digits, 3,600 expected each; 5 standard deviations is about +-285.
    for (const c of counts) expect(Math.abs(c - 3600)).toBeLessThan(300);
  });

  it('is pinned: a change to the derivation would silently break every join', () => {
    expect(tokenize(citizen, '110101199001011234', { format: 'digits' })).toMatchInlineSnapshot(`"183528012190280192"`);
    expect(tokenize(citizen, '110101199001011234', { format: 'digits', algorithm: 'hmac-sm3' })).toMatchInlineSnapshot(`"123908569302662652"`);
  });
});

describe('preserve format', () => {
  it('keeps the character classes, the case and every other character', () => {
    const token = tokenize(citizen, 'Ab-12 张三·李 😀', { format: 'preserve' });
    expect(token).toMatch(/^[A-Z][a-z]-\d\d [\u4e00-\u9fff]{2}·[\u4e00-\u9fff] 😀$/u);
    expect(Array.from(token)).toHaveLength(Array.from('Ab-12 张三·李 😀').length);
  });

  it('keeps the shape of an ID card, a plate and a name', () => {
    expect(tokenize(citizen, '11010119900101123X', { format: 'preserve' })).toMatch(/^\d{17}[A-Z]$/);
    expect(tokenize(citizen, '京AD12345', { format: 'preserve' })).toMatch(/^[\u4e00-\u9fff][A-Z]{2}\d{5}$/u);
    expect(tokenize(citizen, '欧阳娜娜', { format: 'preserve', algorithm: 'hmac-sm3' })).toMatch(/^[\u4e00-\u9fff]{4}$/u);
  });

  it('never keeps letters or digits of other scripts', () => {
    const token = tokenize(citizen, 'Éé٣𠀀', { format: 'preserve' });
    expect(token).toMatch(/^[A-Z][a-z]\d[\u4e00-\u9fff]$/u);
  });

  it('handles long values and null', () => {
    const long = '张'.repeat(5000);
    const token = tokenize(citizen, long, { format: 'preserve' });
    expect(token).toMatch(/^[\u4e00-\u9fff]{5000}$/u);
    expect(new Set(token).size).toBeGreaterThan(4000);
    expect(tokenize(citizen, null, { format: 'preserve' })).toBe('');
  });

  it('is pinned', () => {
    expect(tokenize(citizen, '欧阳娜娜 Ab-12', { format: 'preserve' })).toMatchInlineSnapshot(`"萳馎鎏藪 Gz-85"`);
  });
});

describe('grant action', () => {
  it('accepts the string form and the domain form with defaults', () => {
    expect(grantAction.parse('tokenize')).toBe('tokenize');
    expect(grantAction.parse({ tokenize: { domain: 'citizen' } })).toEqual({ tokenize: { domain: 'citizen', algorithm: 'hmac-sha256', format: 'opaque' } });
    expect(grantAction.parse({ tokenize: { domain: 'citizen', algorithm: 'hmac-sm3', format: 'digits' } })).toEqual({
      tokenize: { domain: 'citizen', algorithm: 'hmac-sm3', format: 'digits' },
    });
  });

  it('refuses unknown algorithms, formats and fields', () => {
    expect(grantAction.safeParse({ tokenize: { domain: 'citizen', algorithm: 'md5' } }).success).toBe(false);
    expect(grantAction.safeParse({ tokenize: { domain: 'citizen', format: 'fpe' } }).success).toBe(false);
    expect(grantAction.safeParse({ tokenize: { domain: 'Citizen!' } }).success).toBe(false);
    expect(grantAction.safeParse({ tokenize: { domain: 'citizen', key: 'x' } }).success).toBe(false);
  });
});
