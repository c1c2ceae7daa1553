import { hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { CdcError } from '../errors.js';

/**
 * Local keyring file for development and single-host deployments: named key lists,
 * the last entry of each list encrypts, every entry decrypts (rotation keeps old ones).
 * Production deployments put a KMS behind the same KeyProvider interface.
 */
export interface DataKey {
  id: string;
  material: Buffer;
}

const subkeyCache = new WeakMap<DataKey, Map<string, Buffer>>();

/**
 * A 32-byte subkey of `key` for one use, HKDF-SHA256 with `label` as info: one key's bytes
 * never serve two uses (an AES key is not also an HMAC key, a checkpoint signature is not a
 * record MAC). Labels name the use and its version, e.g. `cityshare/record-mac/v1`.
 */
export function subkey(key: DataKey, label: string): Buffer {
  let byLabel = subkeyCache.get(key);
  if (!byLabel) subkeyCache.set(key, (byLabel = new Map()));
  let derived = byLabel.get(label);
  if (!derived) byLabel.set(label, (derived = Buffer.from(hkdfSync('sha256', key.material, Buffer.alloc(0), label, 32))));
  return derived;
}

export interface KeyProvider {
  /** The key that encrypts new data under this name. */
  activeKey(name: string): DataKey;
  /** Any key by id, for decryption. */
  keyById(id: string): DataKey;
  /** A key of the list `name` by id: KEY_NOT_FOUND for a key of another list, so one list's holder cannot pass for another. */
  keyOf(name: string, id: string): DataKey;
}

/**
 * The keys of one list only, as a KeyProvider: a ciphertext naming a key of another list (a
 * department's key, which its department holds) does not open under it.
 */
export function keysOfList(keys: KeyProvider, name: string): KeyProvider {
  return { activeKey: () => keys.activeKey(name), keyById: (id) => keys.keyOf(name, id), keyOf: (_, id) => keys.keyOf(name, id) };
}

const keyringFile = z.object({
  version: z.literal(1),
  keys: z.record(
    z.string(),
    z.array(z.object({ id: z.string().min(1).refine((id) => Buffer.byteLength(id, 'utf8') <= 255, 'a key id is at most 255 bytes: every ciphertext names it'), material: z.string(), created: z.string().optional() })).min(1),
  ),
});

export type KeyringFile = z.infer<typeof keyringFile>;

export const keyNames = {
  pipeline: 'pipeline',
  department: (name: string) => `department:${name}`,
  /**
   * HMAC key of a department's own token domain (grant action `tokenize` without a domain).
   * Never the department's KEK, which the department holds: with it, it could recompute the
   * token of every phone or ID-card number and so reverse its tokens.
   */
  ownTokens: (department: string) => `token:own:${department}`,
  /** HMAC key of a department's webhook signatures. */
  webhook: (name: string) => `webhook:${name}`,
  /** MAC key of the sinks' delivery records (sinks and the control plane hold it, not the pipeline key). */
  deliveries: 'deliveries',
  /** HMAC key of the audit ledger's signed head and checkpoints (the control plane alone holds it). */
  audit: 'audit',
  /** Seed of the Ed25519 key that signs the published policy (the control plane alone holds it; services get the public key). */
  policy: 'policy',
};

/** Who holds a keyring of its own, with only the lists its work needs (`keyListsOf`). */
export type KeyringHolder = 'cdc-reader' | 'transformer' | 'verifier' | 'sink' | 'department';

/**
 * The key lists a service (or a department) needs, of the lists `names` a full keyring
 * holds: a reader seals with the pipeline key; the transformer opens seals and applies every
 * department's grants (KEKs, token domains; new grants need no new keyring); a sink signs
 * delivery records, and its department's webhooks or export pushes unless its target is known
 * to sign nothing (`targetSigns` false: the sink's target registry says); a department opens its
 * ciphertexts with its KEK. The verifier applies the same grants to the source and opens what
 * departments hold encrypted, on its own side: the transformer's lists (it trusts checkpoints
 * with the pipeline key). The audit and policy keys stay with the control plane, and no one
 * but the transformer and the verifier holds a department's KEK or a token key.
 */
export function keyListsOf(holder: KeyringHolder, names: string[], department?: string, { targetSigns = true }: { targetSigns?: boolean } = {}): string[] {
  const wanted = (name: string): boolean => {
    switch (holder) {
      case 'cdc-reader':
        return name === keyNames.pipeline;
      case 'transformer': case 'verifier':
        return name === keyNames.pipeline || name.startsWith('department:') || name.startsWith('token:');
      case 'sink':
        return name === keyNames.deliveries || (department !== undefined && targetSigns && name === keyNames.webhook(department));
      case 'department':
        return department !== undefined && name === keyNames.department(department);
    }
  };
  return names.filter(wanted);
}

export class FileKeyring implements KeyProvider {
  private readonly byName = new Map<string, DataKey[]>();
  private readonly byId = new Map<string, DataKey>();

  /** The names of the lists this keyring holds. */
  listNames(): string[] {
    return [...this.byName.keys()];
  }

  /** A keyring file holding only `lists` of this one (for a service's own keyring: `cdc keys split`). */
  subset(lists: string[]): KeyringFile {
    return { version: 1, keys: Object.fromEntries(Object.entries(this.file.keys).filter(([name]) => lists.includes(name))) };
  }

  /**
   * The keyring of a service, from its file; logs (without refusing) every list it holds that
   * its work does not need, so an operator sees a keyring copied whole to a service.
   */
  static loadFor(path: string, holder: KeyringHolder, logger: { warn(o: object, msg: string): void }, department?: string, sink: { targetSigns?: boolean } = {}): FileKeyring {
    const keys = FileKeyring.load(path);
    const names = keys.listNames();
    const needed = keyListsOf(holder, names, department, sink);
    const extra = names.filter((n) => !needed.includes(n));
    if (extra.length > 0) {
      logger.warn({ code: 'KEYRING_TOO_BROAD', keyring: path, extra }, `the keyring holds ${extra.length} key list(s) this ${holder} does not need (${extra.join(', ')}): give it its own keyring with \`cdc keys split\` and CITYSHARE_KEYRING, so a compromised host holds only what it uses`);
    }
    return keys;
  }

  constructor(private readonly file: KeyringFile) {
    for (const [name, entries] of Object.entries(file.keys)) {
      const keys = entries.map((e) => {
        const material = Buffer.from(e.material, 'base64');
        if (material.length !== 32) {
          throw new CdcError('CONFIG_INVALID', `keyring: key ${e.id} of ${name} is ${material.length} bytes, expected 32`);
        }
        return { id: e.id, material };
      });
      this.byName.set(name, keys);
      for (const k of keys) this.byId.set(k.id, k);
    }
  }

  static load(path: string): FileKeyring {
    if (!existsSync(path)) {
      throw new CdcError('CONFIG_NOT_FOUND', `keyring file ${path} does not exist`, { details: { path } });
    }
    const parsed = keyringFile.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    if (!parsed.success) {
      throw new CdcError('CONFIG_INVALID', `keyring file ${path}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    return new FileKeyring(parsed.data);
  }

  /** Creates the file with fresh random keys for the given names when it does not exist. */
  static ensure(path: string, names: string[]): FileKeyring {
    const file: KeyringFile = existsSync(path)
      ? keyringFile.parse(JSON.parse(readFileSync(path, 'utf8')))
      : { version: 1, keys: {} };
    let changed = !existsSync(path);
    for (const name of names) {
      if (file.keys[name]) continue;
      file.keys[name] = [{ id: `${name.replace(/[^a-z0-9-]/gi, '-')}-${randomBytes(4).toString('hex')}`, material: randomBytes(32).toString('base64'), created: new Date().toISOString() }];
      changed = true;
    }
    if (changed) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
    }
    return new FileKeyring(file);
  }

  activeKey(name: string): DataKey {
    const keys = this.byName.get(name);
    if (!keys || keys.length === 0) throw new CdcError('KEY_NOT_FOUND', `no key named ${name} in the keyring`, { details: { name } });
    return keys[keys.length - 1]!;
  }

  /** Every key of the list `name`, oldest first (KEY_NOT_FOUND when there is none). */
  keysOf(name: string): DataKey[] {
    this.activeKey(name);
    return [...this.byName.get(name)!];
  }

  keyOf(name: string, id: string): DataKey {
    const key = this.byName.get(name)?.find((k) => k.id === id);
    if (!key) throw new CdcError('KEY_NOT_FOUND', `no key with id ${id} in the keyring list ${name}`, { details: { name, keyId: id } });
    return key;
  }

  keyById(id: string): DataKey {
    const key = this.byId.get(id);
    if (!key) throw new CdcError('KEY_NOT_FOUND', `no key with id ${id} in the keyring`, { details: { keyId: id } });
    return key;
  }
}
