import { createHmac } from 'node:crypto';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { CdcError, redactUrl, redisTlsOptions, withoutSecrets, type Logger } from '@cityshare/shared';
import { changeJson, type ApplyResult, type ChangeJson, type RowChange, type Target, type TargetTable } from './target.js';

export interface WebhookTargetOptions {
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
  onRetry?: () => void;
  onDeadLetter?: () => void;
}

/** What the endpoint receives: one table's changes, in source order. */
export interface WebhookBatch {
  department: string;
  table: string;
  changes: ChangeJson[];
}

/** Signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as Stripe-style receivers check it. */
export function signWebhook(secret: Buffer, body: string, t = Math.floor(Date.now() / 1000)): string {
  const signer = webhookSigner(secret, t);
  signer.update(body);
  return signer.header();
}

/** The same signature over a body fed in pieces (a streamed export file). */
export function webhookSigner(secret: Buffer, t = Math.floor(Date.now() / 1000)) {
  const mac = createHmac('sha256', secret).update(`${t}.`);
  return { update: (piece: string | Buffer) => void mac.update(piece), header: () => `t=${t},v1=${mac.digest('hex')}` };
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
 */
export class WebhookTarget implements Target {
  readonly kind = 'http';
  private queue: Queue | undefined;
  private worker: Worker | undefined;

  constructor(private readonly o: WebhookTargetOptions, private readonly logger: Logger) {}

  async connect(): Promise<void> {
    const connection = { url: this.o.redisUrl, maxRetriesPerRequest: null, ...redisTlsOptions(this.o.redisTls, 'redisTls') };
    this.queue = new Queue(this.o.queueName, { connection });
    await this.queue.waitUntilReady().catch((cause: Error) => {
      throw new CdcError('TARGET_UNREACHABLE', `Redis for the webhook queue is not reachable at ${redactUrl(this.o.redisUrl)}: ${withoutSecrets(cause.message, { urls: [this.o.redisUrl] })}`, { cause });
    });
    this.worker = new Worker(this.o.queueName, (job: Job<WebhookBatch>) => this.post(job), { connection, concurrency: 1 });
    this.worker.on('failed', (job, err) => {
      this.o.onDeadLetter?.();
      this.logger.error({ job: job?.id, table: job?.data.table, versions: [job?.data.changes[0]?.version, job?.data.changes.at(-1)?.version], reason: err.message }, 'webhook batch moved to the dead-letter queue');
    });
  }

  async ensureTable(_table: TargetTable): Promise<void> {}

  async apply(table: TargetTable, changes: RowChange[]): Promise<ApplyResult> {
    const batch: WebhookBatch = {
      department: this.o.department,
      table: table.name,
      changes: changes.map(changeJson),
    };
    try {
      await this.queue!.add('batch', batch, { removeOnComplete: 1000, removeOnFail: false });
    } catch (cause) {
      throw new CdcError('TARGET_UNREACHABLE', `queueing a webhook batch failed: ${(cause as Error).message}`, { cause });
    }
    return { applied: changes.length, stale: 0 };
  }

  /** Posts one batch until the endpoint takes it, or gives up (the job fails: dead-letter queue). */
  private async post(job: Job<WebhookBatch>): Promise<void> {
    const body = JSON.stringify(job.data);
    for (let attempt = 1; ; attempt++) {
      let retryAfterMs: number | undefined;
      let problem: string;
      try {
        const res = await fetch(this.o.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-cityshare-signature': signWebhook(this.o.secret, body), 'x-cityshare-delivery': String(job.id) },
          body,
          signal: AbortSignal.timeout(this.o.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        problem = `HTTP ${res.status}`;
        if (res.status === 429) retryAfterMs = retryAfter(res.headers.get('retry-after'));
        else if (res.status >= 400 && res.status < 500 && res.status !== 408) throw new UnrecoverableError(`${problem}: the endpoint refused the batch`);
      } catch (err) {
        if (err instanceof UnrecoverableError) throw err;
        problem = (err as Error).name === 'TimeoutError' ? `no answer within ${this.o.timeoutMs} ms` : (err as Error).message;
      }
      if (attempt >= this.o.maxAttempts) throw new UnrecoverableError(`gave up after ${attempt} tries: ${problem}`);
      const backoff = Math.min(60_000, this.o.backoffMs * 2 ** (attempt - 1));
      const wait = retryAfterMs ?? Math.round(backoff / 2 + Math.random() * (backoff / 2));
      this.o.onRetry?.();
      this.logger.warn({ job: job.id, table: job.data.table, attempt, problem, waitMs: wait }, 'webhook delivery failed; retrying');
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue?.close();
  }
}

/** Retry-After in seconds or as an HTTP date, capped at 5 minutes. */
function retryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const ms = /^\d+$/.test(header) ? Number(header) * 1000 : Date.parse(header) - Date.now();
  return Number.isFinite(ms) ? Math.min(300_000, Math.max(0, ms)) : undefined;
}
