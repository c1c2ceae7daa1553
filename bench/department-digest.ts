/**
 * Whether a department holds exactly what the source holds, for the benches whose department
 * is granted the bench tables as bench/soak.ts grants them (citizens: name and phone masked,
 * ID card encrypted, birth date, district and address in clear; taps: card number tokenized,
 * route and stop in clear): per table, a digest of the keys and the columns it receives in
 * clear, in key order, on both sides, and the count of rows whose protected columns are
 * filled. A wrong delivery (a row missing, stale, or not deleted) changes the digest.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';
import { loadTables } from './workload.js';
import { sleep } from './support.js';

export interface TableDigest {
  rows: number;
  sha256: string;
}

export interface DepartmentCheck {
  table: string;
  source: TableDigest;
  department: TableDigest;
  equal: boolean;
  protected_columns_filled: number;
}

/** The department `health` of a bench pipeline file, in the run's PostgreSQL schema, granted the bench tables as checkDepartment expects. */
export function checkedDepartment(run: PipelineRun): unknown {
  return {
    name: 'health',
    target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema },
    grants: [
      { table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', name: { mask: 'name' }, phone: { mask: 'phone' }, id_card: 'encrypt', birth_date: 'pass', district: 'pass', address: 'pass' } },
      { table: `cityhub.${run.transportDb}.bus_card_taps`, columns: { id: 'pass', card_no: 'tokenize', route: 'pass', stop_name: 'pass', tapped_at: 'pass' } },
    ],
  };
}

const norm = (v: unknown) => (v instanceof Date ? v.toISOString().slice(0, 10) : v === null || v === undefined ? '' : String(v));

function digest(rows: Array<Record<string, unknown>>): TableDigest {
  const h = createHash('sha256');
  for (const r of rows) h.update(`${Object.values(r).map(norm).join('\u0001')}\n`);
  return { rows: rows.length, sha256: h.digest('hex') };
}

/**
 * Compares the department's schema `pgSchema` (read through `target`) with the run's source
 * tables; while they differ, reads the department again every 5 s until `waitMs` has passed
 * (0: once).
 */
export async function checkDepartment(run: PipelineRun, target: pg.Client, pgSchema: string, waitMs = 0): Promise<DepartmentCheck[]> {
  const tables = loadTables(run);
  const checks = [
    { name: 'citizens', source: `SELECT id, birth_date, district, address FROM ${tables.citizens} ORDER BY id`, target: `SELECT id, birth_date, district, address FROM "${pgSchema}".citizens ORDER BY id`, filled: `SELECT count(*) AS n FROM "${pgSchema}".citizens WHERE name IS NOT NULL AND id_card IS NOT NULL` },
    { name: 'bus_card_taps', source: `SELECT id, route, stop_name FROM ${tables.taps} ORDER BY id`, target: `SELECT id, route, stop_name FROM "${pgSchema}".bus_card_taps ORDER BY id`, filled: `SELECT count(*) AS n FROM "${pgSchema}".bus_card_taps WHERE card_no IS NOT NULL` },
  ];
  const deadline = Date.now() + waitMs;
  const results: DepartmentCheck[] = [];
  for (const c of checks) {
    const [sourceRows] = (await run.source.query(c.source)) as unknown as [Array<Record<string, unknown>>];
    const want = digest(sourceRows);
    let have = digest((await target.query(c.target)).rows as Array<Record<string, unknown>>);
    while (have.sha256 !== want.sha256 && Date.now() < deadline) {
      await sleep(5_000);
      have = digest((await target.query(c.target)).rows as Array<Record<string, unknown>>);
    }
    const filled = Number((await target.query(c.filled)).rows[0].n);
    results.push({ table: c.name, source: want, department: have, equal: have.sha256 === want.sha256, protected_columns_filled: filled });
  }
  return results;
}

/** One line per table: rows and digest prefix on each side, EQUAL or DIFFERENT. */
export function describeCheck(c: DepartmentCheck): string {
  return `${c.table}: source ${c.source.rows.toLocaleString('en')} rows ${c.source.sha256.slice(0, 12)}, department ${c.department.rows.toLocaleString('en')} rows ${c.department.sha256.slice(0, 12)}: ${c.equal ? 'EQUAL' : 'DIFFERENT'}`;
}
