/**
 * Conformance suite for the MetaStore contract (src/adapters/meta-store.ts). Run it
 * against every store you ship or write:
 *
 * ```ts
 * import { describeMetaStore } from 'drkit/testing';
 * describeMetaStore({ name: 'MyStore', open: () => MyStore.open(...) });
 * ```
 */
import fc from 'fast-check';
import { expectCode } from './internal/suite-assertions.js';
import { vitest } from './internal/vitest-api.js';
import type { MetaOp, MetaRange, MetaStore } from '../adapters/meta-store.js';
import { toHex } from '../core/bytes.js';
import { isDrkitError } from '../core/errors.js';
import { MetaStoreModel, stepsArbitrary } from './internal/meta-store-model.js';

/** Options of {@link describeMetaStore}. */
export interface MetaStoreSuiteOptions {
  /** Suite title. */
  name: string;
  /** Opens a new, empty store on fresh media. */
  open: () => Promise<MetaStore>;
  /**
   * Closes `store` and opens a new handle on the same media, as after a restart. When
   * given, the suite checks that flushed batches survive.
   */
  reopen?: (store: MetaStore) => Promise<MetaStore>;
  /** Seed of the model-based property. @defaultValue 0x5eed */
  seed?: number;
  /** Runs of the model-based property. @defaultValue 40 */
  numRuns?: number;
}

const b = (...bytes: number[]): Uint8Array => Uint8Array.from(bytes);
const put = (key: Uint8Array, value: Uint8Array): MetaOp => ({ kind: 'put', key, value });
const del = (key: Uint8Array): MetaOp => ({ kind: 'del', key });

async function collect(store: MetaStore, range?: MetaRange): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const [key, value] of store.iterate(range)) out.push([toHex(key), toHex(value)]);
  return out;
}

function hexEntries(entries: [Uint8Array, Uint8Array][]): [string, string][] {
  return entries.map(([key, value]) => [toHex(key), toHex(value)]);
}

/** Keys that stress bytewise order: 0x00 and 0xff bytes, prefixes of each other, different lengths. */
const EDGE_KEYS = [b(), b(0), b(0, 0), b(0, 0xff), b(1), b(1, 0), b(0x7f), b(0x80), b(0x80, 0), b(0xfe, 0xff), b(0xff), b(0xff, 0), b(0xff, 0xff), b(0xff, 0xff, 0xff)];

