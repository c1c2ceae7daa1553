import { accessSync, constants } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { PipelineConfig } from './pipeline-schema.js';
import { anyTarget, type PipelineTargets, type TargetSettings, type TlsFileSetting } from './pipeline-targets.js';

/** A TLS file setting of the pipeline file: where it is (for messages) and how to set it. */
interface TlsFileRef {
  where: string;
  path: string;
  set(absolute: string): void;
}

function refsOf(where: string, files: TlsFileSetting['files']): TlsFileRef[] {
  if (!files) return [];
  return (['ca', 'cert', 'key'] as const).flatMap((field) => {
    const path = files[field];
    return path === undefined ? [] : [{ where: `${where}.${field}`, path, set: (absolute: string) => void (files[field] = absolute) }];
  });
}

/** Every CA, certificate and key file the pipeline file names (those of its targets as `targets` declares them). */
function tlsFileRefs<T extends TargetSettings>(config: PipelineConfig<T>, targets: PipelineTargets<T>): TlsFileRef[] {
  const refs = [...refsOf('kafka.ssl', config.kafka.ssl), ...refsOf('schemaRegistry', config.schemaRegistry)];
  for (const source of config.sources) refs.push(...refsOf(`sources.${source.name}.connection.ssl`, source.connection.ssl));
  for (const dept of config.departments) {
    for (const { at, files } of targets.tlsFiles(dept.target)) refs.push(...refsOf(`departments.${dept.name}.target${at ? `.${at}` : ''}`, files));
  }
  return refs;
}

/**
 * Makes every TLS file path absolute, relative to the pipeline file's directory (as
 * keyring.file is), and lists those that cannot be read. The files are read once, when the
 * service builds its clients (see tls.ts).
 */
export function resolveTlsFiles<T extends TargetSettings>(config: PipelineConfig<T>, baseDir: string, targets: PipelineTargets<T> = anyTarget as PipelineTargets<never>): string[] {
  const problems: string[] = [];
  for (const ref of tlsFileRefs(config, targets)) {
    const absolute = isAbsolute(ref.path) ? ref.path : resolve(baseDir, ref.path);
    ref.set(absolute);
    try {
      accessSync(absolute, constants.R_OK);
    } catch {
      problems.push(`${ref.where}: ${absolute} does not exist or is not readable`);
    }
  }
  return problems;
}
