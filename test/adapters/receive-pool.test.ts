import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RECEIVE_SLOT_BYTES, ReceivePool } from '../../src/adapters/internal/receive-pool.js';

/**
 * Drives a ReceivePool the way SocketConnection does (take, retain per view, filled, release
 * as the consumer moves on) against a model of which views are still alive: a slot must
 * never be handed out for a new read while a view of it is alive (reuse mode), and never
 * at all once a view of it was handed on without the reuse promise.
 */
describe('ReceivePool', () => {
  const SEED = 0x5107;

  it(`never hands out memory a live view still points into (model-based, seed ${SEED})`, () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.record({ views: fc.integer({ min: 0, max: 3 }), dropped: fc.integer({ min: 0, max: 2 }), consume: fc.integer({ min: 0, max: 4 }) }), { minLength: 1, maxLength: 200 }),
        (reuse, steps) => {
          const pool = new ReceivePool(4);
          pool.setReuse(reuse);
          /** Views handed on and not yet released, in order (the consumer releases the oldest first). */
          const alive: Uint8Array[] = [];
          /** Buffers of slots whose views were handed on without the reuse promise. */
          const given = new Set<ArrayBufferLike>();
          for (const step of steps) {
            const slot = pool.take();
            expect(slot.byteLength).toBe(RECEIVE_SLOT_BYTES);
            expect(alive.some((v) => v.buffer === slot.buffer), 'slot handed out while a view of it is alive').toBe(false);
            if (!reuse) expect(given.has(slot.buffer), 'slot reused without the reuse promise').toBe(false);
            // Views dropped unread (a queue closing mid-read) are released before the read is over,
            // and before the views that follow them are retained.
            for (let i = 0; i < step.dropped; i++) {
              const view = slot.subarray(1000 + i * 10, 1005 + i * 10);
              pool.retain(view);
              pool.release(view);
            }
            for (let i = 0; i < step.views; i++) {
              const view = slot.subarray(i * 100, i * 100 + 50);
              pool.retain(view);
              alive.push(view);
              if (!reuse) given.add(slot.buffer);
            }
            pool.filled(slot);
            // The slot just filled is never handed out twice (no double entry in the free list).
            const next = pool.take();
            expect(next.buffer === slot.buffer && alive.some((v) => v.buffer === slot.buffer), 'slot handed out twice').toBe(false);
            if (alive.some((v) => v.buffer === next.buffer)) throw new Error('a live slot was handed out');
            pool.filled(next);
            for (let i = 0; i < step.consume && alive.length > 0; i++) pool.release(alive.shift() as Uint8Array);
          }
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('reuses slots once their views are released: a long stream needs few slots', () => {
    const pool = new ReceivePool(4);
    pool.setReuse(true);
    let previous: Uint8Array | undefined;
    for (let i = 0; i < 10_000; i++) {
      const slot = pool.take();
      const view = slot.subarray(0, 1000);
      pool.retain(view);
      pool.filled(slot);
      if (previous !== undefined) pool.release(previous);
      previous = view;
    }
    expect(pool.slotsAllocated).toBe(2);
  });

  it('without the reuse promise allocates per read, except reads that left no view (record headers only)', () => {
    const pool = new ReceivePool(4);
    for (let i = 0; i < 10; i++) {
      const slot = pool.take();
      pool.retain(slot.subarray(0, 10));
      pool.filled(slot);
    }
    expect(pool.slotsAllocated).toBe(10);
    for (let i = 0; i < 10; i++) pool.filled(pool.take());
    expect(pool.slotsAllocated).toBe(11);
  });

  it('turning reuse off forgets slots with views outstanding; releasing unknown chunks is a no-op', () => {
    const pool = new ReceivePool(4);
    pool.setReuse(true);
    const slot = pool.take();
    const view = slot.subarray(0, 10);
    pool.retain(view);
    pool.filled(slot);
    pool.setReuse(false);
    pool.release(view);
    pool.release(new Uint8Array(10));
    expect(pool.take().buffer).not.toBe(slot.buffer);
  });
});
