import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { Logger } from '@cityshare/shared';

// Extend or release only while we still own the lease (compare-and-set in one step).
const RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/**
 * One active reader per source: the active instance holds a lease in Redis and renews
 * it; a standby polls until the lease expires and takes over. An instance that cannot
 * prove it still holds the lease before it would expire stops at once, so two readers
 * never stream the same source.
 */
export class LeaderLease {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly redis: Redis;
  private timer: NodeJS.Timeout | undefined;
  private renewedAt = 0;
  private stopped = false;

  constructor(
    url: string,
    private readonly key: string,
    private readonly ttlMs: number,
    private readonly logger: Logger,
  ) {
    this.redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
    this.redis.on('error', (err) => logger.warn({ err: err.message }, 'lease store error'));
  }

  /** Resolves once this instance holds the lease. */
  async acquire(): Promise<void> {
    await this.redis.connect();
    for (;;) {
      // Only a shutdown gets here: the service is stopping, so nobody reads this error.
      if (this.stopped) throw new Error('stopped while waiting for the lease');
      const ok = await this.redis.set(this.key, this.owner, 'PX', this.ttlMs, 'NX').catch(() => null);
      if (ok === 'OK') {
        this.renewedAt = Date.now();
        this.logger.info({ key: this.key, owner: this.owner }, 'lease acquired: active');
        return;
      }
      await new Promise((r) => setTimeout(r, Math.max(100, this.ttlMs / 5)));
    }
  }

  /** Keeps the lease; calls onLost once when it is gone or cannot be confirmed in time. */
  keep(onLost: (reason: string) => void): void {
    let lost = false;
    const lose = (reason: string) => {
      if (lost) return;
      lost = true;
      clearInterval(this.timer);
      onLost(reason);
    };
    this.timer = setInterval(() => {
      if (Date.now() - this.renewedAt > this.ttlMs * 0.8) return lose('lease could not be renewed in time');
      this.redis.eval(RENEW, 1, this.key, this.owner, String(this.ttlMs)).then(
        (res) => {
          if (Number(res) === 1) this.renewedAt = Date.now();
          else lose('lease taken by another instance');
        },
        () => undefined,
      );
    }, Math.max(50, this.ttlMs / 4));
  }

  async release(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.redis.eval(RELEASE, 1, this.key, this.owner).catch(() => undefined);
    this.redis.disconnect();
  }
}
