import { describe, expect, it } from 'vitest';
import { SCHEMA_FINGERPRINT_HEADER, isCdcError, type Logger, type SchemaRegistry, type TableSchema } from '@cityshare/shared';
import { SchemaRegistrar } from '../src/schema-registrar.js';
import type { DepartmentView } from '../src/department-views.js';

const table: TableSchema = {
  db: 'civil',
  table: 'citizens',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: { kind: 'bigint', unsigned: true }, sourceType: 'bigint unsigned', nullable: false },
    { name: 'district', type: { kind: 'string', charset: 'utf8mb4' }, sourceType: 'varchar(32)', nullable: false },
  ],
};
const view: DepartmentView = { department: 'health', rules: [{ column: 'id', action: 'pass' }, { column: 'district', action: 'pass' }] };
const record = { id: '7', district: '朝阳', __op: 'c', __version: 'v1', __source_ts_ms: 1n, __deleted: false };

/** A registrar whose registry answers every registration with `id` (this tests the registrar's own handling, not a registry). */
function registrarWith(id: number): SchemaRegistrar {
  const registry = { register: async () => ({ id }) } as unknown as SchemaRegistry;
  const logger = { warn: () => undefined } as unknown as Logger;
  return new SchemaRegistrar({ registry, endpoint: { url: 'http://127.0.0.1:1' }, logger, onRegistered: () => undefined, onReregistered: () => undefined });
}

describe('SchemaRegistrar.encode', () => {
  it('encodes under the id it registered, with the contract fingerprint as header', async () => {
    const registrar = registrarWith(42);
    const id = await registrar.schemaId('p.share.health.cityhub.civil.citizens', view, table);
    expect(registrar.knownId(view, table)).toBe(42);
    const out = registrar.encode(id, record, 'p.share.health.cityhub.civil.citizens');
    expect([out[0], out.readInt32BE(1)]).toEqual([0, 42]);
    expect(registrar.headersOf(id)[SCHEMA_FINGERPRINT_HEADER]).toMatch(/^[0-9a-f]{64}$/);
  });

  it("dead-letters a record that does not match its contract (RECORD_INVALID), naming the field but not its value", async () => {
    const registrar = registrarWith(42);
    const id = await registrar.schemaId('t', view, table);
    const err = (() => {
      try {
        registrar.encode(id, { ...record, district: 12345 }, 't');
      } catch (e) {
        return e;
      }
    })();
    expect(isCdcError(err, 'RECORD_INVALID')).toBe(true);
    expect((err as Error).message).toContain('district');
    expect((err as Error).message).not.toContain('12345');
  });

  it('stops (INTERNAL) on a record that matches its contract and still does not encode, instead of dead-lettering it', async () => {
    // An id past a 4-byte integer (a registry with 64-bit global ids): nothing is wrong with the record.
    const registrar = registrarWith(2 ** 31);
    const id = await registrar.schemaId('t', view, table);
    expect(() => registrar.encode(id, record, 't')).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});
