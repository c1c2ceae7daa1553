import { CdcError } from '../errors.js';
import type { Logger } from '../logger.js';

/** Without an answer from the brokers for this long, a service says Kafka is unreachable. */
export const KAFKA_SILENCE_LIMIT_MS = 15_000;

/**
 * Turns "how long have the brokers been silent" into a state: lost after
 * KAFKA_SILENCE_LIMIT_MS, logged once as KAFKA_UNREACHABLE when it is lost and once when it
 * is back (kafkajs keeps retrying by itself meanwhile), told to `onChange` (the runtime's
 * `cityshare_dependency_up{dependency="kafka"}`), and answered by `check()` for /readyz.
 */
export class ContactWatch {
  /** Unknown until the first poll, which reports the state it finds (a new run's gauge starts right). */
  private lost: boolean | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: {
    silentMs: () => number;
    what: string;
    brokers: string[];
    logger: Logger;
    onChange?: (up: boolean) => void;
    limitMs?: number;
    /** What else may explain the silence (a batch whose work has not ended), appended to the log line and to check(); '' if nothing. */
    detail?: () => string;
  }) {
    this.timer = setInterval(() => this.poll(), 1_000);
    this.timer.unref();
  }

  private silentTooLong(silent: number): boolean {
    return silent > (this.options.limitMs ?? KAFKA_SILENCE_LIMIT_MS);
  }

  private poll(): void {
    const silent = this.options.silentMs();
    const lost = this.silentTooLong(silent);
    if (lost === this.lost) return;
    const first = this.lost === undefined;
    this.lost = lost;
    if (first && !lost) {
      this.options.onChange?.(true);
      return;
    }
    if (lost) {
      const err = new CdcError('KAFKA_UNREACHABLE', `${this.options.what}: no answer from the Kafka brokers (${this.options.brokers.join(',')}) for ${Math.round(silent / 1000)} s${this.detail()}`);
      this.options.logger.error({ code: err.code, action: err.action }, `${err.message}; still retrying`);
    } else {
      this.options.logger.info({ dependency: 'kafka' }, `${this.options.what}: the Kafka brokers answer again`);
    }
    this.options.onChange?.(!lost);
  }

  /** true, or for how long the brokers have not answered. */
  check(): true | string {
    const silent = this.options.silentMs();
    return this.silentTooLong(silent) ? `no answer from the Kafka brokers for ${Math.round(silent / 1000)} s (KAFKA_UNREACHABLE)${this.detail()}` : true;
  }

  private detail(): string {
    const detail = this.options.detail?.() ?? '';
    return detail ? `; ${detail}` : '';
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
