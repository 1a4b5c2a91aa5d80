// The server-wide bound on concurrent device reads: never more than the limit run at
// once, waiters start in arrival order, and a failing read frees its slot.
import { describe, expect, it } from 'vitest';
import { ReadGate } from '../../src/nbd/internal/read-gate.js';

describe('ReadGate', () => {
  it('runs at most the limit at once, in arrival order, and frees the slot of a failure', async () => {
    const gate = new ReadGate(3);
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const task = (i: number) =>
      gate.run(async () => {
        started.push(i);
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running--;
        if (i === 2) throw new Error('boom');
        return i;
      });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => task(i)));
    expect(peak).toBe(3);
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    expect(await gate.run(async () => 'after')).toBe('after');
  });
});
