/**
 * Conformance suite for the ExtentStore contract (src/adapters/extent-store.ts). Run it
 * against every store you ship or write:
 *
 * ```ts
 * import { describeExtentStore } from 'drkit/testing';
 * describeExtentStore({ name: 'MyStore', open: () => MyStore.open(...) });
 * ```
 */
import { rejection, expectCode } from './internal/suite-assertions.js';
import { vitest } from './internal/vitest-api.js';
import type { ExtentStore } from '../adapters/extent-store.js';
import { loadXxh64 } from '../core/checksum.js';
import { ExtentCodec } from '../dedup/codec.js';
import { toHex } from '../core/bytes.js';
import { isDrkitError } from '../core/errors.js';
import { expectSameBytes, fixtureData, fixtureExtent, fixtureFingerprint } from './internal/extent-fixtures.js';
import { runExtentStoreModel } from './internal/extent-store-model.js';

/** Options of {@link describeExtentStore}. */
export interface ExtentStoreSuiteOptions {
  /** Suite title. */
  name: string;
  /** Opens a new, empty store on fresh media. */
  open: () => Promise<ExtentStore>;
  /**
   * Closes `store` and opens a new handle on the same media, as after a restart. When
   * given, the suite checks that flushed puts and deletes survive.
   */
  reopen?: (store: ExtentStore) => Promise<ExtentStore>;
  /**
   * Damages the stored bytes of the extent `fingerprint` (e.g. flips a bit on the device)
   * so its next read must reject with `CORRUPTION`. When given, the suite checks that.
   */
  corrupt?: (store: ExtentStore, fingerprint: Uint8Array) => Promise<void>;
  /** Seed of the model-based property. @defaultValue 0x5eed */
  seed?: number;
  /** Runs of the model-based property. @defaultValue 50 */
  numRuns?: number;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}

/**
 * Declares a vitest suite that checks a store against the ExtentStore contract:
 * round trips, dedup, has/getMany/list semantics, checksum verification, argument
 * validation, NOT_OPEN after close, a model-based property against a Map, and (with
 * `reopen`) durability of flushed puts and deletes.
 */
