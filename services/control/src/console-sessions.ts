import { randomBytes } from 'node:crypto';
import type { Principal } from './roles.js';

/** How long a console session lasts (CONTROL_SESSION_IDLE_MS, CONTROL_SESSION_MAX_MS). */
export interface SessionLimits {
  /** A session unused this long ends. */
  idleMs: number;
  /** A session ends this long after sign-in, however busy. */
  maxMs: number;
}

/**
 * The web console's sessions, held by the control service only: the browser keeps an opaque
 * random id (an HttpOnly cookie), never the token it signed in with nor who it is. A session
 * is opened for a principal however it was authenticated (a token today; an OIDC provider
 * would open one the same way, see docs/control-plane.md "Web console"). Sessions live in
 * this process: a restart signs everyone out.
 */
export class ConsoleSessions {
  private readonly sessions = new Map<string, { principal: Principal; opened: number; seen: number }>();

  constructor(
    private readonly limits: SessionLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new session for `principal`; returns its id (256 random bits, base64url). */
  open(principal: Principal): string {
    if (this.sessions.size >= 1000) this.forgetEnded();
    const id = randomBytes(32).toString('base64url');
    this.sessions.set(id, { principal, opened: this.now(), seen: this.now() });
    return id;
  }

  /** The principal of a live session (its idle time starts again), or undefined. */
  principalOf(id: string | undefined): Principal | undefined {
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (this.ended(session)) {
      this.sessions.delete(id);
      return undefined;
    }
    session.seen = this.now();
    return session.principal;
  }

  close(id: string | undefined): void {
    if (id) this.sessions.delete(id);
  }

  private ended(s: { opened: number; seen: number }): boolean {
    const now = this.now();
    return now - s.seen >= this.limits.idleMs || now - s.opened >= this.limits.maxMs;
  }

  private forgetEnded(): void {
    for (const [id, s] of this.sessions) if (this.ended(s)) this.sessions.delete(id);
  }
}
