/** What the benchmarks share: process memory, metrics, waiting, sample data, the results file. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { ServiceProcess } from '../test/support/service-process.js';

/** Peak resident set size of a process (VmHWM), MiB. */
export function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1] ?? 0) / 1024);
}

/** Sum of a metric over all its label sets, from the service's /metrics. */
export async function metric(svc: ServiceProcess, name: string): Promise<number> {
  const text = await svc.metrics();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').pop());
  return sum;
}

/** Peak memory of a service by kind (V8 heap, Buffers outside it), sampled while waiting. */
export class MemorySampler {
  readonly peak: Record<string, number> = {};

  async sample(svc: ServiceProcess): Promise<void> {
    const text = await svc.metrics();
    for (const name of ['cityshare_nodejs_heap_size_total_bytes', 'cityshare_nodejs_heap_size_used_bytes', 'cityshare_nodejs_external_memory_bytes']) {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text);
      const kind = name.replace(/^cityshare_nodejs_|_bytes$/g, '');
      if (m) this.peak[kind] = Math.max(this.peak[kind] ?? 0, Math.round(Number(m[1]) / 2 ** 20));
    }
  }
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('benchmark step timed out');
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** INSERT … SELECT of `count` sample citizens with ids from `from`, from MariaDB's sequence engine. */
export const fillCitizens = (table: string, from: number, count: number) =>
  `INSERT INTO ${table} (id, name, id_card, phone, birth_date, district, address, registered_at)
   SELECT seq, CONCAT('市民', seq), CONCAT('1101011990', LPAD(seq MOD 100000000, 8, '0')), CONCAT('138', LPAD(seq MOD 100000000, 8, '0')),
          '1990-01-01' + INTERVAL (seq MOD 20000) DAY, ELT(1 + seq MOD 4, '东城', '海淀', '朝阳', '浦东'),
          CONCAT('北京市海淀区中关村大街', seq, '号'), '2024-01-01 00:00:00.000000' + INTERVAL seq SECOND
   FROM ${table.split('.')[0]}.seq_${from}_to_${from + count - 1}`;

/** Merges `fields` into bench/results/latest.json (each benchmark writes its own fields). */
export function writeResults(fields: Record<string, unknown>): void {
  mkdirSync('bench/results', { recursive: true });
  const file = 'bench/results/latest.json';
  const previous = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  const merged = { ...previous, ...fields, date: new Date().toISOString() };
  if (fields.rss_mib) merged.rss_mib = { ...previous.rss_mib, ...(fields.rss_mib as object) };
  writeFileSync(file, JSON.stringify(merged, null, 2) + '\n');
  console.log(`wrote ${file}`);
}
