import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, isCdcError } from '@cityshare/shared';
import { pgTypeOf } from '../services/sink/src/targets/pg-types.js';
import { PostgresTarget } from '../services/sink/src/targets/postgres.target.js';
import type { RowChange, TargetColumn, TargetTable } from '../services/sink/src/targets/target.js';
import { stack } from '../scripts/support/stack.js';

/**
 * The PostgreSQL target's batch write (COPY into a staging table, then one guarded upsert and
 * one delete), against the real server: every value exactly as PostgreSQL reads the same value
 * sent as a query parameter (what the target did before COPY, and what node-postgres does),
 * inserts, updates and deletes of the same keys in one batch, the version guard, and refusals.
 * The contract every table target keeps is test/sink-conformance.test.ts.
 */
const logger = createLogger('test', 'silent');
const schema = `pgt_${randomBytes(4).toString('hex')}`;
const client = new pg.Client({ connectionString: stack.postgresUrl });
let target: PostgresTarget;
let soft: PostgresTarget;

/** Every type a share schema maps to (pg-types.ts), each column nullable. */
const TYPES: TargetColumn[] = [
  { name: 'i', type: 'int', nullable: true },
  { name: 'l', type: 'long', nullable: true },
  { name: 'f', type: 'float', nullable: true },
  { name: 'd', type: 'double', nullable: true },
  { name: 'b', type: 'boolean', nullable: true },
  { name: 's', type: 'string', nullable: true },
  { name: 'by', type: 'bytes', nullable: true },
  { name: 'dec', type: { type: 'bytes', logicalType: 'decimal', precision: 65, scale: 30 }, nullable: true },
  { name: 'dt', type: { type: 'int', logicalType: 'date' }, nullable: true },
  { name: 'ts', type: { type: 'long', logicalType: 'timestamp-micros' }, nullable: true },
  { name: 'lts', type: { type: 'long', logicalType: 'local-timestamp-micros' }, nullable: true },
  { name: 'j', type: { type: 'string', logicalType: 'cityshare-json' }, nullable: true },
  { name: 'tm', type: { type: 'string', logicalType: 'cityshare-time' }, nullable: true },
  { name: 'sealed', type: { type: 'bytes', logicalType: 'cityshare-sealed' }, nullable: true },
];

/** Values as the sink decodes them from Avro (logical-types.ts), each needing care in COPY's text format. */
const VALUES: Array<Record<string, unknown>> = [
  {
    i: -2147483648, l: -9223372036854775808n, f: -3.4028234663852886e38, d: 1.7976931348623157e308, b: true,
    s: 'tab\there, line\nbreak, cr\r\nlf, back\\slash, \\N, \\., end\\', by: Buffer.from([0x00, 0x5c, 0x09, 0x0a, 0x0d, 0xff]),
    dec: '-99999999999999999999999999999999999.999999999999999999999999999999', dt: '1000-01-01', ts: '1970-01-01T00:00:01.000000Z',
    lts: '1000-01-01T00:00:00.000000', j: '{"tab": "a\\tb", "nl": "a\\nb", "bs": "a\\\\b", "zh": "北京", "n": null, "big": 12345678901234567890}',
    tm: '-838:59:59.000000', sealed: Buffer.from('5c4e0a09', 'hex'),
  },
  {
    i: 2147483647, l: 9223372036854775807n, f: 0.1, d: -0, b: false,
    s: '北京 😀 O\'Brien "quoted" ; , | \u000b\f\b\u007f', by: Buffer.alloc(0),
    dec: '0.000000000000000000000000000001', dt: '9999-12-31', ts: '2038-01-19T03:14:07.999999Z',
    lts: '2024-02-29T13:14:15.654321', j: '[]', tm: '838:59:59.000000', sealed: Buffer.from([0x5c, 0x5c]),
  },
  // The empty string is not NULL.
  { i: 0, l: 0n, f: Number.NaN, d: Number.POSITIVE_INFINITY, b: null, s: '', by: Buffer.from('\\x00', 'utf8'), dec: '0.000000000000000000000000000000', dt: null, ts: null, lts: null, j: '""', tm: '-00:00:00.500000', sealed: null },
  Object.fromEntries(TYPES.map((c) => [c.name, null])),
];

