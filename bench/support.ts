/** What the benchmarks share: process memory, metrics, waiting, sample data, the results file. */
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adminKafka } from '../scripts/support/kafka-security.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';

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

/** Sum and count of a histogram over all its label sets, from the service's /metrics. */
export async function histogramTotals(svc: ServiceProcess, name: string): Promise<{ sum: number; count: number }> {
  return { sum: await metric(svc, `${name}_sum`), count: await metric(svc, `${name}_count`) };
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

/** True when `moduleUrl` (import.meta.url) is the script node was started with, not an import. */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(moduleUrl);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Median of the numbers (mean of the middle two for an even count); NaN for none. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Nearest-rank quantile of sorted numbers. */
export function quantileOf(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * Rate of a growing counter: samples it every `everyMs` until `done(value)`, and divides the
 * growth from the first sample that moved to the last one by the time in between, so the
 * start-up of the process (before its first unit of work) is left out. BENCH_TRACE=1 prints
 * every sample.
 */
export async function sustainedRate(
  read: () => Promise<number>,
  done: (value: number) => Promise<boolean>,
  timeoutMs: number,
  everyMs = 200,
  /** A time by which nothing had been counted yet (a process's counter starts at 0): work found done at the first sample is timed from there. */
  origin?: { t: number; v: number },
): Promise<{ rate: number; seconds: number; first: number; last: number }> {
  const deadline = Date.now() + timeoutMs;
  let start: { t: number; v: number } | undefined;
  let previous = { t: Date.now(), v: await read() };
  if (origin && previous.v > origin.v) start = origin;
  for (;;) {
    await sleep(everyMs);
    const now = { t: Date.now(), v: await read() };
    if (process.env.BENCH_TRACE) console.log(`  sample +${now.t - previous.t} ms: ${now.v}`);
    // The interval in which it first moved counts whole: work may have begun right after the previous sample.
    if (!start && now.v > previous.v) start = previous;
    previous = now;
    if (await done(now.v)) break;
    if (Date.now() > deadline) throw new Error('benchmark step timed out');
  }
  start ??= previous;
  const seconds = Math.max(0.001, (previous.t - start.t) / 1000);
  return { rate: (previous.v - start.v) / seconds, seconds, first: start.v, last: previous.v };
}

/** A replica server id for a bench pipeline, random so that runs and tests on the same source never collide. */
export const benchServerId = () => randomInt(100_000, 2 ** 31);

/** Deletes the Kafka topics of a run (`<prefix>.…`), so repeated benchmarks do not fill the broker's disk; best effort. */
export async function deleteRunTopics(prefix: string): Promise<void> {
  const admin = adminKafka('bench-cleanup').admin();
  try {
    await admin.connect();
    const names = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`));
    if (names.length) await admin.deleteTopics({ topics: names });
  } catch (err) {
    console.warn(`could not delete the topics of ${prefix}: ${(err as Error).message}`);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
