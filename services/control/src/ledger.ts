import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Pool, PoolConnection } from 'mysql2/promise';
import { canonicalJson, keyNames, subkey, type DataKey, type KeyProvider } from '@cityshare/shared';
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

/** Which entries to read (AuditLedger.page). */
export interface LedgerQuery {
  after?: number;
  before?: number;
  limit?: number;
  actor?: string;
  action?: string;
  /** Subjects starting with this text. */
  subject?: string;
  since?: Date;
  until?: Date;
}

export interface LedgerProblem {
  seq: number;
  kind: 'modified' | 'missing' | 'reordered' | 'truncated' | 'checkpoint-forged' | 'checkpoint-missing' | 'head-forged';
  message: string;
}

/** What a verification found: the entry count, the signed head (for an auditor to note down), and any problems. */
export interface LedgerVerification {
  entries: number;
  head: { seq: number; hash: string };
  /** Entries whose hashes this run recomputed: all of them in a full run, those after the last verified checkpoint otherwise. */
  rehashed: number;
  full: boolean;
  problems: LedgerProblem[];
}

/** A verification as the command line prints it: the head to note down when intact, else one line per problem. */
export function describeVerification(r: Pick<LedgerVerification, 'entries' | 'head' | 'problems'>): string {
  if (r.problems.length === 0) return `audit ledger intact: ${r.entries} entries, signed head ${r.head.seq} ${r.head.hash}\n`;
  return r.problems.map((p) => `entry ${p.seq}: ${p.kind}: ${p.message}\n`).join('');
}

export const GENESIS = '0'.repeat(64);

/** The hash of an entry: SHA-256 over the previous hash and the entry's canonical JSON. */
export function entryHash(prevHash: string, e: Omit<LedgerEntry, 'hash' | 'prevHash'>): string {
  const canonical = JSON.stringify([e.seq, e.at, e.actor, e.role, e.action, e.subject, canonicalJson(e.details)]);
  return createHash('sha256').update(`${prevHash}\n${canonical}`).digest('hex');
}

/**
 * Append-only, hash-chained audit ledger in the control-plane database. Each entry holds
 * the hash of the one before. Nothing in it rests on the database alone: every append signs
 * the new head (`audit_head`, HMAC-SHA256 under a subkey of the keyring's `audit` key, in the
 * append's transaction), and every `checkpointEvery`-th entry is signed for good into
 * `audit_checkpoints`. Whoever can write the database but does not hold the audit key can
 * neither recompute the chain (the head and the checkpoints would not verify), nor remove
 * checkpoints (each multiple of `checkpointEvery` must have one), nor cut the tail (the head
 * names the last entry). `verify` says which entry was modified, removed or reordered.
 */
export class AuditLedger {
  /** The last checkpoint a verification walked up to intact, and the longest ledger it saw: an incremental run starts there. */
  private verified = { seq: 0, hash: GENESIS, highest: 0 };

  constructor(
    private readonly pool: Pool,
    private readonly keys: KeyProvider,
    private readonly checkpointEvery = 100,
    private readonly pageSize = 5_000,
  ) {}

  /**
   * Appends one entry and signs the new head (serialised with other writers by a row lock
   * on the last entry). Given a connection inside a transaction (`within`), the entry
   * commits with the caller's change.
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
        seq, sqlTime(at), entry.actor, entry.role, entry.action, entry.subject, JSON.stringify(entry.details), prevHash, entry.hash,
      ]);
      await this.signHead(conn, seq, entry.hash);
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

  /**
   * Signs the head as it stands. Called once, when the migration that introduced the signed
   * head has just run on a ledger written before it: that start vouches for the entries
   * already there (a later start never re-signs what it finds).
   */
  async adoptUnsignedHead(): Promise<void> {
    await inTransaction(this.pool, async (conn) => {
      const [rows] = await conn.query('SELECT seq, hash FROM audit_ledger ORDER BY seq DESC LIMIT 1 FOR UPDATE');
      const head = (rows as Array<{ seq: number; hash: string }>)[0];
      if (head) await this.signHead(conn, Number(head.seq), head.hash);
    });
  }

