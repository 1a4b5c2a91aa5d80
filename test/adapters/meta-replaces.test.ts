// The `replaces` hint of MetaOp: what a caller knows a key held before its op. The stores
// that hold their data in memory (MemoryMetaStore, LogMetaStore) check it and refuse a
// wrong one before applying anything; LmdbMetaStore trusts it for its counters instead of
// reading the key. Model-based: random batches over a small key space, with hints taken
// from a Map model (earlier ops of the same batch included), must leave every store's
// stats equal to the model's. fast-check prints the seed; rerun with DRKIT_SEED=<seed>.
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogMetaStore, MemoryBlockDevice, MemoryMetaStore, type MetaOp, type MetaStore } from '../../src/adapters/index.js';
import { LmdbMetaStore } from '../../src/adapters/node.js';
import { bytesToKey } from '../../src/core/bytes.js';
import { isDrkitError } from '../../src/core/errors.js';

const seed = process.env.DRKIT_SEED === undefined ? 20261203 : Number(process.env.DRKIT_SEED);
const dir = mkdtempSync(join(tmpdir(), 'drkit-replaces-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;

const stores: { name: string; checks: boolean; open: () => Promise<MetaStore> }[] = [
  { name: 'MemoryMetaStore', checks: true, open: () => MemoryMetaStore.open() },
  { name: 'LogMetaStore', checks: true, open: async () => LogMetaStore.open({ device: await MemoryBlockDevice.create({ byteLength: 256 * 1024 }) }) },
  { name: 'LmdbMetaStore', checks: false, open: () => LmdbMetaStore.open({ path: join(dir, `s${++seq}`), create: true }) },
];

const b = (...bytes: number[]) => new Uint8Array(bytes);

async function expectCode(promise: Promise<unknown>, code: string): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isDrkitError(err) ? err.code : err).toBe(code);
  return err as Error;
}

/** A batch as op descriptions: key index, value length (undefined = delete), whether to pass the hint. */
type OpSpec = { key: number; valueBytes: number | undefined; hint: boolean };
const opArb: fc.Arbitrary<OpSpec> = fc.record({
  key: fc.integer({ min: 0, max: 5 }),
  valueBytes: fc.option(fc.integer({ min: 0, max: 9 }), { nil: undefined, freq: 3 }),
  hint: fc.boolean(),
});

/** Builds the batch's ops with hints from `model` (updated as the ops apply). */
function opsOf(specs: readonly OpSpec[], model: Map<string, number>): MetaOp[] {
  return specs.map((spec) => {
    const key = b(0x6b, spec.key);
    const held = model.get(bytesToKey(key));
    const replaces = held === undefined ? null : held;
    if (spec.valueBytes === undefined) model.delete(bytesToKey(key));
    else model.set(bytesToKey(key), spec.valueBytes);
    const base = spec.valueBytes === undefined ? ({ kind: 'del', key } as const) : ({ kind: 'put', key, value: new Uint8Array(spec.valueBytes).fill(7) } as const);
    return spec.hint ? { ...base, replaces } : base;
  });
}

for (const s of stores) {
  describe(`${s.name}: replaces hints`, () => {
    it('correct hints, within a batch too, keep stats exact (model-based)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.array(opArb, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 12 }), async (batches) => {
          const store = await s.open();
          try {
            const model = new Map<string, number>();
            for (const specs of batches) {
              await store.batch(opsOf(specs, model));
              const stats = await store.stats();
              const liveBytes = [...model].reduce((n, [k, v]) => n + k.length + v, 0);
              expect({ keyCount: stats.keyCount, liveBytes: stats.liveBytes }).toEqual({ keyCount: model.size, liveBytes });
            }
          } finally {
            await store.close();
          }
        }),
        { seed, numRuns: s.checks ? 60 : 25 },
      );
    });

    it('a hint that is not a byte length or null is INVALID_ARGUMENT', async () => {
      const store = await s.open();
      try {
        for (const replaces of [-1, 1.5, '4', Number.NaN]) {
          await expectCode(store.batch([{ kind: 'put', key: b(1), value: b(2), replaces } as unknown as MetaOp]), 'INVALID_ARGUMENT');
        }
        expect((await store.stats()).keyCount).toBe(0);
      } finally {
        await store.close();
      }
    });

    if (s.checks) {
      it('a wrong hint is refused before any op of its batch applies', async () => {
        const store = await s.open();
        try {
          await store.batch([{ kind: 'put', key: b(1), value: b(1, 2, 3) }]);
          const wrong: MetaOp[][] = [
            [{ kind: 'put', key: b(2), value: b(9), replaces: 3 }], // absent, said present
            [{ kind: 'put', key: b(1), value: b(9), replaces: null }], // present, said absent
            [{ kind: 'put', key: b(1), value: b(9), replaces: 2 }], // wrong length
            [{ kind: 'del', key: b(1), replaces: null }],
            // The hint must see the batch's earlier ops: key 1 holds 1 byte after the first.
            [{ kind: 'put', key: b(2), value: b(5) }, { kind: 'put', key: b(1), value: b(4) }, { kind: 'put', key: b(1), value: b(4, 4), replaces: 3 }],
          ];
          for (const ops of wrong) {
            const err = await expectCode(store.batch(ops), 'INVALID_ARGUMENT');
            expect(err.message).toMatch(/replaces/);
            expect(await store.get(b(1))).toEqual(b(1, 2, 3));
            expect(await store.get(b(2))).toBeUndefined();
          }
          await store.batch([{ kind: 'put', key: b(1), value: b(4), replaces: 3 }, { kind: 'put', key: b(1), value: b(4, 4), replaces: 1 }, { kind: 'del', key: b(1), replaces: 2 }]);
          expect(await store.stats()).toMatchObject({ keyCount: 0, liveBytes: 0 });
        } finally {
          await store.close();
        }
      });
    }
  });
}
