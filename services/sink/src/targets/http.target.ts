import { setTimeout as sleep } from 'node:timers/promises';
import type { Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { CdcError, keyNames, keysOfList, queues, redactUrl, redisTlsOptions, secretSetting, withoutSecrets, type DepartmentConfig, type KeyProvider, type Logger } from '@cityshare/shared';
import { changeJson } from './change-json.js';
import { ConnectionFaults, type TargetOutage } from './connection-faults.js';
import type { ApplyResult, RowChange, Target, TargetTable } from './target.js';
import { defineTarget } from './target-definition.js';
import { redisTls, redisTlsNeedsRediss } from './target-settings.js';
import { signWebhook } from './webhook-signature.js';
import { grantsInForce, isInForce, openBatch, purgeRevoked, retentionOptions, sealBatch, type QueuedBatch, type WebhookBatch } from './webhook-queue.js';

/** Longest a command of the queue's Redis client waits for its answer. */
const REDIS_COMMAND_TIMEOUT_MS = 5_000;

/** How many finished webhook batches Redis keeps, and for how long: whichever limit is reached first. */
const kept = (what: string, ageSeconds: number, count: number) => z.strictObject({
  ageSeconds: z.number().int().min(1).default(ageSeconds).describe(`${what}: kept at most this many seconds`),
  count: z.number().int().min(0).default(count).describe(`${what}: at most this many kept`),
}).prefault({});

/** The settings of kind `http`. */
const config = z.strictObject({
  kind: z.literal('http'),
  url: z.string().url().describe("the department's endpoint: POSTs of JSON batches, signed in x-cityshare-signature with the keyring key webhook:<department>").meta(secretSetting),
  redisUrl: z.string().default('redis://127.0.0.1:6379').describe('Redis holding the BullMQ queue of batches not yet taken by the endpoint: redis:// or rediss:// (TLS), with a password as rediss://:password@host:6380').meta(secretSetting),
  redisTls,
  maxAttempts: z.number().int().min(1).default(8).describe('tries per batch before it goes to the dead-letter queue'),
  timeoutMs: z.number().int().min(100).default(10_000).describe('time the endpoint has to answer'),
  backoffMs: z.number().int().min(10).default(1_000).describe('first retry delay; doubles per try with jitter, at most 60 s; a 429 waits its Retry-After'),
  retention: z.strictObject({
    completed: kept('batches the endpoint took', 3_600, 1_000),
    failed: kept('dead-lettered batches (what `cdc webhook-replay` can send again)', 7 * 86_400, 10_000),
  }).prefault({}).describe('how long Redis keeps finished batches (sealed); BullMQ trims them when a batch of the queue finishes'),
}).superRefine(redisTlsNeedsRediss);

export type HttpTargetConfig = z.output<typeof config>;

/**
 * kind `http`: the department's HTTP endpoint, which receives the changes as signed webhooks
 * (POSTs of JSON batches) through a BullMQ queue in Redis.
 */
export const httpDefinition = defineTarget({
  config,
  capabilities: { delivery: 'stream', signs: () => true },
  tlsFiles: (t) => [{ at: 'redisTls', files: t.redisTls }],
  create: (t, ctx) => {
    const { name } = ctx.department;
    return new HttpTarget({
      department: name,
      url: t.url,
      secret: ctx.keys.activeKey(keyNames.webhook(name)).material,
      redisUrl: t.redisUrl,
      redisTls: t.redisTls,
      queueName: queues.webhook(ctx.prefix, name),
      maxAttempts: t.maxAttempts,
      timeoutMs: t.timeoutMs,
      backoffMs: t.backoffMs,
      keys: keysOfList(ctx.keys, keyNames.webhook(name)),
      grants: grantsInForce(ctx.department),
      retention: t.retention,
      onRetry: () => ctx.metrics.retries.inc(ctx.labels),
      onDeadLetter: () => ctx.metrics.dlq.inc(ctx.labels),
      onPurged: (batches) => ctx.metrics.webhookPurged.inc(ctx.labels, batches),
    }, ctx.logger, ctx.outage);
  },
});

export interface HttpTargetOptions {
  department: string;
  /** The department's endpoint; receives POSTs of JSON batches. */
  url: string;
  /** HMAC-SHA256 key the department verifies signatures with (keyring `webhook:<department>`). */
  secret: Buffer;
  /** Redis of the BullMQ queue that holds batches until the endpoint took them. */
  redisUrl: string;
  /** CA of a rediss:// Redis not signed by a system CA. */
  redisTls?: { ca: string } | undefined;
  /** Queue name; one per department and pipeline. */
  queueName: string;
  /** Tries per batch before it goes to the dead-letter queue (the queue's failed set). */
  maxAttempts: number;
  timeoutMs: number;
  /** First retry delay; it doubles per try (with jitter), up to 60 s. */
  backoffMs: number;
  /** Keys of the list `webhook:<department>`: queued batches are sealed with a subkey of them. */
  keys: KeyProvider;
  /** The department's grants (`source.db.table`) in force: batches of any other are neither queued, kept nor sent. */
  grants: ReadonlySet<string>;
  /** How long Redis keeps batches the endpoint took and dead-lettered ones. */
  retention: HttpTargetConfig['retention'];
  onRetry?: () => void;
  onDeadLetter?: () => void;
  /** Batches dropped because their grant is no longer in force (removed from Redis or never queued). */
  onPurged?: (batches: number) => void;
}

/**
 * A department's HTTP endpoint. Batches go first into a BullMQ queue in Redis (the sink
 * commits its offsets once a batch is queued there); one worker per department posts
 * them in order, signed, with a timeout. A failing endpoint is retried with exponential
 * backoff and jitter while the batches behind wait (order per key holds); `429` waits as
 * long as its Retry-After says. After `maxAttempts`, or at once for a 4xx that is not 408
 * or 429, the batch moves to the queue's failed set — the department's dead-letter queue —
 * and the next one goes; `npm run cdc -- webhook-replay <department>` sends them again.
 * Delivery is at least once: each change carries its `version`, so the receiver keeps the
 * newest per key, as the database targets do.
 *
 * Redis holds a batch sealed (webhook-queue.ts), with the grant it was shared under in
 * clear. When that grant is no longer in force — at start, or when the pipeline file
 * revokes it — its waiting, delayed and dead-lettered batches are removed, the one being
 * retried is given up and removed, and none of them is sent (GRANT_REVOKED).
 */
export class HttpTarget implements Target {
  private queue: Queue | undefined;
  /** The queue's own Redis client: ours, so its listener outlives a queue closed while Redis is away. */
  private redis: Redis | undefined;
  private worker: Worker | undefined;
  /** BullMQ's error that ends a batch's tries at once (BullMQ is loaded by connect(): see target-definition.ts). */
  private giveUp: typeof UnrecoverableError | undefined;
  private inForce: ReadonlySet<string>;
  /** Aborted when grants change, so a batch waiting for its next try is looked at again at once. */
  private grantsChange = new AbortController();
  /** Jobs the worker gave up because their grant was revoked: removed once BullMQ has released them. */
  private readonly refused = new Set<string>();
  private readonly faults: ConnectionFaults;

  constructor(private readonly options: HttpTargetOptions, private readonly logger: Logger, outage?: TargetOutage) {
    this.inForce = options.grants;
    this.faults = new ConnectionFaults(logger, `Redis of the webhook queue at ${redactUrl(options.redisUrl)}`, (m) => withoutSecrets(m, { urls: [options.redisUrl] }), outage);
  }

  async connect(): Promise<void> {
    const [{ Queue, Worker, UnrecoverableError }, { Redis }] = await Promise.all([import('bullmq'), import('ioredis')]);
    this.giveUp = UnrecoverableError;
    const connection = { url: this.options.redisUrl, maxRetriesPerRequest: null, ...redisTlsOptions(this.options.redisTls, 'redisTls') };
    // Queueing fails at once while Redis is away (no offline queue), so the batch is retried, not held; a command
    // in flight when the connection drops would wait for it forever (no retry limit), so none waits longer than
    // REDIS_COMMAND_TIMEOUT_MS: the batch then fails as TARGET_UNREACHABLE instead of holding the sink's consumer.
    this.redis = new Redis(this.options.redisUrl, { maxRetriesPerRequest: null, enableOfflineQueue: false, commandTimeout: REDIS_COMMAND_TIMEOUT_MS, ...redisTlsOptions(this.options.redisTls, 'redisTls') });
    this.redis.on('error', this.faults.listener);
    this.queue = new Queue(this.options.queueName, { connection: this.redis });
    this.queue.on('error', this.faults.listener);
    await this.queue.waitUntilReady().catch((cause: Error) => {
      throw new CdcError('TARGET_UNREACHABLE', `Redis for the webhook queue is not reachable at ${redactUrl(this.options.redisUrl)}: ${withoutSecrets(cause.message, { urls: [this.options.redisUrl] })}`, { cause });
    });
    // Batches of a grant revoked while the sink was down go before the worker could send them.
    await this.purge();
    this.worker = new Worker(this.options.queueName, (job: Job<QueuedBatch>) => this.post(job), { connection, concurrency: 1 });
    // The worker reconnects by itself; batches wait in Redis meanwhile.
    this.worker.on('error', this.faults.listener);
    this.worker.on('failed', (job, err) => {
      if (job?.id && this.refused.delete(job.id)) {
        void job.remove().then(() => this.revoked(job.data.grant, 1, 'a batch given up while it was retried; removed'), (cause: Error) => this.logger.warn({ job: job.id, err: cause.message }, 'removing a webhook batch of a revoked grant failed; the next start removes it'));
        return;
      }
      this.options.onDeadLetter?.();
      this.logger.error({ job: job?.id, table: job?.data.table, grant: job?.data.grant, reason: err.message }, 'webhook batch moved to the dead-letter queue');
    });
  }

  async grantsChanged(department: DepartmentConfig): Promise<void> {
    this.inForce = grantsInForce(department);
    try {
      await this.purge();
    } finally {
      // After the purge: the worker, woken, would otherwise take up the next revoked batch only to refuse it.
      this.grantsChange.abort();
      this.grantsChange = new AbortController();
    }
  }

  /** Removes the batches of grants not in force from every state they can wait in. */
  private async purge(): Promise<void> {
    for (const [grant, batches] of await purgeRevoked(this.queue!, this.inForce)) this.revoked(grant, batches, 'queued or dead-lettered batches removed from Redis');
  }

  /** Logs and counts batches of a grant no longer in force that are not sent. */
  private revoked(grant: string | undefined, batches: number, what: string): void {
    const err = new CdcError('GRANT_REVOKED', `webhook batches of ${grant ?? 'a batch without a grant'} are not sent: ${what}`);
    this.options.onPurged?.(batches);
    this.logger.error({ code: err.code, action: err.action, grant, batches }, err.message);
  }

  async ensureTable(_table: TargetTable): Promise<void> {}

  async apply(table: TargetTable, changes: RowChange[]): Promise<ApplyResult> {
    if (table.grant === undefined || !this.inForce.has(table.grant)) {
      // Read from the share topic just before the revoke reached this sink.
      this.revoked(table.grant ?? table.name, 1, 'not queued');
      return { applied: 0, stale: 0 };
    }
    const batch: WebhookBatch = {
      department: this.options.department,
      table: table.name,
      changes: changes.map(changeJson),
    };
    try {
      await this.queue!.add('batch', sealBatch(this.options.keys, table.grant, batch), retentionOptions(this.options.retention));
      this.faults.recovered();
    } catch (cause) {
      throw new CdcError('TARGET_UNREACHABLE', `queueing a webhook batch failed: ${(cause as Error).message}`, { cause });
    }
    return { applied: changes.length, stale: 0 };
  }

  /** Posts one batch until the endpoint takes it, or gives up (the job fails: dead-letter queue). */
  private async post(job: Job<QueuedBatch>): Promise<void> {
    const GiveUp = this.giveUp!;
    this.refuseUnlessInForce(job);
    const body = JSON.stringify(openBatch(this.options.keys, this.options.department, job.data));
    for (let attempt = 1; ; attempt++) {
      let retryAfterMs: number | undefined;
      let problem: string;
      try {
        const res = await fetch(this.options.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-cityshare-signature': signWebhook(this.options.secret, body), 'x-cityshare-delivery': String(job.id) },
          body,
          signal: AbortSignal.timeout(this.options.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        problem = `HTTP ${res.status}`;
        if (res.status === 429) retryAfterMs = retryAfter(res.headers.get('retry-after'));
        else if (res.status >= 400 && res.status < 500 && res.status !== 408) throw new GiveUp(`${problem}: the endpoint refused the batch`);
      } catch (err) {
        if (err instanceof GiveUp) throw err;
        problem = (err as Error).name === 'TimeoutError' ? `no answer within ${this.options.timeoutMs} ms` : (err as Error).message;
      }
      if (attempt >= this.options.maxAttempts) throw new GiveUp(`gave up after ${attempt} tries: ${problem}`);
      const backoff = Math.min(60_000, this.options.backoffMs * 2 ** (attempt - 1));
      const wait = retryAfterMs ?? Math.round(backoff / 2 + Math.random() * (backoff / 2));
      this.options.onRetry?.();
      this.logger.warn({ job: job.id, table: job.data.table, attempt, problem, waitMs: wait }, 'webhook delivery failed; retrying');
      // Woken early by a change of grants: given up if it revoked this batch's, else the wait goes on.
      for (const until = Date.now() + wait; Date.now() < until; ) {
        await sleep(until - Date.now(), undefined, { signal: this.grantsChange.signal }).catch(() => undefined);
        this.refuseUnlessInForce(job);
      }
    }
  }

  /** A batch whose grant was revoked is given up before it is opened or tried again; the failed handler removes it. */
  private refuseUnlessInForce(job: Job<QueuedBatch>): void {
    if (isInForce(job.data, this.inForce)) return;
    this.refused.add(job.id!);
    throw new this.giveUp!(`the grant ${job.data.grant ?? '(none)'} is no longer in force`);
  }

  async close(): Promise<void> {
    // Forced: with Redis away, a graceful close would wait for it; an active batch is taken up again (at least once).
    await this.worker?.close(true);
    await this.queue?.close();
    this.redis?.disconnect();
  }
}

/** Retry-After in seconds or as an HTTP date, capped at 5 minutes. */
function retryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const ms = /^\d+$/.test(header) ? Number(header) * 1000 : Date.parse(header) - Date.now();
  return Number.isFinite(ms) ? Math.min(300_000, Math.max(0, ms)) : undefined;
}
