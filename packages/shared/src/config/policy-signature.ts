import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { subkey, type DataKey } from '../crypto/keyring.js';
import { CdcError } from '../errors.js';

/**
 * The published policy is signed: whoever can write the pipeline file (a shared volume, a
 * config map) cannot add a grant or repoint a broker or a keyring by editing it. The control
 * plane signs each file it publishes with Ed25519, under a key derived from the newest key of
 * its keyring's `policy` list, in a last line:
 *
 *   # cityshare-signature: ed25519 <key id> <base64 signature of every byte before this line>
 *
 * Services hold only public keys, in CITYSHARE_POLICY_PUBLIC_KEYS (`<key id>:<base64>`,
 * comma-separated for rotation; `cdc policy public-key` prints it) — never in the file
 * itself, which names the keyring. With it set, a file unsigned, altered or signed by
 * another key is refused (POLICY_SIGNATURE_INVALID) and the running policy stays.
 */
export const POLICY_SIGNATURE_PREFIX = '# cityshare-signature: ';
/** The line before the signature of a published policy: when it was issued (signed with it, so a copy cannot be passed off as newer). */
export const POLICY_ISSUED_PREFIX = '# cityshare-policy-issued: ';

/** When a published policy was issued (ISO time), or undefined for a file without the line. */
export function policyIssuedAt(text: string): string | undefined {
  const line = text.split('\n').find((l) => l.startsWith(POLICY_ISSUED_PREFIX));
  return line?.slice(POLICY_ISSUED_PREFIX.length).trim();
}

/** A published policy without its issued and signature lines: what the catalog and grants rendered. */
export function policyBody(text: string): string {
  return text.split('\n').filter((l) => !l.startsWith(POLICY_ISSUED_PREFIX) && !l.startsWith(POLICY_SIGNATURE_PREFIX)).join('\n');
}
export const POLICY_PUBLIC_KEYS_ENV = 'CITYSHARE_POLICY_PUBLIC_KEYS';

const LABEL = 'cityshare/policy-signing/v1';
// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** The Ed25519 key pair of a `policy` key (its HKDF subkey is the seed). */
export function policySigningKey(key: DataKey): { keyId: string; privateKey: KeyObject; publicKey: string } {
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, subkey(key, LABEL)]), format: 'der', type: 'pkcs8' });
  const raw = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x!, 'base64url');
  return { keyId: key.id, privateKey, publicKey: `${key.id}:${raw.toString('base64')}` };
}

/** `text` with its signature line (text without a signature line of its own). */
export function signPolicy(text: string, key: DataKey): string {
  const { keyId, privateKey } = policySigningKey(key);
  const body = text.endsWith('\n') ? text : `${text}\n`;
  return `${body}${POLICY_SIGNATURE_PREFIX}ed25519 ${keyId} ${sign(null, Buffer.from(body, 'utf8'), privateKey).toString('base64')}\n`;
}

/** The trusted public keys by id, from `<key id>:<base64>,…` (CONFIG_INVALID when malformed). */
export function parsePolicyPublicKeys(list: string): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const item of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const at = item.lastIndexOf(':');
    const raw = Buffer.from(item.slice(at + 1), 'base64');
    if (at <= 0 || raw.length !== 32) {
      throw new CdcError('CONFIG_INVALID', `${POLICY_PUBLIC_KEYS_ENV}: "${item}" is not <key id>:<base64 of a 32-byte Ed25519 public key>; \`cdc policy public-key --keyring <control keyring>\` prints the right value`);
    }
    keys.set(item.slice(0, at), createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' }));
  }
  return keys;
}

/**
 * Checks the signature of a pipeline file's text when public keys are trusted (`trusted`,
 * the value of CITYSHARE_POLICY_PUBLIC_KEYS); without them the file is taken as it is.
 */
export function checkPolicySignature(text: string, path: string, trusted: string | undefined): void {
  if (!trusted) return;
  const keys = parsePolicyPublicKeys(trusted);
  const refuse = (why: string) => {
    throw new CdcError('POLICY_SIGNATURE_INVALID', `pipeline file ${path} ${why}`, { details: { path } });
  };
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  const at = body.lastIndexOf('\n') + 1;
  const last = body.slice(at);
  if (!last.startsWith(POLICY_SIGNATURE_PREFIX)) return refuse('is not signed (its last line is not a cityshare-signature)');
  const [scheme, keyId, signature, ...rest] = last.slice(POLICY_SIGNATURE_PREFIX.length).split(' ');
  if (scheme !== 'ed25519' || !keyId || !signature || rest.length > 0) return refuse('has a malformed signature line');
  const key = keys.get(keyId);
  if (!key) return refuse(`is signed with key ${keyId}, which is not among the trusted policy keys (${[...keys.keys()].join(', ')})`);
  if (!verify(null, Buffer.from(text.slice(0, at), 'utf8'), key, Buffer.from(signature, 'base64'))) return refuse(`does not verify under policy key ${keyId}: it was changed after the control plane signed it`);
}