export function describeExtentStore(options: ExtentStoreSuiteOptions): void {
  const { open, reopen, corrupt } = options;

  /** Runs `fn` on a fresh store and closes whatever store it ends with. */
  async function withStore(fn: (ctx: { store: ExtentStore }) => Promise<void>): Promise<void> {
    const ctx = { store: await open() };
    try {
      await fn(ctx);
    } finally {
      await ctx.store.close();
    }
  }

  vitest().describe(`ExtentStore conformance: ${options.name}`, () => {
    vitest().it('declares capabilities', () =>
      withStore(async ({ store }) => {
        vitest().expect(typeof store.capabilities.durableFlush).toBe('boolean');
        vitest().expect(Number.isSafeInteger(store.capabilities.maxExtentBytes)).toBe(true);
        vitest().expect(store.capabilities.maxExtentBytes).toBeGreaterThanOrEqual(64 * 1024);
      }));

    vitest().it('round-trips extents of many lengths, including empty and maxExtentBytes', () =>
      withStore(async ({ store }) => {
        const extents = Array.from({ length: 10 }, (_, id) => fixtureExtent(id));
        const biggest = fixtureExtent(99, store.capabilities.maxExtentBytes);
        await store.put([...extents, biggest]);
        for (const e of [...extents, biggest]) expectSameBytes(await store.get(e.fingerprint), e.data);
      }));

    vitest().it('keeps its own copy: callers may mutate inputs and results', () =>
      withStore(async ({ store }) => {
        const e = fixtureExtent(3, 1000);
        const data = e.data.slice();
        await store.put([{ fingerprint: e.fingerprint, data }]);
        data.fill(0);
        const got = await store.get(e.fingerprint);
        expectSameBytes(got, e.data);
        got.fill(0);
        expectSameBytes(await store.get(e.fingerprint), e.data);
      }));

    vitest().it('keeps its own copy of a stored form: callers may reuse every buffer once put settles', () =>
      withStore(async ({ store }) => {
        const xxh = await loadXxh64();
        const codec = await ExtentCodec.open();
        const content = new Uint8Array(16384).map((_, i) => 97 + ((i * 7) % 13)); // compresses
        const encoded = codec.compress(content);
        vitest().expect(encoded.codec).not.toBe(0);
        const fingerprint = fixtureFingerprint(9).slice();
        const data = content.slice();
        const bytes = encoded.bytes.slice();
        await store.put([{ fingerprint, data, checksum: xxh.hash(content), stored: { codec: encoded.codec, bytes } }]);
        fingerprint.fill(0);
        data.fill(0);
        bytes.fill(0);
        expectSameBytes(await store.get(fixtureFingerprint(9)), content);
        const [kept] = store.getStored === undefined ? [undefined] : await store.getStored([fixtureFingerprint(9)]);
        if (kept !== undefined) expectSameBytes(codec.decompress(kept.codec, kept.bytes, kept.rawLength), content);
      }));

    vitest().it('stores a fingerprint once (dedup within and across calls) and counts it once', () =>
      withStore(async ({ store }) => {
        const a = fixtureExtent(1, 5000);
        const b = fixtureExtent(2, 300);
        await store.put([a, a, b]);
        await store.put([a]);
        const stats = await store.stats();
        vitest().expect(stats.extentCount).toBe(2);
        vitest().expect(stats.extentBytes).toBe(5300);
        vitest().expect(stats.storedBytes).toBeGreaterThanOrEqual(stats.extentBytes);
        vitest().expect(stats.freeBytes).toBeGreaterThanOrEqual(0);
        expectSameBytes(await store.get(a.fingerprint), a.data);
      }));

    vitest().it('answers has() for a batch in request order', () =>
      withStore(async ({ store }) => {
        await store.put([fixtureExtent(1), fixtureExtent(3)]);
        const ask = [1, 2, 3, 1, 4].map(fixtureFingerprint);
        vitest().expect(await store.has(ask)).toEqual([true, false, true, true, false]);
        vitest().expect(await store.has([])).toEqual([]);
      }));

    vitest().it('deletes: then EXTENT_NOT_FOUND, has false, stats down; absent ones ignored', () =>
      withStore(async ({ store }) => {
        await store.put([fixtureExtent(1, 4096), fixtureExtent(2, 10)]);
        await store.delete([fixtureFingerprint(1), fixtureFingerprint(7)]);
        await expectCode(store.get(fixtureFingerprint(1)), 'EXTENT_NOT_FOUND');
        vitest().expect(await store.has([fixtureFingerprint(1), fixtureFingerprint(2)])).toEqual([false, true]);
        const stats = await store.stats();
        vitest().expect(stats.extentCount).toBe(1);
        vitest().expect(stats.extentBytes).toBe(10);
        await store.put([fixtureExtent(1, 4096)]);
        expectSameBytes(await store.get(fixtureFingerprint(1)), fixtureData(1, 4096));
      }));

    vitest().it('getMany returns request order (duplicates allowed) and rejects on a missing one', () =>
      withStore(async ({ store }) => {
        const ids = [4, 8, 5, 9];
        await store.put(ids.map((id) => fixtureExtent(id)));
        const order = [9, 4, 9, 8, 5];
        const got = await store.getMany(order.map(fixtureFingerprint));
        vitest().expect(got.length).toBe(order.length);
        got.forEach((bytes, i) => expectSameBytes(bytes, fixtureData(order[i]!), `getMany[${i}]`));
        vitest().expect(await store.getMany([])).toEqual([]);
        await expectCode(store.getMany([fixtureFingerprint(4), fixtureFingerprint(6)]), 'EXTENT_NOT_FOUND');
      }));

    vitest().it('lists every extent in unsigned fingerprint order with length and xxh64', () =>
      withStore(async ({ store }) => {
        const xxh = await loadXxh64();
        const fps = [[0x02], [0x01, 0x00], [0xff, 0x00, 0x01], [0x01], [0x80]].map((b) => new Uint8Array(b));
        await store.put(fps.map((fingerprint, i) => ({ fingerprint, data: fixtureData(i, i * 700) })));
        const listed = await collect(store.list());
        vitest().expect(listed.map((e) => toHex(e.fingerprint))).toEqual(['01', '0100', '02', '80', 'ff0001']);
        for (const info of listed) {
          const i = fps.findIndex((fp) => toHex(fp) === toHex(info.fingerprint));
          vitest().expect(info.byteLength).toBe(i * 700);
          vitest().expect(info.checksum).toBe(xxh.hash(fixtureData(i, i * 700)));
        }
      }));

    vitest().it('verifies a given checksum: a mismatch rejects CORRUPTION and stores nothing of the call', () =>
      withStore(async ({ store }) => {
        const xxh = await loadXxh64();
        const good = fixtureExtent(1, 2000);
        const bad = fixtureExtent(2, 2000);
        await expectCode(store.put([{ ...good, checksum: xxh.hash(good.data) }, { ...bad, checksum: xxh.hash(bad.data) ^ 1n }]), 'CORRUPTION');
        vitest().expect(await store.has([good.fingerprint, bad.fingerprint])).toEqual([false, false]);
        vitest().expect((await store.stats()).extentCount).toBe(0);
        await store.put([{ ...good, checksum: xxh.hash(good.data) }]);
        expectSameBytes(await store.get(good.fingerprint), good.data);
      }));

    vitest().it('rejects bad fingerprints, data and sizes with INVALID_ARGUMENT', () =>
      withStore(async ({ store }) => {
        const bads: unknown[] = [new Uint8Array(0), new Uint8Array(65), 'abc', undefined, [1, 2]];
        const data = new Uint8Array(10);
        for (const fp of bads) {
          const f = fp as Uint8Array;
          await expectCode(store.put([{ fingerprint: f, data }]), 'INVALID_ARGUMENT');
          await expectCode(store.get(f), 'INVALID_ARGUMENT');
          await expectCode(store.getMany([f]), 'INVALID_ARGUMENT');
          await expectCode(store.has([f]), 'INVALID_ARGUMENT');
          await expectCode(store.delete([f]), 'INVALID_ARGUMENT');
        }
        const fp = fixtureFingerprint(1);
        await store.put([{ fingerprint: new Uint8Array(64), data }]); // 64 bytes is the limit, accepted
        await expectCode(store.put([{ fingerprint: fp, data: 'x' as unknown as Uint8Array }]), 'INVALID_ARGUMENT');
        await expectCode(store.put([{ fingerprint: fp, data: new Uint8Array(store.capabilities.maxExtentBytes + 1) }]), 'INVALID_ARGUMENT');
        await expectCode(store.put([{ fingerprint: fp, data, checksum: 5 as unknown as bigint }]), 'INVALID_ARGUMENT');
        await expectCode(store.put(null as unknown as []), 'INVALID_ARGUMENT');
        await expectCode(store.has('x' as unknown as []), 'INVALID_ARGUMENT');
        vitest().expect(await store.has([fp])).toEqual([false]);
      }));

    vitest().it('rejects with ABORTED when the signal is already aborted', () =>
      withStore(async ({ store }) => {
        const signal = AbortSignal.abort();
        await expectCode(store.put([fixtureExtent(1)], { signal }), 'ABORTED');
        await expectCode(store.get(fixtureFingerprint(1), { signal }), 'ABORTED');
        await expectCode(store.flush({ signal }), 'ABORTED');
        vitest().expect(await store.has([fixtureFingerprint(1)])).toEqual([false]);
      }));

    vitest().it('serves concurrent puts and gets', () =>
      withStore(async ({ store }) => {
        const batches = [0, 1, 2, 3].map((b) => Array.from({ length: 8 }, (_, i) => fixtureExtent(b * 8 + i)));
        await Promise.all(batches.map((batch) => store.put(batch)));
        const all = batches.flat();
        const got = await Promise.all(all.map((e) => store.get(e.fingerprint)));
        got.forEach((bytes, i) => expectSameBytes(bytes, all[i]!.data));
        await Promise.all([store.delete([all[0]!.fingerprint]), store.flush(), store.put([fixtureExtent(40)])]);
        vitest().expect(await store.has([all[0]!.fingerprint, fixtureFingerprint(40)])).toEqual([false, true]);
      }));

    vitest().it('rejects every call with NOT_OPEN after close, and close is idempotent', async () => {
      const store = await open();
      await store.put([fixtureExtent(1)]);
      await store.close();
      await store.close();
      const fp = fixtureFingerprint(1);
      await expectCode(store.put([fixtureExtent(2)]), 'NOT_OPEN');
      await expectCode(store.get(fp), 'NOT_OPEN');
      await expectCode(store.getMany([fp]), 'NOT_OPEN');
      await expectCode(store.has([fp]), 'NOT_OPEN');
      await expectCode(store.delete([fp]), 'NOT_OPEN');
      await expectCode(collect(store.list()), 'NOT_OPEN');
      await expectCode(store.stats(), 'NOT_OPEN');
      await expectCode(store.flush(), 'NOT_OPEN');
    });

    if (corrupt) {
      vitest().it('rejects a damaged extent with CORRUPTION naming it, and still serves the others', () =>
        withStore(async ({ store }) => {
          const a = fixtureExtent(1, 6000);
          const b = fixtureExtent(2, 6000);
          await store.put([a, b]);
          await store.flush();
          await corrupt(store, a.fingerprint);
          const err = await rejection(store.get(a.fingerprint));
          vitest().expect(isDrkitError(err, 'CORRUPTION'), String(err)).toBe(true);
          vitest().expect((err as { data: Record<string, unknown> }).data.fingerprint).toBe(toHex(a.fingerprint));
          await expectCode(store.getMany([b.fingerprint, a.fingerprint]), 'CORRUPTION');
          expectSameBytes(await store.get(b.fingerprint), b.data);
        }));
    }

    if (reopen) {
      vitest().it('keeps flushed puts and deletes across a reopen', () =>
        withStore(async (ctx) => {
          const ids = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
          await ctx.store.put(ids.map((id) => fixtureExtent(id)));
          await ctx.store.flush();
          await ctx.store.delete([fixtureFingerprint(3), fixtureFingerprint(8)]);
          await ctx.store.flush();
          const before = await ctx.store.stats();
          ctx.store = await reopen(ctx.store);
          for (const id of ids) {
            if (id === 3 || id === 8) await expectCode(ctx.store.get(fixtureFingerprint(id)), 'EXTENT_NOT_FOUND');
            else expectSameBytes(await ctx.store.get(fixtureFingerprint(id)), fixtureData(id));
          }
          const after = await ctx.store.stats();
          vitest().expect(after.extentCount).toBe(before.extentCount);
          vitest().expect(after.extentBytes).toBe(before.extentBytes);
          vitest().expect((await collect(ctx.store.list())).length).toBe(8);
          // The store stays writable after reopening, without disturbing what is there.
          await ctx.store.put([fixtureExtent(3), fixtureExtent(50, 30_000)]);
          for (const id of ids.filter((id) => id !== 8)) expectSameBytes(await ctx.store.get(fixtureFingerprint(id)), fixtureData(id));
          expectSameBytes(await ctx.store.get(fixtureFingerprint(50)), fixtureData(50, 30_000));
        }));
    }

    vitest().it('matches a Map model under random put/delete/get/has/list/flush' + (reopen ? '/reopen' : ''), () =>
      runExtentStoreModel({ open, reopen, seed: options.seed ?? 0x5eed, numRuns: options.numRuns ?? 50 }));
  });
}
