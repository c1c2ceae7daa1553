/**
 * Watches the event loop for stalls: a timer due every `tickMs` that fires late by more
 * than `limitMs` means the loop was blocked that long (a wedged loop cannot answer probes,
 * heartbeat its Kafka groups or keep its sessions). `check()` reports the last such stall
 * for `holdMs` after it, so an orchestrator polling /healthz sees it even once the loop
 * runs again.
 */
export class LoopLag {
  private timer: NodeJS.Timeout | undefined;
  private expected = 0;
  private stall: { ms: number; at: number } | undefined;

  constructor(private readonly options: { limitMs: number; tickMs?: number; holdMs?: number } = { limitMs: 5_000 }) {}

  start(): this {
    const tick = this.options.tickMs ?? 500;
    this.expected = Date.now() + tick;
    this.timer = setInterval(() => {
      const late = Date.now() - this.expected;
      if (late > this.options.limitMs) this.stall = { ms: late, at: Date.now() };
      this.expected = Date.now() + tick;
    }, tick);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** true, or how long the loop was last blocked (while that is recent). */
  check(): true | string {
    if (this.stall && Date.now() - this.stall.at < (this.options.holdMs ?? 30_000)) return `event loop blocked for ${(this.stall.ms / 1000).toFixed(1)} s`;
    return true;
  }
}
