import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SystemClock, VirtualClock } from '../../src/adapters/index.js';

describe('VirtualClock', () => {
  it('fires timers in due order with now() at the due time, ties in creation order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 40 }), async (delays) => {
        const clock = new VirtualClock(1_000);
        const fired: Array<[number, number]> = [];
        delays.forEach((d, i) => clock.setTimer(d, () => fired.push([i, clock.now()])));
        await clock.advance(10_000);
        const expected = delays.map((d, i) => [i, 1_000 + d] as [number, number]).sort((a, b) => a[1] - b[1] || a[0] - b[0]);
        expect(fired).toEqual(expected);
        expect(clock.now()).toBe(11_000);
      }),
      { seed: 42, numRuns: 100 },
    );
  });

  it('does not fire timers past the target, and fires timers scheduled by timers', async () => {
    const clock = new VirtualClock();
    const log: string[] = [];
    clock.setTimer(10, () => {
      log.push(`a@${clock.now()}`);
      clock.setTimer(5, () => log.push(`b@${clock.now()}`));
    });
    clock.setTimer(100, () => log.push('late'));
    await clock.advance(20);
    expect(log).toEqual(['a@10', 'b@15']);
    await clock.advance(80);
    expect(log).toEqual(['a@10', 'b@15', 'late']);
  });

  it('cancel prevents firing; sleep resolves at the right time and aborts with ABORTED', async () => {
    const clock = new VirtualClock();
    let fired = false;
    clock.setTimer(5, () => (fired = true)).cancel();
    await clock.advance(10);
    expect(fired).toBe(false);

    let wokeAt = -1;
    const p = clock.sleep(50).then(() => (wokeAt = clock.now()));
    await clock.advance(49);
    expect(wokeAt).toBe(-1);
    await clock.advance(1);
    await p;
    expect(wokeAt).toBe(60);

    const ac = new AbortController();
    const q = clock.sleep(1_000, { signal: ac.signal });
    ac.abort();
    await expect(q).rejects.toMatchObject({ code: 'ABORTED', name: 'AbortError' });
    expect(clock.pendingTimerCount).toBe(0);
  });

  it('refuses to go backwards or take bad delays', async () => {
    const clock = new VirtualClock(100);
    await expect(clock.runUntil(50)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(() => clock.setTimer(-1, () => {})).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('SystemClock', () => {
  it('sleeps on real time', async () => {
    const clock = new SystemClock();
    const t0 = clock.now();
    await clock.sleep(5);
    expect(clock.now() - t0).toBeGreaterThanOrEqual(4);
  });
});
