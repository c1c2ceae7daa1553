import { statSync } from 'node:fs';
import { FileKeyring } from '../crypto/keyring.js';
import { CdcError, isCdcError } from '../errors.js';
import type { Logger } from '../logger.js';
import { loadPipeline, type LoadedPipeline } from './load-pipeline.js';

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
        const pipeline = loadPipeline(current.path);
        const keys = FileKeyring.load(pipeline.keyringPath);
        await options.onChange({ pipeline, keys });
        current = pipeline;
        options.logger.info({ path: pipeline.path }, 'pipeline policy reloaded');
      } catch (err) {
        const error = isCdcError(err) ? err : new CdcError('INTERNAL', (err as Error).message, { cause: err });
        // A file that does not load waits for the next edit; anything else (Kafka down while
        // applying it) is tried again on the next tick.
        if (!['CONFIG_INVALID', 'CONFIG_NOT_FOUND', 'KEY_NOT_FOUND', 'POLICY_SIGNATURE_INVALID'].includes(error.code)) seen = previous;
        options.logger.error({ code: error.code, action: error.action }, `pipeline change not applied, the running policy stays: ${error.message}`);
        options.onRejected?.(error);
      } finally {
        busy = false;
      }
    })();
  }, options.intervalMs ?? 1000);
  timer.unref();
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
