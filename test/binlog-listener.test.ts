import { randomBytes, randomInt } from 'node:crypto';
import { createConnection, type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, sourceConnectionOptions, type CdcError, type BinlogPosition, type SourceConfig } from '@cityshare/shared';
import { BinlogListener, type BinlogHandler, type RowsChange, type TransactionSummary } from '../services/cdc-reader/src/binlog-listener.js';
import { exactValueOptions } from '../services/cdc-reader/src/source-values.js';
import { binlogEnd } from '../services/cdc-reader/src/source-check.js';
import { pointOf } from '../services/cdc-reader/src/snapshot/watermark-window.js';
import { TableCatalog } from '../services/cdc-reader/src/table-catalog.js';
import { eventually } from '../scripts/support/eventually.js';
import { stack } from '../scripts/support/stack.js';

/**
 * The binlog listener against the stack's MariaDB, as the reader's account over TLS: what
 * reaches its handler for inserts, updates, deletes, DDL and transaction boundaries, in
 * order and with positions. The server is shared (other suites and runs write to it), so
 * only this suite's database is registered, and commits are told apart by their GTID.
 */

type Seen =
  | { type: 'rows'; change: RowsChange }
  | { type: 'commit'; position: BinlogPosition; summary: TransactionSummary }
  | { type: 'schema'; db: string; statement: string; position: BinlogPosition };

const db = `bl_${randomBytes(4).toString('hex')}`;
const source: SourceConfig = {
  name: 'listener_test',
  connection: { host: stack.source.host, port: stack.source.port, user: 'cdc_reader', password: 'cdc_reader', ssl: { ca: stack.sourceTlsCa, verifyIdentity: true } },
  tables: [{ name: `${db}.people`, columns: { id: 'public', name: 'personal', note: 'internal' }, appendOnly: false }],
};

const after = (a: BinlogPosition, b: { file: string; pos: number }) => pointOf(a) >= pointOf(b);

