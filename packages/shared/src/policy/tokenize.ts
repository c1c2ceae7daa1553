import { createHmac } from 'node:crypto';
import type { DataKey } from '../crypto/keyring.js';

/**
 * Deterministic token: HMAC-SHA256 of the canonical value under a domain key. Two
 * departments given tokens from the same domain can join on them without the value.
 * The key id is part of the token so that rotation is visible.
 */
export function tokenize(key: DataKey, value: unknown): string {
  const mac = createHmac('sha256', key.material).update(JSON.stringify(value), 'utf8').digest('base64url');
  return `tok:${key.id}:${mac}`;
}
