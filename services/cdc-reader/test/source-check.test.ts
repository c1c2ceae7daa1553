import { describe, expect, it } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { binlogEnd } from '../src/source-check.js';

/** A connection that answers the binlog status statements a given server knows (the rest are syntax errors, errno 1064). */
function server(knows: string[]) {
  const asked: string[] = [];
  const conn = {
    query: async (sql: string) => {
      asked.push(sql);
      if (!knows.includes(sql)) throw Object.assign(new Error(`You have an error in your SQL syntax near '${sql}'`), { errno: 1064 });
      return [[{ File: 'binlog.000007', Position: '1234' }], []];
    },
  } as unknown as Connection;
  return { conn, asked };
}

describe('binlogEnd', () => {
  it('uses SHOW MASTER STATUS where it exists (MariaDB, MySQL before 8.4)', async () => {
    const { conn, asked } = server(['SHOW MASTER STATUS']);
    expect(await binlogEnd(conn)).toEqual({ file: 'binlog.000007', pos: 1234 });
    expect(asked).toEqual(['SHOW MASTER STATUS']);
  });

  it('falls back to SHOW BINARY LOG STATUS (MySQL 8.4) and remembers it for the connection', async () => {
    const { conn, asked } = server(['SHOW BINARY LOG STATUS']);
    expect(await binlogEnd(conn)).toEqual({ file: 'binlog.000007', pos: 1234 });
    expect(await binlogEnd(conn)).toEqual({ file: 'binlog.000007', pos: 1234 });
    expect(asked).toEqual(['SHOW MASTER STATUS', 'SHOW BINARY LOG STATUS', 'SHOW BINARY LOG STATUS']);
  });

  it('passes on any other error, such as a missing privilege', async () => {
    const conn = { query: async () => Promise.reject(Object.assign(new Error('Access denied; you need the BINLOG MONITOR privilege'), { errno: 1227 })) } as unknown as Connection;
    await expect(binlogEnd(conn)).rejects.toThrow(/BINLOG MONITOR/);
  });
});
