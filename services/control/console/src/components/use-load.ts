import { useCallback, useEffect, useState } from 'preact/hooks';

/** Loads once (and again on `reload`, or every `everyMs`): the value, the error, and whether it is loading. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = [], everyMs?: number) {
  const [state, setState] = useState<{ value?: T; error?: unknown; loading: boolean }>({ loading: true });
  const run = useCallback(() => {
    setState((s) => ({ ...s, loading: true }));
    load().then((value) => setState({ value, loading: false }), (error: unknown) => setState({ error, loading: false }));
  }, deps);
  useEffect(() => {
    run();
    if (!everyMs) return undefined;
    const timer = setInterval(run, everyMs);
    return () => clearInterval(timer);
  }, [run, everyMs]);
  return { ...state, reload: run };
}
