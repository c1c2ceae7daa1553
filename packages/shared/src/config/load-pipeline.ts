import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { CdcError } from '../errors.js';
import { compileRowFilter } from '../policy/row-filter.js';
import { pipelineSchemaOf, type GrantAction, type PipelineConfig } from './pipeline-schema.js';
import { anyTarget, type AnyTarget, type PipelineTargets, type TargetSettings } from './pipeline-targets.js';
import { resolveTlsFiles } from './tls-files.js';
import { POLICY_PUBLIC_KEYS_ENV, checkPolicySignature } from './policy-signature.js';

export interface LoadedPipeline<T extends TargetSettings = AnyTarget> {
  /** TLS file paths (CA, certificate, key) made absolute, relative to the pipeline file. */
  config: PipelineConfig<T>;
  /** Absolute path of the keyring file. */
  keyringPath: string;
  path: string;
  /** The targets it was checked with, so that a reload (watchPipeline) checks the same. */
  targets: PipelineTargets<T>;
}

/** Without the sink's target registry, a target is only required to name its kind (pipeline-targets.ts). */
const someTargets = anyTarget as PipelineTargets<never>;

const ENV_REF = /\$\{([A-Z0-9_]+)(?::-([^}]*))?\}/g;

/** Replaces ${NAME} and ${NAME:-default} in every string; collects unset names. */
function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, missing: Set<string>): unknown {
  if (typeof value === 'string') {
    const whole = new RegExp(`^${ENV_REF.source}$`).exec(value);
    if (whole) {
      // A value that is only a reference takes the YAML type of what it expands to (3307 -> number).
      const expanded = env[whole[1]!] ?? whole[2];
      if (expanded === undefined) {
        missing.add(whole[1]!);
        return '';
      }
      return parse(expanded) ?? expanded;
    }
    return value.replace(ENV_REF, (_, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined) return v;
      if (fallback !== undefined) return fallback;
      missing.add(name);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v) => substituteEnv(v, env, missing));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteEnv(v, env, missing)]));
  }
  return value;
}

/** A grant action that gives the department the value itself (passed, or encrypted under its key). */
function revealsValue(action: GrantAction): boolean {
  return action === 'pass' || action === 'encrypt' || (typeof action === 'object' && 'encrypt' in action);
}

/** Checks that cross references hold: every grant names a registered, classified column. */
export function crossCheck(config: PipelineConfig<TargetSettings>): string[] {
  const problems: string[] = [];
  const tables = new Map<string, Record<string, string>>();
  const seenSources = new Set<string>();
  for (const source of config.sources) {
    if (seenSources.has(source.name)) problems.push(`sources: duplicate source name ${source.name}`);
    seenSources.add(source.name);
    for (const t of source.tables) {
      const ref = `${source.name}.${t.name}`;
      if (tables.has(ref)) problems.push(`sources.${source.name}: table ${t.name} listed twice`);
      tables.set(ref, t.columns);
    }
  }
  const seenDepartments = new Set<string>();
  for (const dept of config.departments) {
    if (seenDepartments.has(dept.name)) problems.push(`departments: duplicate department name ${dept.name}`);
    seenDepartments.add(dept.name);
    const targetTables = new Set<string>();
    const granted = new Set<string>();
    for (const grant of dept.grants) {
      const where = `departments.${dept.name}.grants[${grant.table}]`;
      // One share topic per department and source table: two grants of one table would share it.
      if (granted.has(grant.table)) problems.push(`${where}: ${grant.table} is granted to ${dept.name} twice; one grant per table (widen or replace the one in force)`);
      granted.add(grant.table);
      const classes = tables.get(grant.table);
      if (!classes) {
        problems.push(`${where}: table ${grant.table} is not registered under sources`);
        continue;
      }
      const targetTable = grant.targetTable ?? grant.table.split('.')[2]!;
      if (targetTables.has(targetTable)) problems.push(`${where}: target table ${targetTable} is used by two grants; set targetTable`);
      targetTables.add(targetTable);
      for (const column of Object.keys(grant.columns)) {
        if (!(column in classes)) {
          problems.push(`${where}: column ${column} is not classified on ${grant.table}; a DBA must classify it before it can be granted`);
        }
      }
      // The filter was compiled by the schema already; its columns must be classified too.
      const filterColumns = grant.filter === undefined ? [] : compileRowFilter(grant.filter).columns;
      for (const column of filterColumns.filter((c) => !(c in classes))) {
        problems.push(`${where}: the row filter reads column ${column}, which is not classified on ${grant.table}`);
      }
      // Which rows arrive discloses something of every column the filter reads: more than a
      // mask or a token of it does (phone == "13812345678" tells the whole number).
      const disclosed = new Set(grant.filterReads ?? []);
      const inClear = (c: string) => Object.hasOwn(grant.columns, c) && revealsValue(grant.columns[c]!);
      for (const column of filterColumns.filter((c) => Object.hasOwn(classes, c) && !inClear(c) && classes[c] !== 'public' && !disclosed.has(c))) {
        problems.push(`${where}: the row filter reads ${classes[column]} column ${column}, which the grant does not share in clear (pass or encrypt): the rows that arrive would disclose it. Grant the column, or name it in filterReads so the security officer approves it`);
      }
      for (const column of [...disclosed].filter((c) => !filterColumns.includes(c))) {
        problems.push(`${where}: filterReads names ${column}, which the row filter does not read`);
      }
    }
  }
  return problems;
}

