import { readFileSync, statSync } from 'node:fs';
import { parse } from 'yaml';
import { canonicalJson } from '../canonical-json.js';
import { FileKeyring } from '../crypto/keyring.js';
import { CdcError, isCdcError } from '../errors.js';
import type { Logger } from '../logger.js';
import { loadPipeline, type LoadedPipeline } from './load-pipeline.js';
import type { PipelineConfig } from './pipeline-schema.js';

export interface PipelineChange {
  pipeline: LoadedPipeline;
  keys: FileKeyring;
}

export interface WatchOptions {
  /** How often the files are checked; policy changes apply within this plus one batch. */
  intervalMs?: number;
  logger: Logger;
  /** A new, valid pipeline file and keyring; may be async (e.g. to create topics first). */
  onChange: (change: PipelineChange) => void | Promise<void>;
  /** A changed file that does not load: the running policy stays. */
  onRejected?: (err: CdcError) => void;
}

/**
 * Policy without restarts: re-reads the pipeline file and its keyring when either changes
 * (grant, revoke, reclassify, key rotation) and hands a valid new version to `onChange`.
 * A file that does not validate is reported with its problems and the running version
 * stays in force, so a typo never opens or closes access by accident. Polling (not
 * inotify) works on every filesystem, including mounted config maps.
 */
export function watchPipeline(loaded: LoadedPipeline, options: WatchOptions): { stop(): void } {
  const signature = (p: LoadedPipeline) => [p.path, p.keyringPath].map(stamp).join('|');
  let current = loaded;
  // The running file as written (no ${…} resolved), to tell which grants a refused file still holds.
  let currentText = readText(loaded.path);
  let seen = signature(loaded);
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    const now = signature(current);
    if (now === seen) return;
    // Stamped before reading: a file written again while this one is applied is read on a later tick.
    const previous = seen;
    seen = now;
    busy = true;
    void (async () => {
      try {
        const text = readText(current.path);
        const pipeline = loadPipeline(current.path, process.env, current.targets);
        const keys = FileKeyring.load(pipeline.keyringPath);
        await options.onChange({ pipeline, keys });
        current = pipeline;
        currentText = text;
        options.logger.info({ path: pipeline.path }, 'pipeline policy reloaded');
      } catch (err) {
        const error = isCdcError(err) ? err : new CdcError('INTERNAL', (err as Error).message, { cause: err });
        // A file that does not load waits for the next edit; anything else (Kafka down while
        // applying it) is tried again on the next tick.
        const refused = ['CONFIG_INVALID', 'CONFIG_NOT_FOUND', 'KEY_NOT_FOUND'].includes(error.code);
        if (!refused && error.code !== 'POLICY_SIGNATURE_INVALID') seen = previous;
        options.logger.error({ code: error.code, action: error.action }, `pipeline change not applied, the running policy stays: ${error.message}`);
        options.onRejected?.(error);
        // What the refused file takes away still applies: a revoke never waits for another change to load.
        // (A removed file withdraws nothing: deleting it is not an authenticated decision.)
        if (refused && error.code !== 'CONFIG_NOT_FOUND') await applyWithdrawals();
      } finally {
        busy = false;
      }
    })();
  }, options.intervalMs ?? 1000);
  timer.unref();

  /**
   * The running policy without the grants a refused file (authentic, when signatures are
   * required: a file that fails its signature check never gets here) no longer holds:
   * revoked or expired. A grant the file changes keeps its running version until the new
   * one loads (a typo never closes access by accident).
   */
  async function applyWithdrawals(): Promise<void> {
    try {
      const text = readText(current.path);
      const withdrawn = withdrawnGrants(current.config, currentText, text);
      if (withdrawn.removed.length === 0) return;
      const pipeline = { ...current, config: withdrawn.config };
      await options.onChange({ pipeline, keys: FileKeyring.load(current.keyringPath) });
      current = pipeline;
      currentText = withdrawn.text;
      options.logger.warn({ withdrawn: withdrawn.removed }, 'grants revoked or changed in the refused pipeline file are withdrawn; the rest of the change waits for a file that loads');
    } catch (err) {
      options.logger.error({ err }, 'the grants withdrawn by the refused pipeline file could not be applied');
    }
  }
  return { stop: () => clearInterval(timer) };
}

function stamp(path: string): string {
  try {
    const s = statSync(path);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  } catch {
    return 'missing';
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

type RawPipeline = { departments?: Array<{ name?: unknown; grants?: Array<{ table?: unknown }> }> };

/**
 * The grants of `running` (loaded from `runningText`) whose department and table `newText`
 * still grants, compared as written (before `${…}` substitution); the rest are `removed`
 * ("department:table"). `text` is the running file's text without them, for the next comparison.
 */
export function withdrawnGrants(running: PipelineConfig, runningText: string, newText: string): { config: PipelineConfig; removed: string[]; text: string } {
  const rawOf = (text: string): RawPipeline => {
    try {
      return (parse(text) as RawPipeline | null) ?? {};
    } catch {
      return {};
    }
  };
  const was = rawOf(runningText);
  const held = new Set((rawOf(newText).departments ?? []).flatMap((d) => (d.grants ?? []).map((g) => canonicalJson([d.name, g.table]))));
  const removed: string[] = [];
  const departments = running.departments.map((dept, i) => {
    const raw = was.departments?.[i];
    const keep = dept.grants.map((g, j) => {
      const kept = held.has(canonicalJson([raw?.name, raw?.grants?.[j]?.table]));
      if (!kept) removed.push(`${dept.name}:${g.table}`);
      return kept;
    });
    if (raw?.grants) raw.grants = raw.grants.filter((_, j) => keep[j]);
    return { ...dept, grants: dept.grants.filter((_, j) => keep[j]) };
  });
  return { config: { ...running, departments }, removed, text: JSON.stringify(was) };
}