  /**
   * A MAC under the audit key that vouches for `message` as approved for `purpose` (a grant's
   * spec digest, a settings change): kept in the ledger entry of the decision, checked
   * wherever the decision is acted on, so a decision made in the database is not one.
   */
  attest(purpose: string, message: string): Attestation {
    const key = this.keys.activeKey(keyNames.audit);
    return { keyId: key.id, mac: attestationMac(key, purpose, message) };
  }

  /** Whether `attestation` is a valid `attest(purpose, message)` under a key of the audit list. */
  attested(purpose: string, message: string, attestation: unknown): boolean {
    const a = attestation as Partial<Attestation> | undefined;
    if (typeof a?.keyId !== 'string' || typeof a.mac !== 'string') return false;
    try {
      return safeEqual(attestationMac(this.keys.keyOf(keyNames.audit, a.keyId), purpose, message), a.mac);
    } catch {
      return false;
    }
  }

  private async signHead(conn: Pick<Pool, 'query'>, seq: number, hash: string): Promise<void> {
    const key = this.keys.activeKey(keyNames.audit);
    await conn.query('REPLACE INTO audit_head VALUES (1, ?, ?, ?, ?, ?)', [seq, hash, key.id, sign(key, 'head', seq, hash), sqlTime(new Date().toISOString())]);
  }

  private async insertCheckpoint(conn: Pick<Pool, 'query'>, seq: number, hash: string): Promise<void> {
    const key = this.keys.activeKey(keyNames.audit);
    await conn.query("INSERT IGNORE INTO audit_checkpoints (seq, hash, signed_at, key_id, signature, scheme) VALUES (?, ?, ?, ?, ?, 'v2')", [seq, hash, sqlTime(new Date().toISOString()), key.id, sign(key, 'checkpoint', seq, hash)]);
  }

  /** Entries in order, after `after` (a seq), at most `limit` (for `audit show` and export; all by default). */
  entries(after = 0, limit = Number.MAX_SAFE_INTEGER): Promise<LedgerEntry[]> {
    return this.page({ after, limit });
  }