/** Registers the MetaStore conformance tests for one implementation. */
export function describeMetaStore(options: MetaStoreSuiteOptions): void {
  const { open, reopen } = options;
  const seed = options.seed ?? 0x5eed;
  const numRuns = options.numRuns ?? 40;

  const withStore = async (fn: (store: MetaStore) => Promise<void>): Promise<void> => {
    const store = await open();
    try {
      await fn(store);
    } finally {
      await store.close();
    }
  };

  const loadEdgeKeys = async (store: MetaStore): Promise<MetaStoreModel> => {
    const model = new MetaStoreModel();
    // Inserted in a scrambled order so the store, not the insertion order, sorts them.
    const ops = [...EDGE_KEYS].reverse().map((key, i) => put(key, b(i, ...key)));
    const scrambled = [...ops.filter((_, i) => i % 2 === 0), ...ops.filter((_, i) => i % 2 === 1)];
    await store.batch(scrambled);
    model.apply(scrambled);
    return model;
  };

  vitest().describe(`MetaStore conformance: ${options.name}`, () => {
    vitest().it('get / put / del', async () => {
      await withStore(async (store) => {
        vitest().expect(await store.get(b(1))).toBeUndefined();
        await store.batch([put(b(1), b(10))]);
        vitest().expect(await store.get(b(1))).toEqual(b(10));
        await store.batch([put(b(1), b(11))]);
        vitest().expect(await store.get(b(1))).toEqual(b(11));
        await store.batch([del(b(1))]);
        vitest().expect(await store.get(b(1))).toBeUndefined();
        await store.batch([del(b(2))]); // deleting a missing key is fine
        await store.batch([put(b(), b())]); // empty key and empty value are legal
        vitest().expect(await store.get(b())).toEqual(b());
      });
    });

    vitest().it('stored values are not aliased with caller arrays', async () => {
      await withStore(async (store) => {
        const value = b(1, 2, 3);
        await store.batch([put(b(9), value)]);
        value[0] = 99;
        const got = (await store.get(b(9)))!;
        vitest().expect(got).toEqual(b(1, 2, 3));
        got[1] = 99;
        vitest().expect(await store.get(b(9))).toEqual(b(1, 2, 3));
      });
    });

    vitest().it('getMany returns values in request order', async () => {
      await withStore(async (store) => {
        await store.batch([put(b(1), b(10)), put(b(2), b(20))]);
        vitest().expect(await store.getMany([b(2), b(3), b(1), b(2)])).toEqual([b(20), undefined, b(10), b(20)]);
        vitest().expect(await store.getMany([])).toEqual([]);
      });
    });

    vitest().it('batch applies ops in order (later wins) and atomically', async () => {
      await withStore(async (store) => {
        await store.batch([put(b(1), b(1)), put(b(1), b(2)), del(b(2)), put(b(2), b(3)), put(b(3), b(4)), del(b(3))]);
        vitest().expect(await store.getMany([b(1), b(2), b(3)])).toEqual([b(2), b(3), undefined]);
        // A batch with one bad op applies nothing.
        const bad = [put(b(5), b(5)), { kind: 'put', key: 'x', value: b(1) }] as unknown as MetaOp[];
        await expectCode(store.batch(bad), 'INVALID_ARGUMENT');
        vitest().expect(await store.get(b(5))).toBeUndefined();
        await expectCode(store.batch([{ kind: 'nope', key: b(1) }] as unknown as MetaOp[]), 'INVALID_ARGUMENT');
        await expectCode(store.batch([{ kind: 'put', key: b(1) }] as unknown as MetaOp[]), 'INVALID_ARGUMENT');
        vitest().expect(await store.get(b(1))).toEqual(b(2));
        await store.batch([]);
      });
    });

    vitest().it('INVALID_ARGUMENT for keys that are not Uint8Array', async () => {
      await withStore(async (store) => {
        await expectCode(store.get('key' as unknown as Uint8Array), 'INVALID_ARGUMENT');
        await expectCode(store.getMany([b(1), 7 as unknown as Uint8Array]), 'INVALID_ARGUMENT');
        await expectCode(store.batch([del([1, 2] as unknown as Uint8Array)]), 'INVALID_ARGUMENT');
        await expectCode(() => collect(store, { gt: 'a' as unknown as Uint8Array }), 'INVALID_ARGUMENT');
        await expectCode(() => collect(store, { limit: -1 }), 'INVALID_ARGUMENT');
      });
    });

    vitest().it('iterates in unsigned bytewise order with every range option', async () => {
      await withStore(async (store) => {
        const model = await loadEdgeKeys(store);
        const ranges: MetaRange[] = [
          {},
          { reverse: true },
          { gt: b(0) },
          { gte: b(0) },
          { lt: b(0xff) },
          { lte: b(0xff) },
          { gt: b(0), lt: b(0xff) },
          { gte: b(0, 0xff), lte: b(0x80, 0) },
          { gte: b(0x80), reverse: true },
          { gt: b(1), lt: b(1) },
          { gt: b(0xff), lte: b(0) },
          { prefix: b(0) },
          { prefix: b(0xff) },
          { prefix: b(0xff), reverse: true },
          { prefix: b(0xff, 0xff) },
          { prefix: b() },
          { prefix: b(0xff), reverse: true, limit: 2 },
          { prefix: b(0), gt: b(0, 0) },
          { prefix: b(0xff), lt: b(0xff, 0xff) },
          { limit: 3 },
          { limit: 0 },
          { reverse: true, limit: 4, lt: b(0x80) },
          { gte: b(0xfe), gt: b(0xfe, 0xff) },
          { lte: b(1), lt: b(1) },
        ];
        const all = await collect(store);
        vitest().expect(all.map(([key]) => key)).toEqual(
          ['', '00', '0000', '00ff', '01', '0100', '7f', '80', '8000', 'feff', 'ff', 'ff00', 'ffff', 'ffffff'],
        );
        for (const range of ranges) {
          vitest().expect(await collect(store, range), JSON.stringify(range, (_k, v) => (v instanceof Uint8Array ? toHex(v) : v))).toEqual(
            hexEntries(model.range(range)),
          );
        }
      });
    });

    vitest().it('iteration is a consistent view while batches happen', async () => {
      await withStore(async (store) => {
        const model = await loadEdgeKeys(store);
        const expected = hexEntries(model.range({}));
        const seen: [string, string][] = [];
        let round = 0;
        for await (const [key, value] of store.iterate()) {
          seen.push([toHex(key), toHex(value)]);
          round++;
          // Overwrite, delete and insert around the cursor, including keys not yet seen.
          await store.batch([
            put(EDGE_KEYS[(round * 5) % EDGE_KEYS.length]!, b(0xaa, round)),
            del(EDGE_KEYS[(round * 3 + 7) % EDGE_KEYS.length]!),
            put(b(0x80, round), b(round)),
          ]);
        }
        vitest().expect(seen).toEqual(expected);
        // A reverse iteration started now sees exactly the state now.
        const now = await collect(store, {});
        const reversed: [string, string][] = [];
        for await (const [key, value] of store.iterate({ reverse: true })) {
          reversed.push([toHex(key), toHex(value)]);
          await store.batch([del(key), put(b(0x42, reversed.length), b(1))]);
        }
        vitest().expect(reversed).toEqual([...now].reverse());
      });
    });

    vitest().it('stats.keyCount and liveBytes follow puts, overwrites and deletes', async () => {
      await withStore(async (store) => {
        vitest().expect((await store.stats()).keyCount).toBe(0);
        await store.batch([put(b(1), b(1, 1)), put(b(2), b(2)), put(b(1), b(1, 1, 1))]);
        let stats = await store.stats();
        vitest().expect(stats.keyCount).toBe(2);
        vitest().expect(stats.liveBytes).toBe(1 + 3 + 1 + 1);
        vitest().expect(stats.storedBytes).toBeGreaterThanOrEqual(stats.liveBytes);
        await store.batch([del(b(1)), del(b(3))]);
        stats = await store.stats();
        vitest().expect(stats.keyCount).toBe(1);
        vitest().expect(stats.liveBytes).toBe(2);
      });
    });

    vitest().it('model-based: random batches and range queries match a Map + sort model', async () => {
      await fc.assert(
        fc.asyncProperty(stepsArbitrary, async (steps) => {
          const store = await open();
          try {
            const model = new MetaStoreModel();
            for (const step of steps) {
              if (step.kind === 'batch') {
                await store.batch(step.ops);
                model.apply(step.ops);
              } else if (step.kind === 'get') {
                vitest().expect(await store.get(step.key)).toEqual(model.get(step.key));
              } else {
                vitest().expect(await collect(store, step.range)).toEqual(hexEntries(model.range(step.range)));
              }
            }
            vitest().expect(await collect(store)).toEqual(hexEntries(model.range()));
            vitest().expect((await store.stats()).keyCount).toBe(model.entries.size);
          } finally {
            await store.close();
          }
        }),
        { seed, numRuns },
      );
    });

    vitest().it('NOT_OPEN after close; close is idempotent', async () => {
      const store = await open();
      await store.batch([put(b(1), b(1))]);
      const iterator = store.iterate()[Symbol.asyncIterator]();
      await Promise.all([store.close(), store.close()]);
      await store.close();
      await expectCode(store.get(b(1)), 'NOT_OPEN');
      await expectCode(store.getMany([b(1)]), 'NOT_OPEN');
      await expectCode(store.batch([put(b(2), b(2))]), 'NOT_OPEN');
      await expectCode(store.flush(), 'NOT_OPEN');
      await expectCode(store.stats(), 'NOT_OPEN');
      await expectCode(() => collect(store), 'NOT_OPEN');
      await expectCode(iterator.next(), 'NOT_OPEN');
    });

    if (reopen !== undefined) {
      vitest().it('flushed and synced batches survive close + reopen', async () => {
        let store = await open();
        try {
          const model = await loadEdgeKeys(store);
          const more = [del(b(0)), put(b(0xff), b(7, 7)), put(b(5, 5), new Uint8Array(3000).fill(5))];
          await store.batch(more);
          model.apply(more);
          await store.flush();
          const synced = [put(b(6), b(6)), del(b(0xff, 0xff))];
          await store.batch(synced, { sync: true });
          model.apply(synced);
          store = await reopen(store);
          vitest().expect(await collect(store)).toEqual(hexEntries(model.range()));
          vitest().expect((await store.stats()).keyCount).toBe(model.entries.size);
          // And the reopened store keeps working across another restart.
          await store.batch([put(b(7), b(7))], { sync: true });
          model.apply([put(b(7), b(7))]);
          store = await reopen(store);
          vitest().expect(await collect(store)).toEqual(hexEntries(model.range()));
        } finally {
          await store.close();
        }
      });
    }
  });
}