describe('BinlogListener against MariaDB', () => {
  let root: Connection;
  let listener: BinlogListener;
  let seen: Seen[] = [];
  const errors: Error[] = [];

  /** Runs statements on the root session and returns the GTID of the last transaction it committed. */
  async function commit(...statements: string[]): Promise<string> {
    for (const s of statements) await root.query(s);
    const [rows] = await root.query('SELECT @@last_gtid AS gtid');
    return (rows as Array<{ gtid: string }>)[0]!.gtid;
  }

  /**
   * What the handler got for the transaction `gtid`, in the order it got them: its row
   * changes (they carry its GTID), the schema change just before its commit (DDL is a
   * transaction of its own), and its commit.
   */
  async function transaction(gtid: string): Promise<Seen[]> {
    return eventually(async () => {
      const end = seen.findIndex((s) => s.type === 'commit' && s.summary.gtid === gtid);
      expect(end).toBeGreaterThanOrEqual(0);
      return seen.filter((s, i) => i === end || (i < end && s.type === 'rows' && s.change.gtid === gtid) || (i === end - 1 && s.type === 'schema'));
    }, 20_000, 50);
  }

  beforeAll(async () => {
    root = await createConnection({ ...stack.source, charset: 'utf8mb4', multipleStatements: true });
    await root.query(`CREATE DATABASE \`${db}\`; CREATE TABLE \`${db}\`.people (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, note TEXT); CREATE TABLE \`${db}\`.other (id INT PRIMARY KEY)`);
    await root.query(`USE \`${db}\``);
    const conn = await createConnection({ ...sourceConnectionOptions(source), ...exactValueOptions });
    const catalog = await TableCatalog.load(conn, source);
    const start = await binlogEnd(conn);
    await conn.end();
    const handler: BinlogHandler = {
      onRows: (change) => seen.push({ type: 'rows', change }),
      onCommit: (position, _tsMs, summary) => seen.push({ type: 'commit', position, summary }),
      onSchemaChange: (schemaDb, statement, position) => seen.push({ type: 'schema', db: schemaDb, statement, position }),
      onHeartbeat: () => undefined,
      onError: (err) => errors.push(err),
    };
    listener = new BinlogListener({ connection: sourceConnectionOptions(source), valueOptions: exactValueOptions, serverId: randomInt(0x40000000, 0x80000000), catalog, heartbeatSeconds: 0 }, handler, createLogger('test', 'silent'));
    await listener.start(start);
  });

  beforeEach(() => {
    seen = [];
  });

  afterAll(async () => {
    listener?.stop();
    await root?.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await root?.end();
    expect(errors).toEqual([]);
  });

  it('hands over the row changes of a transaction in order, then its commit with what it changed and where it ends', async () => {
    const gtid = await commit(
      'BEGIN',
      "INSERT INTO people VALUES (1, '张三', 'a'), (2, 'Łukasz 😀', NULL)",
      "UPDATE people SET note = 'b' WHERE id = 1",
      'DELETE FROM people WHERE id = 2',
      'INSERT INTO other VALUES (1)',
      'COMMIT',
    );
    const [status] = await root.query('SHOW MASTER STATUS');
    const end = (status as Array<{ File: string; Position: number }>)[0]!;
    const events = await transaction(gtid);
    expect(events.map((e) => (e.type === 'rows' ? e.change.kind : e.type))).toEqual(['insert', 'update', 'delete', 'commit']);
    const [insert, update, del] = events.map((e) => (e as { change: RowsChange }).change);
    expect(insert!.rows).toEqual([{ before: null, after: { id: 1, name: '张三', note: 'a' } }, { before: null, after: { id: 2, name: 'Łukasz 😀', note: null } }]);
    expect(update!.rows).toEqual([{ before: { id: 1, name: '张三', note: 'a' }, after: { id: 1, name: '张三', note: 'b' } }]);
    expect(del!.rows).toEqual([{ before: { id: 2, name: 'Łukasz 😀', note: null }, after: null }]);
    // Row changes before each event's first row, within the transaction.
    expect([insert!.txOffset, update!.txOffset, del!.txOffset]).toEqual([0, 2, 3]);
    expect(insert!.schema).toMatchObject({ db, table: 'people', primaryKey: ['id'] });
    expect(insert!.schema.columns.map((c) => [c.name, c.nullable])).toEqual([['id', false], ['name', false], ['note', true]]);
    // Positions: each event's end, increasing; the commit is where a restart resumes after it.
    const points = [insert!, update!, del!].map((c) => pointOf({ file: c.file, pos: c.eventPos }));
    expect(points).toEqual([...points].sort());
    const done = events.at(-1) as Extract<Seen, { type: 'commit' }>;
    expect(after(done.position, { file: del!.file, pos: del!.eventPos })).toBe(true);
    expect(after({ file: end.File, pos: end.Position }, done.position)).toBe(true);
    // The unregistered table's row is in the same transaction but never reaches the handler.
    expect(done.summary).toEqual({ gtid, events: 4, tables: { [`${db}.people`]: 4 } });
    expect(after(listener.safePosition()!, done.position)).toBe(true);
  });

  it('ends a transaction at each commit: offsets and counts start again', async () => {
    const first = await commit('BEGIN', "INSERT INTO people VALUES (10, 'a', NULL), (11, 'b', NULL), (12, 'c', NULL)", "INSERT INTO people VALUES (13, 'd', NULL)", 'COMMIT');
    const second = await commit("INSERT INTO people VALUES (14, 'e', NULL)");
    const unregistered = await commit('INSERT INTO other VALUES (2)');
    const a = await transaction(first);
    const b = await transaction(second);
    const c = await transaction(unregistered);
    expect(a.map((e) => (e.type === 'rows' ? e.change.txOffset : e.type))).toEqual([0, 3, 'commit']);
    expect(b.map((e) => (e.type === 'rows' ? e.change.txOffset : e.type))).toEqual([0, 'commit']);
    expect((a.at(-1) as Extract<Seen, { type: 'commit' }>).summary.events).toBe(4);
    expect((b.at(-1) as Extract<Seen, { type: 'commit' }>).summary.events).toBe(1);
    // A transaction of unregistered tables only is a commit with nothing in it: the checkpoint can pass it.
    expect(c).toEqual([{ type: 'commit', position: expect.anything(), summary: { gtid: unregistered, events: 0, tables: {} } }]);
    const order = seen.indexOf(a.at(-1)!) < seen.indexOf(b[0]!) && seen.indexOf(b.at(-1)!) < seen.indexOf(c[0]!);
    expect(order).toBe(true);
  });

  it('hands over DDL as a schema change and a commit, and decodes later rows with the new columns', async () => {
    const added = await commit('/* migration 7 */ ALTER TABLE people ADD COLUMN age INT AFTER name');
    const row = await commit("INSERT INTO people (id, name, age) VALUES (20, 'f', 41)");
    const ddl = await commit('RENAME TABLE other TO other_old');
    const events = await transaction(added);
    expect(events.map((e) => e.type)).toEqual(['schema', 'commit']);
    const [schema, done] = events as [Extract<Seen, { type: 'schema' }>, Extract<Seen, { type: 'commit' }>];
    expect(schema).toMatchObject({ db, statement: '/* migration 7 */ ALTER TABLE people ADD COLUMN age INT AFTER name' });
    expect(schema.position).toEqual(done.position);
    expect(done.summary).toEqual({ gtid: added, events: 0, tables: {} });
    const [insert] = await transaction(row);
    const change = (insert as { change: RowsChange }).change;
    expect(change.schema.columns.map((c) => c.name)).toEqual(['id', 'name', 'age', 'note']);
    expect(change.rows).toEqual([{ before: null, after: { id: 20, name: 'f', age: 41, note: null } }]);
    expect(pointOf({ file: change.file, pos: change.eventPos }) > pointOf(done.position)).toBe(true);
    // DDL of any table reaches the handler (the reader decides what is registered).
    expect((await transaction(ddl)).map((e) => (e.type === 'schema' ? e.statement : e.type))).toEqual(['RENAME TABLE other TO other_old', 'commit']);
  });

  it('reads nothing while paused, and goes on where it stopped when resumed', async () => {
    listener.pause();
    expect(listener.isPaused).toBe(true);
    // Anything already read is handed over; nothing of what follows is.
    await new Promise((r) => setTimeout(r, 300));
    const gtid = await commit("INSERT INTO people VALUES (30, 'g', NULL, NULL)");
    await new Promise((r) => setTimeout(r, 1000));
    expect(seen.filter((s) => s.type === 'rows' && s.change.gtid === gtid)).toEqual([]);
    listener.resume();
    expect((await transaction(gtid)).map((e) => e.type)).toEqual(['rows', 'commit']);
  });

  it('reports a start at a binlog the server does not have as BINLOG_PURGED', async () => {
    const conn = await createConnection({ ...sourceConnectionOptions(source), ...exactValueOptions });
    const { file } = await binlogEnd(conn);
    await conn.end();
    const missing = file.replace(/\d+$/, (n) => String(Number(n) + 5000).padStart(n.length, '0'));
    const failures: CdcError[] = [];
    const other = new BinlogListener({ connection: sourceConnectionOptions(source), valueOptions: exactValueOptions, serverId: randomInt(0x40000000, 0x80000000), catalog: new TableCatalog(), heartbeatSeconds: 0 }, {
      onRows: () => undefined, onCommit: () => undefined, onSchemaChange: () => undefined, onHeartbeat: () => undefined, onError: (err) => failures.push(err),
    }, createLogger('test', 'silent'));
    try {
      // The server refuses the dump after the stream is ready: the handler hears it.
      await other.start({ file: missing, pos: 4 }).catch((err: CdcError) => failures.push(err));
      await eventually(async () => expect(failures.map((f) => f.code)).toEqual(['BINLOG_PURGED']), 10_000, 50);
    } finally {
      other.stop();
    }
  });
});