  /**
   * A page of entries for reading (the API, the console): oldest first after `after`, or
   * newest first before `before`; only those of `actor`, of `action`, whose subject starts
   * with `subject`, at or after `since` and before `until`.
   */
  async page(q: LedgerQuery): Promise<LedgerEntry[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (condition: string, value: unknown) => {
      where.push(condition);
      args.push(value);
    };
    add('seq > ?', q.after ?? 0);
    if (q.before !== undefined) add('seq < ?', q.before);
    if (q.actor !== undefined) add('actor = ?', q.actor);
    if (q.action !== undefined) add('action = ?', q.action);
    // A prefix: LIKE's own characters in it stand for themselves.
    if (q.subject !== undefined) add('subject LIKE ?', `${q.subject.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    if (q.since !== undefined) add('at >= ?', sqlTime(q.since.toISOString()));
    if (q.until !== undefined) add('at < ?', sqlTime(q.until.toISOString()));
    const order = q.before !== undefined ? 'DESC' : 'ASC';
    const [rows] = await this.pool.query(`SELECT seq, DATE_FORMAT(at, '%Y-%m-%dT%H:%i:%s.%fZ') AS at, actor, role, action, subject, details, prev_hash AS prevHash, hash FROM audit_ledger WHERE ${where.join(' AND ')} ORDER BY seq ${order} LIMIT ?`, [...args, q.limit ?? Number.MAX_SAFE_INTEGER]);
    return (rows as Array<Record<string, unknown>>).map((r) => ({ ...(r as unknown as LedgerEntry), seq: Number(r.seq), details: JSON.parse(r.details as string) as Record<string, unknown> }));
  }

  /**
   * Checks the ledger; no problems means intact. A full run recomputes every entry's hash,
   * page by page. An incremental run (`full: false`) recomputes only the entries after the
   * last checkpoint an earlier run of this object verified, and checks the rest cheaply:
   * every checkpoint's signature and the hash of the entry it names, that no checkpoint is
   * missing, that no entry is missing (count), the signed head, and that the ledger is not
   * shorter than it was. An old entry edited without touching its stored hash is found only
   * by a full run (the control service does one at start and hourly).
   */
  async verify(options: { full?: boolean } = {}): Promise<LedgerVerification> {
    const full = options.full ?? true;
    const problems: LedgerProblem[] = [];
    const from = full ? { seq: 0, hash: GENESIS } : this.verified;
    // The chain after `from`, page by page.
    let prevHash = from.hash;
    let expectedSeq = from.seq + 1;
    let rehashed = 0;
    let last = { seq: from.seq, hash: from.hash };
    for (;;) {
      const page = await this.entries(last.seq, this.pageSize);
      for (const e of page) {
        if (e.seq !== expectedSeq) problems.push({ seq: expectedSeq, kind: 'missing', message: `entries ${expectedSeq}..${e.seq - 1} are missing` });
        if (e.prevHash !== prevHash) problems.push({ seq: e.seq, kind: e.seq !== expectedSeq ? 'missing' : 'reordered', message: `entry ${e.seq} does not follow the entry before it (previous hash differs)` });
        if (entryHash(e.prevHash, e) !== e.hash) problems.push({ seq: e.seq, kind: 'modified', message: `entry ${e.seq} was changed after it was written (its hash does not match its content)` });
        prevHash = e.hash;
        expectedSeq = e.seq + 1;
        last = { seq: e.seq, hash: e.hash };
      }
      rehashed += page.length;
      if (page.length < this.pageSize) break;
    }
    const [[count]] = (await this.pool.query('SELECT COUNT(*) AS n, COALESCE(MAX(seq), 0) AS max FROM audit_ledger')) as unknown as [[{ n: number; max: number }]];
    const entries = Number(count.n);
    if (Number(count.max) < from.seq) {
      problems.push({ seq: from.seq, kind: 'truncated', message: `the ledger ends at ${Number(count.max)}, before the checkpoint at ${from.seq} an earlier verification found intact` });
      last = { seq: Number(count.max), hash: '' };
    } else if (!full && entries !== last.seq) {
      problems.push({ seq: from.seq, kind: 'missing', message: `the ledger holds ${entries} entries where its sequence says ${last.seq}: entries before ${from.seq} were removed; run a full verification to find them` });
    }
    if (last.seq < this.verified.highest) problems.push({ seq: this.verified.highest, kind: 'truncated', message: `the ledger ends at ${last.seq}, but an earlier verification saw ${this.verified.highest} entries` });
    problems.push(...(await this.checkCheckpoints(last.seq)), ...(await this.checkHead(last)));
    if (problems.length === 0) {
      const checkpoint = last.seq - (last.seq % this.checkpointEvery);
      const [rows] = await this.pool.query('SELECT hash FROM audit_ledger WHERE seq = ?', [checkpoint]);
      const hash = (rows as Array<{ hash: string }>)[0]?.hash;
      if (hash) this.verified = { seq: checkpoint, hash, highest: Math.max(this.verified.highest, last.seq) };
    }
    return { entries, head: last, rehashed, full, problems };
  }

  /** Every checkpoint signed with an audit key and naming the entry it signed; one at every multiple of `checkpointEvery` up to `lastSeq`. */
  private async checkCheckpoints(lastSeq: number): Promise<LedgerProblem[]> {
    const problems: LedgerProblem[] = [];
    const [rows] = await this.pool.query('SELECT c.seq, c.hash, c.key_id AS keyId, c.signature, c.scheme, l.hash AS entryHash FROM audit_checkpoints c LEFT JOIN audit_ledger l ON l.seq = c.seq ORDER BY c.seq');
    const signed = new Set<number>();
    for (const c of rows as Array<{ seq: number; hash: string; keyId: string; signature: string; scheme: string; entryHash: string | null }>) {
      const seq = Number(c.seq);
      const why = this.signatureProblem('checkpoint', seq, c.hash, c.keyId, c.signature, c.scheme);
      if (why) {
        problems.push({ seq, kind: 'checkpoint-forged', message: `checkpoint at ${seq} ${why}` });
        continue;
      }
      signed.add(seq);
      if (c.entryHash === null) problems.push({ seq, kind: 'truncated', message: `the signed checkpoint at ${seq} names an entry the ledger no longer has` });
      else if (c.entryHash !== c.hash) problems.push({ seq, kind: 'modified', message: `entry ${seq} differs from the signed checkpoint of the chain head` });
    }
    for (let seq = this.checkpointEvery; seq <= lastSeq; seq += this.checkpointEvery) {
      if (!signed.has(seq) && !problems.some((p) => p.seq === seq)) problems.push({ seq, kind: 'checkpoint-missing', message: `the signed checkpoint at ${seq} is missing: the chain up to it may have been rewritten` });
    }
    return problems;
  }

  /** The signed head names the last entry: nothing after it unsigned, nothing cut off. */
  private async checkHead(last: { seq: number; hash: string }): Promise<LedgerProblem[]> {
    const [rows] = await this.pool.query('SELECT seq, hash, key_id AS keyId, signature FROM audit_head WHERE id = 1');
    const head = (rows as Array<{ seq: number; hash: string; keyId: string; signature: string }>)[0];
    if (!head) return last.seq === 0 ? [] : [{ seq: last.seq, kind: 'head-forged', message: 'the signed head of the ledger is missing: the last entries cannot be vouched for' }];
    const seq = Number(head.seq);
    const why = this.signatureProblem('head', seq, head.hash, head.keyId, head.signature, 'v2');
    if (why) return [{ seq: last.seq, kind: 'head-forged', message: `the head of the ledger ${why}: entries after the last checkpoint may have been rewritten` }];
    if (seq > last.seq) return [{ seq, kind: 'truncated', message: `the signed head names entry ${seq}, but the ledger ends at ${last.seq}: its tail was cut off` }];
    if (seq < last.seq) return [{ seq: last.seq, kind: 'head-forged', message: `entries ${seq + 1}..${last.seq} were added after the signed head (not through the ledger)` }];
    if (head.hash !== last.hash) return [{ seq, kind: 'modified', message: `entry ${seq} differs from the signed head` }];
    return [];
  }

  private signatureProblem(what: 'head' | 'checkpoint', seq: number, hash: string, keyId: string, signature: string, scheme: string): string | undefined {
    let key: DataKey;
    try {
      key = this.keys.keyOf(keyNames.audit, keyId);
    } catch {
      return `is signed with ${keyId}, which is not a key of the audit list`;
    }
    const expected = scheme === 'v1' ? createHmac('sha256', key.material).update(`cityshare-audit:${seq}:${hash}`).digest('hex') : sign(key, what, seq, hash);
    return safeEqual(expected, signature) ? undefined : 'has an invalid signature';
  }
}

const SIGNING_LABEL = 'cityshare/audit-ledger/v2';

/** HMAC under the audit key's signing subkey; `what` keeps a head signature from passing for a checkpoint's. */
function sign(key: DataKey, what: 'head' | 'checkpoint', seq: number, hash: string): string {
  return createHmac('sha256', subkey(key, SIGNING_LABEL)).update(`cityshare-audit:${what}:${seq}:${hash}`).digest('hex');
}

export interface Attestation {
  keyId: string;
  mac: string;
}

function attestationMac(key: DataKey, purpose: string, message: string): string {
  return createHmac('sha256', subkey(key, 'cityshare/audit-attestation/v1')).update(`${purpose}\n${message}`).digest('hex');
}

function sqlTime(iso: string): string {
  return iso.replace('T', ' ').replace('Z', '');
}

function safeEqual(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}
