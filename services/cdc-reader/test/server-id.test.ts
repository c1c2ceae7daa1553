import { describe, expect, it } from 'vitest';
import { classifyBinlogError } from '../src/binlog-listener.js';
import { replicaServerId } from '../src/reader.js';

describe('replica server ids', () => {
  it('picks a random id of its own per start when none is set, never the source\'s', () => {
    const ids = new Set(Array.from({ length: 200 }, () => replicaServerId(undefined, 1)));
    expect(ids.size).toBeGreaterThan(190);
    for (const id of ids) {
      expect(id).toBeGreaterThanOrEqual(2 ** 30);
      expect(id).toBeLessThan(2 ** 31);
    }
    expect(replicaServerId(5101, 1)).toBe(5101);
    expect(() => replicaServerId(1, 1)).toThrow(/is the source's own server_id/);
  });

  it('reads a replica id already in use as SERVER_ID_CONFLICT (retried), not as a purged binlog or an unreachable source', () => {
    const kicked = Object.assign(new Error('A slave with the same server_uuid/server_id as this slave has connected to the master; the first event \'mariadb-bin.000003\' at 4, the last event read from \'mariadb-bin.000003\' at 1234'), { errno: 1236 });
    expect(classifyBinlogError(kicked)).toMatchObject({ code: 'SERVER_ID_CONFLICT', retriable: true });
    // MariaDB 10.11 refuses the newer connection instead, with its own error number.
    const refused = Object.assign(new Error('A slave with the same server_uuid/server_id is already connected'), { errno: 4052 });
    expect(classifyBinlogError(refused)).toMatchObject({ code: 'SERVER_ID_CONFLICT', retriable: true });
    const purged = Object.assign(new Error('Could not find first log file name in binary log index file'), { errno: 1236 });
    expect(classifyBinlogError(purged)).toMatchObject({ code: 'BINLOG_PURGED' });
  });
});