/** The pipeline file's text checked in full (its targets as `targets` knows them); CONFIG_INVALID lists every problem. */
export function parsePipeline<T extends TargetSettings = AnyTarget>(text: string, env: NodeJS.ProcessEnv = process.env, targets: PipelineTargets<T> = someTargets): PipelineConfig<T> {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (cause) {
    throw new CdcError('CONFIG_INVALID', `pipeline file is not valid YAML: ${(cause as Error).message}`, { cause });
  }
  const missing = new Set<string>();
  const substituted = substituteEnv(raw, env, missing);
  const problems = [...missing].map((n) => `environment variable ${n} is not set and has no default`);
  const parsed = pipelineSchemaOf(targets.schema).safeParse(substituted);
  if (!parsed.success) {
    problems.push(...parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`));
  } else {
    problems.push(...crossCheck(parsed.data));
  }
  if (problems.length > 0 || !parsed.success) {
    throw new CdcError('CONFIG_INVALID', `pipeline configuration has ${problems.length} problem(s):\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  }
  return parsed.data;
}

export function loadPipeline<T extends TargetSettings = AnyTarget>(path: string, env: NodeJS.ProcessEnv = process.env, targets: PipelineTargets<T> = someTargets): LoadedPipeline<T> {
  const absolute = resolve(path);
  if (!existsSync(absolute)) {
    throw new CdcError('CONFIG_NOT_FOUND', `pipeline file ${absolute} does not exist`, { details: { path: absolute } });
  }
  const text = readFileSync(absolute, 'utf8');
  checkPolicySignature(text, absolute, env[POLICY_PUBLIC_KEYS_ENV]);
  const config = withAbsoluteFiles(parsePipeline(text, env, targets), dirname(absolute));
  const problems = resolveTlsFiles(config, dirname(absolute), targets);
  if (problems.length > 0) {
    throw new CdcError('CONFIG_INVALID', `pipeline file ${absolute} names TLS files that cannot be read:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  // A service's own keyring (CITYSHARE_KEYRING, `cdc keys split`) replaces the file's keyring for that service.
  const keyringPath = env.CITYSHARE_KEYRING ? resolve(env.CITYSHARE_KEYRING) : resolve(dirname(absolute), config.keyring.file);
  return { config, path: absolute, keyringPath, targets };
}

/** The Kafka credential files resolved against the pipeline file's folder, as keyring.file is (TLS files: resolveTlsFiles). */
function withAbsoluteFiles<T extends TargetSettings>(config: PipelineConfig<T>, dir: string): PipelineConfig<T> {
  const at = (file: string | undefined) => (file === undefined ? undefined : resolve(dir, file));
  const { sasl } = config.kafka;
  return sasl ? { ...config, kafka: { ...config.kafka, sasl: { ...sasl, passwordFile: at(sasl.passwordFile), tokenFile: at(sasl.tokenFile) } } } : config;
}

/**
 * The source (or department) a service instance works for: the one `variable` names, or the
 * only one of the pipeline file.
 */
export function namedOrOnly<T extends { name: string }>(items: T[], name: string | undefined, what: 'source' | 'department', variable: string): T {
  const found = name ? items.find((i) => i.name === name) : items.length === 1 ? items[0] : undefined;
  if (!found) {
    throw new CdcError('CONFIG_INVALID', name ? `no ${what} named ${name} in the pipeline file` : `the pipeline file has several ${what === 'source' ? 'sources' : 'departments'}: set ${variable}`);
  }
  return found;
}
