import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Pool, PoolConnection } from 'mysql2/promise';
import type { DataKey, KeyProvider } from '@cityshare/shared';
import { inTransaction } from './transaction.js';

/** Who did what to what, and why; never a personal value (counts, key ids and digests only). */
export interface LedgerEntryInput {
  actor: string;
  role: string;
  action: string;
  subject: string;
  details: Record<string, unknown>;
}

export interface LedgerEntry extends LedgerEntryInput {
  seq: number;
  /** ISO time with microseconds, UTC. */
  at: string;
  prevHash: string;
  hash: string;
}

export interface LedgerProblem {
  seq: number;
  kind: 'modified' | 'missing' | 'reordered' | 'truncated' | 'checkpoint-forged';
  message: string;
}

export const GENESIS = '0'.repeat(64);

/** The hash of an entry: SHA-256 over the previous hash and the entry's canonical JSON. */
export function entryHash(prevHash: string, e: Omit<LedgerEntry, 'hash' | 'prevHash'>): string {
  const canonical = JSON.stringify([e.seq, e.at, e.actor, e.role, e.action, e.subject, canonicalJson(e.details)]);
  return createHash('sha256').update(`${prevHash}\n${canonical}`).digest('hex');
}

/** JSON with object keys sorted at every level, so equal details hash equally. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * Append-only, hash-chained audit ledger in the control-plane database. Each entry holds
 * the hash of the one before; at intervals the chain head is signed (HMAC-SHA256 under the
 * keyring's `audit` key) into `audit_checkpoints`. `verify` walks the chain and says where
 * an entry was modified, deleted, reordered, or the tail truncated behind a checkpoint.
 */
export class AuditLedger {
  constructor(
    private readonly pool: Pool,
    private readonly keys: KeyProvider,
    private readonly checkpointEvery = 100,
  ) {}

