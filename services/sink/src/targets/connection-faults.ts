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
  constructor(
    private readonly logger: Logger,
    /** The target as the message names it, without credentials. */
    private readonly target: string,
    /** Strips credentials from a driver's message. */
    private readonly clean: (message: string) => string = (m) => m,
    /** Shared by the targets of the runs the runtime restarts, so one outage is one line however many runs it spans. */
    private readonly outage: TargetOutage = { down: false },
  ) {}

  readonly listener = (err: Error): void => {
    if (this.outage.down) return;
    this.outage.down = true;
    const coded = new CdcError('TARGET_UNREACHABLE', `connection to ${this.target} lost: ${this.clean(err.message)}`);
    this.logger.warn({ code: coded.code, action: coded.action }, coded.message);
  };

  recovered(): void {
    this.outage.down = false;
  }
}

/** Whether a department's target is known to be away (reported, not yet answering again). */
export interface TargetOutage {
  down: boolean;
}

/** Hears errors of a pg pool's idle clients and of those checked out (which the pool leaves unheard). */
export function hearPoolErrors(pool: pg.Pool, faults: ConnectionFaults): void {
  pool.on('error', faults.listener);
  pool.on('connect', (client) => client.on('error', faults.listener));
}
