import { accessSync, constants } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { PipelineConfig } from './pipeline-schema.js';

/** A TLS file setting of the pipeline file: where it is (for messages) and how to set it. */
interface TlsFileRef {
  where: string;
  path: string;
  set(absolute: string): void;
}

type Files = { ca?: string | undefined; cert?: string | undefined; key?: string | undefined };

function refsOf(where: string, files: Files | undefined): TlsFileRef[] {
  if (!files) return [];
  return (['ca', 'cert', 'key'] as const).flatMap((field) => {
    const path = files[field];
    return path === undefined ? [] : [{ where: `${where}.${field}`, path, set: (absolute: string) => void (files[field] = absolute) }];
  });
}

/** Every CA, certificate and key file the pipeline file names. */
function tlsFileRefs(config: PipelineConfig): TlsFileRef[] {
  const refs = [...refsOf('kafka.ssl', config.kafka.ssl), ...refsOf('schemaRegistry', config.schemaRegistry)];
  for (const source of config.sources) refs.push(...refsOf(`sources.${source.name}.connection.ssl`, source.connection.ssl));
  for (const dept of config.departments) {
    const t = dept.target;
    const where = `departments.${dept.name}.target`;
    if (t.kind === 'postgres' || t.kind === 'mysql') refs.push(...refsOf(`${where}.ssl`, t.ssl));
    if (t.kind === 'export') refs.push(...refsOf(`${where}.staging.ssl`, t.staging.ssl));
    if (t.kind === 'http' || t.kind === 'export') refs.push(...refsOf(`${where}.redisTls`, t.redisTls));
    if (t.kind === 'rabbitmq') refs.push(...refsOf(where, t));
  }
  return refs;
}

/**
 * Makes every TLS file path absolute, relative to the pipeline file's directory (as
 * keyring.file is), and lists those that cannot be read. The files are read once, when the
 * service builds its clients (see tls.ts).
 */
export function resolveTlsFiles(config: PipelineConfig, baseDir: string): string[] {
  const problems: string[] = [];
  for (const ref of tlsFileRefs(config)) {
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
