import { describe, expect, it, vi } from 'vitest';
import type { Logger } from '@cityshare/shared';
import { ConnectionFaults } from '../src/targets/connection-faults.js';

describe('ConnectionFaults', () => {
  const logger = () => {
    const warn = vi.fn();
    return { warn, logger: { warn } as unknown as Logger };
  };

  it('reports one outage once, across the targets of restarted runs, and again after a recovery', () => {
    const { warn, logger: log } = logger();
    const outage = { down: false };
    const first = new ConnectionFaults(log, 'PostgreSQL target postgres://u@h:5432/db', (m) => m.replace('s3cret', '***'), outage);
    first.listener(new Error('Connection terminated unexpectedly s3cret'));
    first.listener(new Error('connect ECONNREFUSED'));
    // The runtime started the run again: a new target, the same outage.
    const second = new ConnectionFaults(log, 'PostgreSQL target postgres://u@h:5432/db', (m) => m, outage);
    second.listener(new Error('connect ECONNREFUSED'));
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]).toEqual([
      { code: 'TARGET_UNREACHABLE', action: expect.any(String) },
      'connection to PostgreSQL target postgres://u@h:5432/db lost: Connection terminated unexpectedly ***',
    ]);
    second.recovered();
    second.listener(new Error('Connection terminated unexpectedly'));
    expect(warn).toHaveBeenCalledTimes(2);
  });
});