const keyed = (name: string, columns: TargetColumn[] = TYPES): TargetTable => ({ name, primaryKey: ['id'], columns: [{ name: 'id', type: 'long', nullable: false }, ...columns] });

let seq = 0;
/** A version after every earlier one of the file (versions compare as text). */
const nextVersion = () => `00000001.${String(++seq).padStart(10, '0')}.00000`;
const change = (id: number, values: Record<string, unknown>, op = 'u', version = nextVersion()): RowChange => ({
  op, version, sourceTsMs: 1_700_000_000_123n, deleted: op === 'd', values: { id: BigInt(id), ...values },
});

/** Rows of a table, every column as PostgreSQL prints it (its text output), by key. */
async function rowsOf(table: string, columns: string[], inSchema = schema): Promise<Array<Record<string, string | null>>> {
  const { rows } = await client.query(`SELECT ${columns.map((c) => `"${c}"::text AS "${c}"`).join(', ')} FROM "${inSchema}"."${table}" ORDER BY 1`);
  return rows;
}

beforeAll(async () => {
  await client.connect();
  target = new PostgresTarget({ url: stack.postgresUrl, schema }, logger);
  soft = new PostgresTarget({ url: stack.postgresUrl, schema: `${schema}_soft`, softDelete: true }, logger);
  await target.connect();
  await soft.connect();
});

