import { describe, expect, it } from 'vitest';
import { WatermarkWindow, pointOf } from '../src/snapshot/watermark-window.js';

const at = (file: number, pos: number) => ({ file: `mariadb-bin.${String(file).padStart(6, '0')}`, pos });
const chunk = (...ids: number[]) => ids.map((id) => ({ key: JSON.stringify({ id }), row: { id } }));
const key = (id: number) => JSON.stringify({ id });

describe('WatermarkWindow', () => {
  it('orders binlog points by file, then position (across a rotation, and past 9 digits)', () => {
    expect(pointOf(at(1, 999_999_999)) < pointOf(at(2, 4))).toBe(true);
    expect(pointOf(at(1, 9)) < pointOf(at(1, 10))).toBe(true);
    expect(pointOf(at(9, 1)) < pointOf(at(10, 1))).toBe(true);
  });

  it('drops from the chunk the keys the stream changed after the low watermark, and keeps the rest', () => {
    const window = new WatermarkWindow<{ id: number }>('civil.citizens', pointOf(at(1, 100)));
    window.observe('civil.citizens', pointOf(at(1, 150)), [key(2)]);
    window.close(at(1, 300), chunk(1, 2, 3, 4));
    // Changes between H and the stream reaching H still count: they are newer than the chunk's state.
    window.observe('civil.citizens', pointOf(at(1, 250)), [key(4)]);
    expect(window.reconcile()).toEqual([{ id: 1 }, { id: 3 }]);
  });

  it('ignores changes at or before the low watermark and changes of other tables', () => {
    const window = new WatermarkWindow<{ id: number }>('civil.citizens', pointOf(at(1, 100)));
    window.observe('civil.citizens', pointOf(at(1, 100)), [key(1)]);
    window.observe('civil.citizens', pointOf(at(1, 50)), [key(2)]);
    window.observe('civil.citizens_log', pointOf(at(1, 150)), [key(3)]);
    window.close(at(1, 300), chunk(1, 2, 3));
    expect(window.reconcile()).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
  });

  it('is reached only once the chunk is read and the stream has passed its high watermark', () => {
    const window = new WatermarkWindow<{ id: number }>('civil.citizens', pointOf(at(1, 100)));
    expect(window.reachedBy(pointOf(at(9, 1)))).toBe(false); // H unknown while the chunk is read
    window.close(at(2, 40), chunk(1));
    expect(window.highPosition).toEqual(at(2, 40));
    expect(window.highPoint).toBe(pointOf(at(2, 40)));
    expect(window.reachedBy(pointOf(at(1, 999)))).toBe(false);
    expect(window.reachedBy(pointOf(at(2, 39)))).toBe(false);
    expect(window.reachedBy(pointOf(at(2, 40)))).toBe(true);
    expect(window.reachedBy(pointOf(at(3, 4)))).toBe(true);
  });

  it('reconciles an empty chunk, and a chunk whose every key changed, to no rows', () => {
    const empty = new WatermarkWindow<{ id: number }>('t.t', pointOf(at(1, 1)));
    empty.close(at(1, 2), []);
    expect(empty.reconcile()).toEqual([]);
    const changed = new WatermarkWindow<{ id: number }>('t.t', pointOf(at(1, 1)));
    changed.observe('t.t', pointOf(at(1, 5)), [key(1), key(2)]);
    changed.close(at(1, 9), chunk(1, 2));
    expect(changed.reconcile()).toEqual([]);
  });
});
