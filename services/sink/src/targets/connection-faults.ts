import type pg from 'pg';
import { CdcError, type Logger } from '@cityshare/shared';

/**
 * The 'error' listener of a target's driver clients (pools and their connections, AMQP
 * connections and channels, BullMQ queues and workers). A driver emits 'error' when a
 * connection fails outside a call it can reject (idle, or between two replies); unheard,
 * Node ends the process. Here it is one coded TARGET_UNREACHABLE line per outage, not one
 * per client or per try, until `recovered()` after the next success. The delivery that needed
 * the connection fails by itself with its coded error; the sink hands that to the service
 * runtime, which retries with backoff from the committed offsets (share-consumer.ts).
 */
export class ConnectionFaults {
  private down = false;

  constructor(
    private readonly logger: Logger,
    /** The target as the message names it, without credentials. */
    private readonly target: string,
    /** Strips credentials from a driver's message. */
    private readonly clean: (message: string) => string = (m) => m,
  ) {}

  readonly listener = (err: Error): void => {
    if (this.down) return;
    this.down = true;
    const coded = new CdcError('TARGET_UNREACHABLE', `connection to ${this.target} lost: ${this.clean(err.message)}`);
    this.logger.warn({ code: coded.code, action: coded.action }, coded.message);
  };

  recovered(): void {
    this.down = false;
  }
}

/** Hears errors of a pg pool's idle clients and of those checked out (which the pool leaves unheard). */
export function hearPoolErrors(pool: pg.Pool, faults: ConnectionFaults): void {
  pool.on('error', faults.listener);
  pool.on('connect', (client) => client.on('error', faults.listener));
}
