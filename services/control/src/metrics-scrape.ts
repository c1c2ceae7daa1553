import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { CdcError } from '@cityshare/shared';

/** One sample of a Prometheus text exposition: `name{labels} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of a Prometheus text exposition (comments and malformed lines skipped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m || Number.isNaN(Number(m[3]))) continue;
    const labels: Record<string, string> = {};
    for (const [, name, value] of (m[2] ?? '').matchAll(LABEL)) labels[name!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/**
 * The metrics endpoints listed in a Prometheus file_sd file (JSON or YAML:
 * `[{targets: ["host:port", …], labels: {…}}]`), the same file Prometheus can discover the
 * services from. Read at each call, so services added or moved are seen without a restart.
 */
export function metricsTargets(file: string | undefined): string[] {
  if (!file) return [];
  if (!existsSync(file)) throw new CdcError('CONFIG_NOT_FOUND', `CONTROL_METRICS_TARGETS ${file} does not exist`, { details: { path: file } });
  const groups = parse(readFileSync(file, 'utf8')) as unknown;
  if (!Array.isArray(groups)) throw new CdcError('CONFIG_INVALID', `CONTROL_METRICS_TARGETS ${file} is not a Prometheus file_sd list ([{targets: ["host:port"]}])`);
  return groups.flatMap((g) => (Array.isArray((g as { targets?: unknown }).targets) ? ((g as { targets: unknown[] }).targets.map(String)) : []));
}

/** Every target's samples, or its failure; at most `timeoutMs` each, all at once. */
export async function scrape(targets: string[], timeoutMs = 2000): Promise<Array<{ target: string; samples: Sample[] | undefined }>> {
  return Promise.all(targets.map(async (target) => {
    const url = /^https?:\/\//.test(target) ? target : `http://${target}/metrics`;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      return { target, samples: res.ok ? parseMetrics(await res.text()) : undefined };
    } catch {
      return { target, samples: undefined };
    }
  }));
}
