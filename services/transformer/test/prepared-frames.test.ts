import { describe, expect, it } from 'vitest';
import { PreparedFrames, type PreparedFrame } from '../src/prepared-frames.js';

/** A cache whose every preparation is counted; `readers` department streams per topic. */
function cache(readers: number, maxBytes = 1024) {
  const lookups: string[] = [];
  const frames = new PreparedFrames(maxBytes, () => readers, (o) => lookups.push(o));
  let prepared = 0;
  const get = (offset: string, raw: Buffer) =>
    frames.get('raw.t', 0, offset, raw, async () => {
      prepared++;
      return { frame: undefined, events: [] } satisfies PreparedFrame;
    });
  return { frames, get, lookups, prepared: () => prepared };
}

describe('PreparedFrames', () => {
  it('reads a frame once for every department stream of its topic, then forgets it', async () => {
    const c = cache(3);
    const raw = Buffer.from('{"events":[]}');
    const first = await c.get('7', raw);
    expect(await c.get('7', Buffer.from(raw))).toBe(first);
    expect(await c.get('7', Buffer.from(raw))).toBe(first);
    expect(c.prepared()).toBe(1);
    expect(c.lookups).toEqual(['read', 'shared', 'shared']);
    // Every stream asked: gone, so a fourth ask (a stream reading the batch again) reads it anew.
    expect(c.frames.size).toBe(0);
    await c.get('7', raw);
    expect(c.prepared()).toBe(2);
  });

  it('never serves an entry whose bytes differ from the message fetched', async () => {
    const c = cache(2);
    await c.get('7', Buffer.from('frame one'));
    await c.get('7', Buffer.from('frame two'));
    expect(c.prepared()).toBe(2);
    expect(c.lookups).toEqual(['read', 'read']);
  });

  it('keeps nothing for a topic only one stream reads', async () => {
    const c = cache(1);
    await c.get('1', Buffer.from('x'));
    expect(c.frames.size).toBe(0);
  });

  it('drops the oldest frames past its byte bound (a paused department reads them again itself)', async () => {
    const c = cache(2, 10);
    await c.get('1', Buffer.alloc(6, 1));
    await c.get('2', Buffer.alloc(6, 2));
    expect(c.frames.size).toBe(1);
    await c.get('2', Buffer.alloc(6, 2));
    await c.get('1', Buffer.alloc(6, 1));
    expect(c.lookups).toEqual(['read', 'read', 'shared', 'read']);
  });

  it('does not keep a frame whose preparation failed', async () => {
    const frames = new PreparedFrames(1024, () => 2);
    await expect(frames.get('raw.t', 0, '1', Buffer.from('x'), () => Promise.reject(new Error('registry down')))).rejects.toThrow('registry down');
    await Promise.resolve();
    expect(frames.size).toBe(0);
  });

  it('starts empty again on clear (a new policy)', async () => {
    const c = cache(2);
    await c.get('1', Buffer.from('x'));
    c.frames.clear();
    await c.get('1', Buffer.from('x'));
    expect(c.prepared()).toBe(2);
  });
});