  /**
   * Appends one entry (serialised with other writers by a row lock on the head). Given a
   * connection inside a transaction (`within`), the entry commits with the caller's change.
   */
  async append(input: LedgerEntryInput, within?: PoolConnection): Promise<LedgerEntry> {
    const conn = within ?? (await this.pool.getConnection());
    if (!within) await conn.beginTransaction();
    try {
      const [rows] = await conn.query('SELECT seq, hash FROM audit_ledger ORDER BY seq DESC LIMIT 1 FOR UPDATE');
      const head = (rows as Array<{ seq: number; hash: string }>)[0];
      const seq = head ? Number(head.seq) + 1 : 1;
      const prevHash = head?.hash ?? GENESIS;
      const at = new Date().toISOString().replace('Z', '000Z');
      const entry: LedgerEntry = { ...input, seq, at, prevHash, hash: '' };
      entry.hash = entryHash(prevHash, entry);
      await conn.query('INSERT INTO audit_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
        seq, at.replace('T', ' ').replace('Z', ''), entry.actor, entry.role, entry.action, entry.subject, JSON.stringify(entry.details), prevHash, entry.hash,
      ]);
      if (seq % this.checkpointEvery === 0) await this.insertCheckpoint(conn, seq, entry.hash);
      if (!within) await conn.commit();
      return entry;
    } catch (err) {
      if (!within) await conn.rollback().catch(() => undefined);
      throw err;
    } finally {
      if (!within) conn.release();
    }
  }

  /** Appends unless an entry with the same action and subject exists (checked under the head's lock). */
  appendOnce(input: LedgerEntryInput): Promise<LedgerEntry | undefined> {
    return inTransaction(this.pool, async (conn) => {
      await conn.query('SELECT seq FROM audit_ledger ORDER BY seq DESC LIMIT 1 FOR UPDATE');
      const [rows] = await conn.query('SELECT seq FROM audit_ledger WHERE subject = ? AND action = ? LIMIT 1', [input.subject, input.action]);
      return (rows as unknown[]).length > 0 ? undefined : this.append(input, conn);
    });
  }

  /** Signs the current head now (also done every `checkpointEvery` entries). */
  async checkpoint(): Promise<void> {
    const [rows] = await this.pool.query('SELECT seq, hash FROM audit_ledger ORDER BY seq DESC LIMIT 1');
    const head = (rows as Array<{ seq: number; hash: string }>)[0];
    if (head) await this.insertCheckpoint(this.pool, Number(head.seq), head.hash);
  }

  private async insertCheckpoint(conn: Pick<Pool, 'query'>, seq: number, hash: string): Promise<void> {
    const key = this.keys.activeKey('audit');
    const signedAt = new Date().toISOString();
    await conn.query('INSERT IGNORE INTO audit_checkpoints VALUES (?, ?, ?, ?, ?)', [seq, hash, signedAt.replace('T', ' ').replace('Z', ''), key.id, sign(key, seq, hash)]);
  }

  /** Entries in order, after `after` (a seq), at most `limit` (for `audit show` and export; all by default). */
  async entries(after = 0, limit = Number.MAX_SAFE_INTEGER): Promise<LedgerEntry[]> {
    const [rows] = await this.pool.query("SELECT seq, DATE_FORMAT(at, '%Y-%m-%dT%H:%i:%s.%fZ') AS at, actor, role, action, subject, details, prev_hash AS prevHash, hash FROM audit_ledger WHERE seq > ? ORDER BY seq LIMIT ?", [after, limit]);
    return (rows as Array<Record<string, unknown>>).map((r) => ({ ...(r as unknown as LedgerEntry), seq: Number(r.seq), details: JSON.parse(r.details as string) as Record<string, unknown> }));
  }

  /** Checks the whole chain and the signed checkpoints; an empty list means intact. */
  async verify(): Promise<{ entries: number; problems: LedgerProblem[] }> {
    const entries = await this.entries();
    const problems: LedgerProblem[] = [];
    let prevHash = GENESIS;
    let expectedSeq = 1;
    for (const e of entries) {
      if (e.seq !== expectedSeq) {
        problems.push({ seq: expectedSeq, kind: 'missing', message: `entries ${expectedSeq}..${e.seq - 1} are missing` });
      }
      if (e.prevHash !== prevHash) {
        problems.push({ seq: e.seq, kind: e.seq !== expectedSeq ? 'missing' : 'reordered', message: `entry ${e.seq} does not follow the entry before it (previous hash differs)` });
      }
      if (entryHash(e.prevHash, e) !== e.hash) {
        problems.push({ seq: e.seq, kind: 'modified', message: `entry ${e.seq} was changed after it was written (its hash does not match its content)` });
      }
      prevHash = e.hash;
      expectedSeq = e.seq + 1;
    }
    const bySeq = new Map(entries.map((e) => [e.seq, e]));
    const [rows] = await this.pool.query('SELECT seq, hash, key_id AS keyId, signature FROM audit_checkpoints ORDER BY seq');
    for (const c of rows as Array<{ seq: number; hash: string; keyId: string; signature: string }>) {
      const seq = Number(c.seq);
      let key: DataKey;
      try {
        key = this.keys.keyById(c.keyId);
      } catch {
        problems.push({ seq, kind: 'checkpoint-forged', message: `checkpoint at ${seq} is signed with unknown key ${c.keyId}` });
        continue;
      }
      if (!safeEqual(sign(key, seq, c.hash), c.signature)) {
        problems.push({ seq, kind: 'checkpoint-forged', message: `checkpoint at ${seq} has an invalid signature` });
        continue;
      }
      const entry = bySeq.get(seq);
      if (!entry) problems.push({ seq, kind: 'truncated', message: `the signed checkpoint at ${seq} names an entry the ledger no longer has` });
      else if (entry.hash !== c.hash) problems.push({ seq, kind: 'modified', message: `entry ${seq} differs from the signed checkpoint of the chain head` });
    }
    return { entries: entries.length, problems };
  }
}

function sign(key: DataKey, seq: number, hash: string): string {
  return createHmac('sha256', key.material).update(`cityshare-audit:${seq}:${hash}`).digest('hex');
}

function safeEqual(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}
