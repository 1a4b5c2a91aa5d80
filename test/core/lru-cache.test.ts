import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LruCache } from '../../src/core/lru-cache.js';

describe('LruCache', () => {
  it('matches a trivially correct model (recency order, byte budget) under random get/set/delete', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.tuple(fc.constant('set' as const), fc.nat(20), fc.integer({ min: 1, max: 40 })), fc.tuple(fc.constant('get' as const), fc.nat(20)), fc.tuple(fc.constant('delete' as const), fc.nat(20))), { maxLength: 300 }),
        (ops) => {
          const budget = 100;
          const cache = new LruCache<number, number>(budget);
          let model: { key: number; cost: number }[] = []; // oldest first
          for (const op of ops) {
            if (op[0] === 'set') {
              const [, key, cost] = op;
              model = model.filter((e) => e.key !== key);
              model.push({ key, cost });
              let used = model.reduce((n, e) => n + e.cost, 0);
              while (used > budget) used -= model.shift()!.cost;
              cache.set(key, key * 10, cost);
            } else if (op[0] === 'get') {
              const i = model.findIndex((e) => e.key === op[1]);
              expect(cache.get(op[1])).toBe(i < 0 ? undefined : op[1] * 10);
              if (i >= 0) model.push(...model.splice(i, 1));
            } else {
              model = model.filter((e) => e.key !== op[1]);
              cache.delete(op[1]);
            }
            expect(cache.size).toBe(model.length);
            expect(cache.usedBytes).toBe(model.reduce((n, e) => n + e.cost, 0));
          }
        },
      ),
      { numRuns: 300, seed: 0x12c },
    );
  });

  it('keeps its bound through a million insertions of new keys', () => {
    const cache = new LruCache<number, number>(1000);
    for (let i = 0; i < 1_000_000; i++) cache.set(i, i, 10);
    expect(cache.size).toBe(100);
    expect(cache.get(999_999)).toBe(999_999);
  });
});