afterAll(async () => {
  await target?.close();
  await soft?.close();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE; DROP SCHEMA IF EXISTS "${schema}_soft" CASCADE`);
  await client.end();
});

describe('PostgreSQL target: the batch write', () => {
  it('writes every type exactly as PostgreSQL reads the same value sent as a query parameter', async () => {
    const table = keyed('types');
    await target.ensureTable(table);
    const changes = VALUES.map((v, i) => change(i + 1, v, 'c'));
    expect(await target.apply(table, changes)).toEqual({ applied: VALUES.length, stale: 0 });

    // The reference: the same values as parameters into a twin table, as node-postgres sends them.
    const names = table.columns.map((c) => c.name);
    await client.query(`CREATE TABLE "${schema}".types_by_parameter (${table.columns.map((c) => `"${c.name}" ${pgTypeOf(c.type)}`).join(', ')})`);
    for (const c of changes) {
      await client.query(`INSERT INTO "${schema}".types_by_parameter VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')})`, names.map((n) => c.values[n] ?? null));
    }
    const copied = await rowsOf('types', names);
    expect(copied).toEqual(await rowsOf('types_by_parameter', names));
    // And not by chance equal: the values that need escaping arrived as they were.
    expect(copied[0]!.s).toBe(VALUES[0]!.s);
    expect(copied[0]!.by).toBe('\\x005c090a0dff');
    expect(copied[0]!.sealed).toBe('\\x5c4e0a09');
    expect(JSON.parse(copied[0]!.j!)).toMatchObject({ tab: 'a\tb', nl: 'a\nb', bs: 'a\\b', zh: '北京', n: null });
    expect(copied[1]!.s).toBe(VALUES[1]!.s);
    expect(copied[1]!.by).toBe('\\x');
    expect([copied[2]!.s, copied[3]!.s]).toEqual(['', null]);
    expect(copied[2]!.by).toBe('\\x5c783030');
    const meta = (await client.query(`SELECT "__source_ts" = to_timestamp(1700000000.123) AS exact, "__synced_at" > now() - interval '1 minute' AS synced FROM "${schema}".types`)).rows;
    expect(meta.every((r) => r.exact && r.synced)).toBe(true);
  });

  it('applies inserts, updates and deletes of the same keys in one batch: the last change of each key wins', async () => {
    const table = keyed('mixed', [{ name: 'name', type: 'string', nullable: true }]);
    await target.ensureTable(table);
    await target.apply(table, [change(3, { name: 'three' }, 'c'), change(4, { name: 'four' }, 'c'), change(5, { name: 'five' }, 'c')]);
    const result = await target.apply(table, [
      change(1, { name: 'a' }, 'c'), change(1, { name: 'b' }), change(1, { name: 'b' }, 'd'), change(1, { name: 'again' }, 'c'),
      change(2, { name: 'x' }, 'c'), change(2, { name: 'x' }, 'd'),
      change(3, { name: 'three, updated' }), change(3, { name: 'three, updated' }, 'd'),
      change(4, { name: 'four' }, 'd'), change(4, { name: 'four, back' }, 'c'),
      change(5, { name: 'five, updated' }), change(5, { name: 'five, updated twice' }),
    ]);
    // Keys 1, 4, 5 upserted and 3 deleted; key 2's delete found nothing to delete.
    expect(result).toEqual({ applied: 4, stale: 1 });
    expect(await rowsOf('mixed', ['id', 'name'])).toEqual([
      { id: '1', name: 'again' },
      { id: '4', name: 'four, back' },
      { id: '5', name: 'five, updated twice' },
    ]);
  });

  it('soft delete: the same batch leaves deleted keys flagged, with their last version', async () => {
    const table = keyed('mixed_soft', [{ name: 'name', type: 'string', nullable: true }]);
    await soft.ensureTable(table);
    await soft.apply(table, [change(3, { name: 'three' }, 'c')]);
    const last = change(3, { name: 'three' }, 'd');
    expect(await soft.apply(table, [change(1, { name: 'a' }, 'c'), change(1, { name: 'a' }, 'd'), change(2, { name: 'b' }, 'c'), change(3, { name: 'three, updated' }), last])).toEqual({ applied: 3, stale: 0 });
    expect(await rowsOf('mixed_soft', ['id', 'name', '__deleted'], `${schema}_soft`)).toEqual([
      { id: '1', name: 'a', __deleted: 'true' },
      { id: '2', name: 'b', __deleted: 'false' },
      { id: '3', name: 'three', __deleted: 'true' },
    ]);
    expect((await client.query(`SELECT "__version" FROM "${schema}_soft".mixed_soft WHERE id = 3`)).rows[0].__version).toBe(last.version);
  });

  it('applies no change older than the stored version, upsert or delete, nor one of the same version, and counts them stale', async () => {
    const table = keyed('stale', [{ name: 'name', type: 'string', nullable: true }]);
    await target.ensureTable(table);
    const old1 = nextVersion();
    const old2 = nextVersion();
    const same = change(4, { name: 'four' }, 'c');
    await target.apply(table, [change(1, { name: 'one' }, 'c'), change(2, { name: 'two' }, 'c'), change(3, { name: 'three' }, 'c', old1), same]);
    const result = await target.apply(table, [
      change(1, { name: 'older' }, 'u', old1),
      change(2, { name: 'two' }, 'd', old2),
      change(3, { name: 'three, newer' }),
      // A redelivery: the stored version itself.
      { ...same, op: 'u', values: { ...same.values, name: 'four, same version' } },
    ]);
    expect(result).toEqual({ applied: 1, stale: 3 });
    expect(await rowsOf('stale', ['id', 'name'])).toEqual([
      { id: '1', name: 'one' },
      { id: '2', name: 'two' },
      { id: '3', name: 'three, newer' },
      { id: '4', name: 'four' },
    ]);
  });

  it('writes a large batch whole (many COPY chunks), and again as a redelivery without a change', async () => {
    const table = keyed('large', [{ name: 'name', type: 'string', nullable: true }, { name: 'note', type: 'string', nullable: true }]);
    await target.ensureTable(table);
    const batch = Array.from({ length: 20_000 }, (_, i) => change(i + 1, { name: `市民${i}\t${i}`, note: i % 7 === 0 ? null : 'x'.repeat(i % 50) }, 'c'));
    expect(await target.apply(table, batch)).toEqual({ applied: 20_000, stale: 0 });
    expect(await target.apply(table, batch)).toEqual({ applied: 0, stale: 20_000 });
    const { rows } = await client.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE note IS NULL)::int AS nulls, max(name) FILTER (WHERE id = 20000) AS last FROM "${schema}".large`);
    expect(rows[0]).toEqual({ n: 20_000, nulls: Math.ceil(20_000 / 7), last: '市民19999\t19999' });
  });

  it('leaves a column the writer schema does not name as it is (a column granted under a newer schema)', async () => {
    const narrow = keyed('evolving', [{ name: 'name', type: 'string', nullable: true }]);
    const wide = keyed('evolving', [...narrow.columns.slice(1), { name: 'blood_type', type: 'string', nullable: true }]);
    await target.ensureTable(wide);
    await target.apply(wide, [change(1, { name: 'a', blood_type: 'AB' }, 'c')]);
    await target.apply(narrow, [change(1, { name: 'a, by an older writer' }), change(2, { name: 'b' }, 'c')]);
    expect(await rowsOf('evolving', ['id', 'name', 'blood_type'])).toEqual([
      { id: '1', name: 'a, by an older writer', blood_type: 'AB' },
      { id: '2', name: 'b', blood_type: null },
    ]);
  });

  it('says TARGET_REJECTED for a value PostgreSQL refuses while copying (a NUL, a bad date), writes nothing of the batch, and writes the next batch', async () => {
    const table = keyed('refused', [{ name: 'name', type: 'string', nullable: true }, { name: 'born', type: { type: 'int', logicalType: 'date' }, nullable: true }]);
    await target.ensureTable(table);
    // The last: refused early in a copy of several megabytes, while the rest is still being sent.
    const many = Array.from({ length: 30_000 }, (_, i) => change(i + 10, { name: 'x'.repeat(200), born: null }, 'c'));
    for (const [bad, after] of [[{ name: 'nul\u0000inside', born: null }, []], [{ name: 'b', born: 'not a date' }, []], [{ name: 'b', born: '2000-02-30' }, many]] as const) {
      const err = await target.apply(table, [change(1, { name: 'a', born: '2000-01-01' }, 'c'), change(2, bad, 'c'), ...after]).catch((e: unknown) => e);
      expect(isCdcError(err, 'TARGET_REJECTED'), String(err)).toBe(true);
      expect(await rowsOf('refused', ['id'])).toEqual([]);
    }
    expect(await target.apply(table, [change(1, { name: 'a', born: '2000-01-01' }, 'c')])).toEqual({ applied: 1, stale: 0 });
    expect(await rowsOf('refused', ['id', 'name', 'born'])).toEqual([{ id: '1', name: 'a', born: '2000-01-01' }]);
  });
});

describe('PostgreSQL target: instances of one department starting together', () => {
  it('create the same schema and tables at the same moment without refusing each other (CREATE … IF NOT EXISTS races in the catalog)', async () => {
    // Two sinks of one department (scale-out) connect and ensure their tables at once: a plain
    // CREATE … IF NOT EXISTS lets both pass the check and one fail on the catalog's unique index.
    for (let round = 0; round < 5; round++) {
      const shared = `${schema}_race${round}`;
      const instances = Array.from({ length: 4 }, () => new PostgresTarget({ url: stack.postgresUrl, schema: shared }, logger));
      try {
        const outcomes = await Promise.allSettled(instances.map(async (t) => {
          await t.connect();
          await t.ensureTable(keyed('citizens', [{ name: 'name', type: 'string', nullable: true }]));
          await t.ensureTable(keyed('citizens', [{ name: 'name', type: 'string', nullable: true }, { name: 'district', type: 'string', nullable: true }]));
        }));
        expect(outcomes.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason))).toEqual([]);
        expect((await rowsOf('citizens', ['id', 'name', 'district'], shared))).toEqual([]);
      } finally {
        await Promise.all(instances.map((t) => t.close()));
        await client.query(`DROP SCHEMA IF EXISTS "${shared}" CASCADE`);
      }
    }
  });
});
