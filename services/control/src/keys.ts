import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Pool } from 'mysql2/promise';
import { CdcError, FileKeyring, type KeyringFile } from '@cityshare/shared';
import type { AuditLedger } from './ledger.js';
import { authorize, type Principal } from './roles.js';
import { inTransaction } from './transaction.js';

export interface KeyVersion {
  name: string;
  id: string;
  created: string | null;
  active: boolean;
  rotatedBy: string | null;
}

/** Lists a first rotation may create: a department's own token key (the upgrade path, docs/security.md "Keys"). */
const CREATABLE_LIST = /^token:own:[a-z][a-z0-9_]*$/;

/**
 * Key rotation through the control plane: a new key is appended to a key list of the
 * pipeline's keyring (it encrypts from then on; the older ones still decrypt), the
 * transformer picks it up within a second, and the key id — never the material — is
 * recorded in `key_versions` and the ledger.
 */
export class KeyAdmin {
  constructor(
    private readonly pool: Pool,
    private readonly ledger: AuditLedger,
    /** Where the pipeline's keyring is (it follows the published pipeline file). */
    private readonly keyringPath: () => string,
  ) {}

  async list(who: Principal): Promise<KeyVersion[]> {
    await authorize(this.ledger, who, 'key.list', 'keys');
    const [rows] = await this.pool.query('SELECT key_id AS id, created_by AS rotatedBy FROM key_versions');
    const rotatedBy = new Map((rows as Array<{ id: string; rotatedBy: string }>).map((r) => [r.id, r.rotatedBy]));
    return Object.entries(this.read().keys).flatMap(([name, keys]) =>
      keys.map((k, i) => ({ name, id: k.id, created: k.created ?? null, active: i === keys.length - 1, rotatedBy: rotatedBy.get(k.id) ?? null })),
    );
  }

  async rotate(who: Principal, name: string, reason: string): Promise<KeyVersion> {
    await authorize(this.ledger, who, 'key.rotate', `key/${name}`);
    if (!reason.trim()) throw new CdcError('CONFIG_INVALID', 'a key rotation needs a reason');
    const file = this.read();
    if (!file.keys[name] && !CREATABLE_LIST.test(name)) {
      throw new CdcError('KEY_NOT_FOUND', `no key list named ${name} in the keyring (names: ${Object.keys(file.keys).sort().join(', ')}); only a token:own:<department> list is created by its first rotation`);
    }
    const list = (file.keys[name] ??= []);
    const created = new Date().toISOString();
    const key = { id: `${name.replace(/[^a-z0-9-]/gi, '-')}-${randomBytes(4).toString('hex')}`, material: randomBytes(32).toString('base64'), created };
    const previous = list.at(-1)?.id ?? null;
    await inTransaction(this.pool, async (conn) => {
      await conn.query('INSERT INTO key_versions VALUES (?, ?, UTC_TIMESTAMP(6), ?)', [key.id, name, who.name]);
      await this.ledger.append({ actor: who.name, role: who.role, action: 'key.rotate', subject: `key/${name}`, details: { keyId: key.id, previousKeyId: previous, reason } }, conn);
      // The file last, just before the commit: a key the ledger does not know is never written.
      list.push(key);
      const path = this.keyringPath();
      writeFileSync(`${path}.tmp`, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
    });
    return { name, id: key.id, created, active: true, rotatedBy: who.name };
  }

  private read(): KeyringFile {
    const path = this.keyringPath();
    FileKeyring.load(path); // validates, with a clear error
    return JSON.parse(readFileSync(path, 'utf8')) as KeyringFile;
  }
}
