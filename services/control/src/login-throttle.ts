/**
 * Failed logins per remote address in a fixed window: after `max` failures the address is
 * refused — whatever token it sends, so guessing cannot go on — until its window ends.
 * Addresses whose window has ended are forgotten, so the map stays as small as the set of
 * addresses failing right now.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, { count: number; until: number }>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until the address may try again, or undefined when it may now. */
  blockedFor(address: string): number | undefined {
    const entry = this.current(address);
    return entry && entry.count >= this.max ? entry.until - this.now() : undefined;
  }

  /** Counts a failure; returns the failures of the address in its window and whether this one reached the limit. */
  fail(address: string): { failures: number; throttled: boolean } {
    if (this.failures.size >= 1000) this.forgetEnded();
    const entry = this.current(address) ?? { count: 0, until: this.now() + this.windowMs };
    entry.count += 1;
    this.failures.set(address, entry);
    return { failures: entry.count, throttled: entry.count === this.max };
  }

  private current(address: string) {
    const entry = this.failures.get(address);
    if (entry && entry.until <= this.now()) this.failures.delete(address);
    return entry && entry.until > this.now() ? entry : undefined;
  }

  private forgetEnded(): void {
    const now = this.now();
    for (const [address, entry] of this.failures) if (entry.until <= now) this.failures.delete(address);
  }
}
