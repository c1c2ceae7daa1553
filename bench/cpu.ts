/**
 * Where the CPU of a benchmark phase goes, process by process: every process of the machine
 * that takes part (our services, the Debezium peer's Kafka Connect worker, the Kafka broker,
 * the schema registry, the source MariaDB, PostgreSQL, and the bench itself: load driver and
 * latency probe), read from /proc/<pid>/stat (user + system time of all its threads, so
 * libuv's and the JVM's threads count too) at the start and end of the phase. Divided by
 * the phase's row changes: CPU microseconds per row change, stage by stage. A process that
 * ends within a phase (a PostgreSQL backend of a closed connection) is not counted.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { SERVICES } from '../scripts/build-services.js';

/** CPU seconds so far of each process that takes part, by pid, with its stage name. */
export type CpuSnapshot = Map<number, { stage: string; seconds: number }>;

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100; // Linux's USER_HZ
  }
})();

/** The stage a process belongs to, from its command line; undefined: not part of the pipeline or its stack. */
export function stageOf(cmdline: string, comm: string, pid: number): string | undefined {
  if (pid === process.pid) return 'bench';
  for (const name of SERVICES) if (cmdline.includes(`services/${name}/dist/`)) return name;
  if (cmdline.includes('org.apache.kafka.connect.')) return 'kafka_connect';
  if (cmdline.includes(' kafka.Kafka ')) return 'kafka';
  if (cmdline.includes('quarkus-run.jar')) return 'registry';
  if (comm === 'mariadbd' && cmdline.includes('/.stack/mariadb')) return 'mariadb';
  if (comm === 'postgres') return 'postgresql';
  return undefined;
}

/** A process's name (comm) and the CPU seconds (user + system, all threads) it has used so far. */
function readStat(pid: number): { comm: string; seconds: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // comm may hold spaces and parentheses: the fields after it start at the last ')'.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5); the slice starts at field 3.
  return { comm: stat.slice(stat.indexOf('(') + 1, close), seconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND };
}

/** CPU seconds (user + system, all threads) a process has used so far. */
export function processCpuSeconds(pid: number): number {
  return readStat(pid).seconds;
}

export function cpuSnapshot(): CpuSnapshot {
  const out: CpuSnapshot = new Map();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const { comm, seconds } = readStat(pid);
      const stage = stageOf(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '), comm, pid);
      if (stage) out.set(pid, { stage, seconds });
    } catch {
      // The process ended meanwhile.
    }
  }
  return out;
}

/**
 * CPU microseconds per row change of each stage between two snapshots (processes that
 * started meanwhile count from zero; those that ended meanwhile are not counted), and
 * their total.
 */
export function cpuPerRow(before: CpuSnapshot, after: CpuSnapshot, rows: number): Record<string, number> {
  const seconds: Record<string, number> = {};
  for (const [pid, { stage, seconds: s }] of after) seconds[stage] = (seconds[stage] ?? 0) + s - (before.get(pid)?.seconds ?? 0);
  const perRow = Object.fromEntries(Object.entries(seconds).sort(([, a], [, b]) => b - a).map(([stage, s]) => [stage, Math.round((s * 1e6) / rows)]));
  return { ...perRow, total: Object.values(perRow).reduce((a, b) => a + b, 0) };
}

/** `transformer 142, kafka 60, ...` */
export function formatCpu(perRow: Record<string, number>): string {
  return Object.entries(perRow).map(([stage, us]) => `${stage} ${us}`).join(', ');
}
