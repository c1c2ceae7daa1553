import { describe, expect, it } from 'vitest';
import { stageWaits } from './latency.js';

describe('stage waits at the fixed rate', () => {
  it('takes each histogram\'s mean and rate between two readings; a stage first seen at the end counts from zero', () => {
    const before = { transformer: { sum: 10, count: 100 } };
    const after = { transformer: { sum: 13, count: 130 }, sink: { sum: 0.5, count: 10 } };
    expect(stageWaits(before, after, 10)).toEqual({ transformer: { mean_ms: 100, per_s: 3 }, sink: { mean_ms: 50, per_s: 1 } });
  });

  it('says 0 ms for a stage that saw no batch meanwhile', () => {
    expect(stageWaits({ sink: { sum: 2, count: 4 } }, { sink: { sum: 2, count: 4 } }, 5)).toEqual({ sink: { mean_ms: 0, per_s: 0 } });
  });
});
