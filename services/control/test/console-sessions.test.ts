import { describe, expect, it } from 'vitest';
import { ConsoleSessions } from '../src/console-sessions.js';

describe('console sessions', () => {
  const who = { name: 'li.sre', role: 'sre' as const };

  it('end after the idle time, and after the longest time however busy', () => {
    let now = 0;
    const sessions = new ConsoleSessions({ idleMs: 100, maxMs: 250 }, () => now);
    const id = sessions.open(who);
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (now = 90; now < 250; now += 90) expect(sessions.principalOf(id)).toEqual(who);
    now = 250;
    expect(sessions.principalOf(id)).toBeUndefined();
    const idle = sessions.open(who);
    now += 100;
    expect(sessions.principalOf(idle)).toBeUndefined();
  });

  it('know nothing of an id they did not hand out or that was closed', () => {
    const sessions = new ConsoleSessions({ idleMs: 1000, maxMs: 1000 });
    const id = sessions.open(who);
    expect(sessions.principalOf('made-up')).toBeUndefined();
    expect(sessions.principalOf(undefined)).toBeUndefined();
    sessions.close(id);
    expect(sessions.principalOf(id)).toBeUndefined();
  });
});
