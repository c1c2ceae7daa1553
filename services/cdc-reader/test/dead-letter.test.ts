import { describe, expect, it } from 'vitest';
import { FileKeyring, recordForgery, type TableSchema } from '@cityshare/shared';
import type { RowsChange } from '../src/binlog-listener.js';
import { openDeadLetterKey, oversizeLetter } from '../src/dead-letter.js';

const keys = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: Buffer.alloc(32, 5).toString('base64') }] } });
const schema: TableSchema = {
  db: 'civil',
  table: 'documents',
  primaryKey: ['id_card'],
  columns: [
    { name: 'id_card', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar(18)', nullable: false },
    { name: 'body', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'longtext', nullable: true },
  ],
};
const change = (kind: RowsChange['kind'], rows: RowsChange['rows']): RowsChange => ({
  kind, schema, rows, file: 'mariadb-bin.000003', eventPos: 4711, gtid: '0-1-9', tsMs: 1_700_000_000_000, txOffset: 0,
});
const at = { prefix: 'demo', source: 'cityhub' };

describe('oversizeLetter', () => {
  it('says where and how large, with the key sealed and no value, signed like the reader\'s records', () => {
    const rows = [{ before: null, after: { id_card: '110101199001010000', body: 'x'.repeat(10) } }, { before: null, after: { id_card: '110101199001010011', body: '机密'.repeat(10) } }];
    const { message, letter } = oversizeLetter(keys, at, { change: change('insert', rows), op: 'c', row: 1, bytes: 2_000_000, limit: 1_000_000 });
    expect(message.topic).toBe('demo.dlq.reader.cityhub');
    expect(message.key).toBe('civil.documents@0000000003.000000004711.000001');
    expect(letter).toMatchObject({ code: 'EVENT_TOO_LARGE', source: 'cityhub', db: 'civil', table: 'documents', op: 'c', file: 'mariadb-bin.000003', pos: 4711, row: 1, gtid: '0-1-9', snapshot: false, bytes: 2_000_000, limit: 1_000_000 });
    expect(JSON.parse(message.value.toString())).toEqual(letter);
    expect(message.value.toString()).not.toMatch(/110101|机密/);
    expect(openDeadLetterKey(keys, letter)).toEqual({ id_card: '110101199001010011' });
    // Bound to its position: moved to another letter it does not open.
    expect(() => openDeadLetterKey(keys, { ...letter, version: '0000000003.000000004711.000000' })).toThrow(expect.objectContaining({ code: 'DECRYPT_FAILED' }));
    expect(recordForgery(keys, message.topic, message)).toBeNull();
  });

  it('seals the old key of a delete, and has no key for a table without one', () => {
    const rows = [{ before: { id_card: '1', body: 'old' }, after: { id_card: '2', body: 'new' } }];
    const d = oversizeLetter(keys, at, { change: change('update', rows), op: 'd', row: 0, bytes: 2, limit: 1 }).letter;
    expect(openDeadLetterKey(keys, d)).toEqual({ id_card: '1' });
    const keyless = oversizeLetter(keys, at, { change: { ...change('insert', rows), schema: { ...schema, primaryKey: [] } }, op: 'c', row: 0, bytes: 2, limit: 1 }).letter;
    expect(keyless.key).toBeNull();
    expect(openDeadLetterKey(keys, keyless)).toBeNull();
  });
});
