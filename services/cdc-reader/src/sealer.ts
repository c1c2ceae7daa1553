import { createCipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { SEALED_PREFIX, randomIv, type DataKey } from '@cityshare/shared';

const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * `sealValue` for JSON the caller has already written, without its intermediate buffers:
 * the same version-1 field ciphertext (0x01 | keyIdLength | keyId | iv | ciphertext | tag,
 * AES-256-GCM, base64 after `enc:v1:`), so `openValue` opens it. One per pipeline key;
 * the header, the key object and a scratch buffer are made once.
 */
export class JsonSealer {
  private readonly header: Buffer;
  private readonly keyObject: KeyObject;
  private scratch = Buffer.allocUnsafeSlow(4096);

  constructor(readonly key: DataKey) {
    const keyId = Buffer.from(key.id, 'utf8');
    if (keyId.length > 255) throw new Error('key id longer than 255 bytes');
    this.header = Buffer.concat([Buffer.from([1, keyId.length]), keyId]);
    this.keyObject = createSecretKey(key.material);
  }

  /** `enc:v1:` + base64 of the sealed UTF-8 of `json`, bound to `aad`. */
  seal(json: string, aad: string): string {
    const head = this.header.length;
    // Upper bounds: 3 UTF-8 bytes per UTF-16 unit.
    const need = head + IV_BYTES + json.length * 3 + TAG_BYTES + aad.length * 3;
    if (need > this.scratch.length) this.scratch = Buffer.allocUnsafeSlow(Math.max(need, this.scratch.length * 2));
    const out = this.scratch;
    this.header.copy(out, 0);
    const iv = randomIv(IV_BYTES);
    iv.copy(out, head);
    // The AAD's bytes go after the space the sealed value can take.
    const aadAt = need - aad.length * 3;
    const aadLen = out.write(aad, aadAt, 'utf8');
    const cipher = createCipheriv('aes-256-gcm', this.keyObject, out.subarray(head, head + IV_BYTES));
    cipher.setAAD(out.subarray(aadAt, aadAt + aadLen));
    const body = cipher.update(json, 'utf8');
    cipher.final();
    let at = head + IV_BYTES;
    at += body.copy(out, at);
    at += cipher.getAuthTag().copy(out, at);
    return SEALED_PREFIX + out.toString('base64', 0, at);
  }
}
