/**
 * Runs `task` every `intervalMs`, never two at once: a tick that finds the last run still
 * going is skipped, so a slow dependency delays the loop instead of piling up calls. A
 * failed run goes to `onError` and the next tick tries again.
 */
export function every(intervalMs: number, task: () => Promise<void>, onError: (err: unknown) => void): { stop(): void } {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    task().catch(onError).finally(() => (busy = false));
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
