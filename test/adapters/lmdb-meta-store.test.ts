import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MetaOp, MetaStore } from '../../src/adapters/index.js';
import { LMDB_META_STORE_MAX_KEY_BYTES, LmdbMetaStore } from '../../src/adapters/node.js';
import { describeMetaStore } from '../../src/testing/index.js';
import { isDrkitError } from '../../src/core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'drkit-lmdb-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let storeIndex = 0;
const freshPath = (): string => join(dir, `store-${storeIndex++}`);

const paths = new WeakMap<MetaStore, string>();
describeMetaStore({
  name: 'LmdbMetaStore',
  numRuns: 25,
  open: async () => {
    const path = freshPath();
    const store = await LmdbMetaStore.open({ path, create: true });
    paths.set(store, path);
    return store;
  },
  reopen: async (store) => {
    const path = paths.get(store)!;
    await store.close();
    const next = await LmdbMetaStore.open({ path });
    paths.set(next, path);
    return next;
  },
});

const b = (...bytes: number[]): Uint8Array => Uint8Array.from(bytes);
const put = (key: Uint8Array, value: Uint8Array): MetaOp => ({ kind: 'put', key, value });
const del = (key: Uint8Array): MetaOp => ({ kind: 'del', key });
const codeOf = async (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (e: unknown) => (isDrkitError(e) ? e.code : `foreign: ${String(e)}`),
  );

async function entries(store: MetaStore): Promise<[Uint8Array, Uint8Array][]> {
  const out: [Uint8Array, Uint8Array][] = [];
  for await (const entry of store.iterate()) out.push(entry);
  return out;
}

describe('LmdbMetaStore specifics', () => {
  it(`refuses keys over ${LMDB_META_STORE_MAX_KEY_BYTES} bytes with INVALID_ARGUMENT naming the bound`, async () => {
    const store = await LmdbMetaStore.open({ path: freshPath(), create: true });
    try {
      const longest = new Uint8Array(LMDB_META_STORE_MAX_KEY_BYTES).fill(0xff);
      await store.batch([put(longest, b(1))]);
      expect(await store.get(longest)).toEqual(b(1));
      const tooLong = new Uint8Array(LMDB_META_STORE_MAX_KEY_BYTES + 1).fill(0xff);
      const err = await store.batch([put(b(2), b(2)), put(tooLong, b(1))]).catch((e: unknown) => e);
      expect(isDrkitError(err, 'INVALID_ARGUMENT')).toBe(true);
      expect((err as Error).message).toContain(String(LMDB_META_STORE_MAX_KEY_BYTES));
      expect((err as { data: { limitBytes: number } }).data.limitBytes).toBe(LMDB_META_STORE_MAX_KEY_BYTES);
      expect(await store.get(b(2))).toBeUndefined(); // nothing of the refused batch applied
      expect(await codeOf(store.get(tooLong))).toBe('INVALID_ARGUMENT');
      expect(await codeOf(store.getMany([b(1), tooLong]))).toBe('INVALID_ARGUMENT');
      // Range bounds may be longer than any key: they are exact.
      const collectKeys = async (range: Parameters<MetaStore['iterate']>[0]): Promise<number[]> => {
        const out: number[] = [];
        for await (const [key] of store.iterate(range)) out.push(key.length);
        return out;
      };
      await store.batch([put(b(0xff), b(3))]);
      expect(await collectKeys({ gte: tooLong })).toEqual([]);
      expect(await collectKeys({ lt: tooLong })).toEqual([1, LMDB_META_STORE_MAX_KEY_BYTES]);
      expect(await collectKeys({ lte: tooLong, reverse: true })).toEqual([LMDB_META_STORE_MAX_KEY_BYTES, 1]);
      expect(await collectKeys({ gt: b(0xff), lt: tooLong })).toEqual([LMDB_META_STORE_MAX_KEY_BYTES]);
      expect(await collectKeys({ prefix: tooLong })).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('round-trips the empty key, ordered before every other key, across reopen', async () => {
    const path = freshPath();
    let store = await LmdbMetaStore.open({ path, create: true });
    await store.batch([put(b(0), b(2)), put(b(), b(1)), put(b(0xff), b())], { sync: true });
    expect(await store.get(b())).toEqual(b(1));
    await store.close();
    store = await LmdbMetaStore.open({ path });
    expect((await entries(store)).map(([k, v]) => [[...k], [...v]])).toEqual([[[], [1]], [[0], [2]], [[0xff], []]]);
    await store.batch([del(b())]);
    expect(await store.get(b())).toBeUndefined();
    await store.close();
  });

  it('returns fresh plain Uint8Array copies of keys and values', async () => {
    const store = await LmdbMetaStore.open({ path: freshPath(), create: true });
    try {
      await store.batch([put(b(1), b(10, 11)), put(b(2), b(20, 21))]);
      const v1 = (await store.get(b(1)))!;
      const v2 = (await store.get(b(2)))!; // a second read must not overwrite the first (lmdb-js reuses a buffer)
      expect(v1).toEqual(b(10, 11));
      expect(Object.getPrototypeOf(v1)).toBe(Uint8Array.prototype);
      v1[0] = 99;
      v2[0] = 99;
      expect(await store.getMany([b(1), b(2)])).toEqual([b(10, 11), b(20, 21)]);
      const all = await entries(store);
      expect(all.map(([k, v]) => [[...k], [...v]])).toEqual([[[1], [10, 11]], [[2], [20, 21]]]);
      for (const [k, v] of all) {
        expect(Object.getPrototypeOf(k)).toBe(Uint8Array.prototype);
        k[0] = 7;
        v[0] = 7;
      }
      expect((await entries(store)).map(([k, v]) => [[...k], [...v]])).toEqual([[[1], [10, 11]], [[2], [20, 21]]]);
      // A value mutated after batch() was called but before it resolved is stored as it was.
      const value = b(5, 5);
      const pending = store.batch([put(b(3), value)]);
      value[0] = 0;
      await pending;
      expect(await store.get(b(3))).toEqual(b(5, 5));
    } finally {
      await store.close();
    }
  });

  it('keeps stats exact through overwrites, deletes, failed batches and reopen', async () => {
    const path = freshPath();
    let store = await LmdbMetaStore.open({ path, create: true });
    const model = new Map<string, number>();
    const apply = (ops: MetaOp[]): void => {
      for (const op of ops) {
        const k = Buffer.from(op.key).toString('hex');
        if (op.kind === 'put') model.set(k, op.key.length + op.value.length);
        else model.delete(k);
      }
    };
    const expectStats = async (): Promise<void> => {
      const stats = await store.stats();
      expect(stats.keyCount).toBe(model.size);
      expect(stats.liveBytes).toBe([...model.values()].reduce((a, n) => a + n, 0));
      expect(stats.storedBytes).toBeGreaterThanOrEqual(stats.liveBytes);
    };
    for (let round = 0; round < 20; round++) {
      const ops: MetaOp[] = [];
      for (let i = 0; i < 30; i++) {
        const key = b(i % 7, (i * round) % 5);
        ops.push((i + round) % 4 === 0 ? del(key) : put(key, new Uint8Array((i * 31 + round * 17) % 900)));
      }
      // Concurrent batches in one turn share a transaction; each keeps its own deltas.
      await Promise.all([store.batch(ops), store.batch(ops.slice(0, 10).reverse())]);
      apply(ops);
      apply(ops.slice(0, 10).reverse());
      await expectStats();
    }
    await store.close();
    store = await LmdbMetaStore.open({ path });
    await expectStats();
    expect((await entries(store)).length).toBe(model.size);
    await store.close();
  });

  it('group commit: 100 concurrent sync batches share a few LMDB transactions', async () => {
    const store = await LmdbMetaStore.open({ path: freshPath(), create: true });
    try {
      const before = (await store.stats()).lastTxnId;
      await Promise.all(Array.from({ length: 100 }, (_, i) => store.batch([put(b(i), b(i))], { sync: true })));
      const grouped = (await store.stats()).lastTxnId - before;
      expect(await store.getMany([b(0), b(99)])).toEqual([b(0), b(99)]);
      // Each LMDB transaction costs at most one sync; 100 batches in one turn must not cost 100.
      expect(grouped).toBeGreaterThanOrEqual(1);
      expect(grouped).toBeLessThanOrEqual(2);
      // The same batches one after another do cost one transaction each (the counter is meaningful).
      const start = (await store.stats()).lastTxnId;
      for (let i = 0; i < 10; i++) await store.batch([put(b(i), b(i, i))], { sync: true });
      expect((await store.stats()).lastTxnId - start).toBe(10);
    } finally {
      await store.close();
    }
  });

  it('a failing batch in a group leaves the others committed', async () => {
    const store = await LmdbMetaStore.open({ path: freshPath(), create: true });
    try {
      const results = await Promise.allSettled([
        store.batch([put(b(1), b(1))]),
        store.batch([put(b(2), b(2)), { kind: 'put', key: b(3) } as unknown as MetaOp]),
        store.batch([put(b(4), b(4))]),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(await store.getMany([b(1), b(2), b(4)])).toEqual([b(1), undefined, b(4)]);
      expect((await store.stats()).keyCount).toBe(2);
    } finally {
      await store.close();
    }
  });

  it('NOT_FOUND without create; CORRUPTION for a foreign environment; BUSY for a second open', async () => {
    const path = freshPath();
    expect(await codeOf(LmdbMetaStore.open({ path }))).toBe('NOT_FOUND');
    const store = await LmdbMetaStore.open({ path, create: true });
    expect(await codeOf(LmdbMetaStore.open({ path, create: true }))).toBe('BUSY');
    await store.close();
    await (await LmdbMetaStore.open({ path })).close();
    const garbage = freshPath();
    mkdirSync(garbage);
    writeFileSync(join(garbage, 'data.mdb'), new Uint8Array(64 * 1024).fill(0x5a));
    expect(await codeOf(LmdbMetaStore.open({ path: garbage }))).toBe('CORRUPTION');
    expect(await codeOf(LmdbMetaStore.open({ path: '' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(LmdbMetaStore.open({ path, mapSizeBytes: -1 }))).toBe('INVALID_ARGUMENT');
  });

  it('close is idempotent, waits for in-flight batches, then every call is NOT_OPEN', async () => {
    const path = freshPath();
    const store = await LmdbMetaStore.open({ path, create: true });
    await store.batch([put(b(1), b(1)), put(b(2), b(2)), put(b(3), b(3))]);
    const iterator = store.iterate()[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.[0]).toEqual(b(1));
    const inFlight = store.batch([put(b(9), b(9))]);
    await Promise.all([store.close(), store.close()]);
    await inFlight;
    await store.close();
    expect(await codeOf(iterator.next())).toBe('NOT_OPEN'); // not a silent end of iteration
    expect(await codeOf(store.get(b(1)))).toBe('NOT_OPEN');
    expect(await codeOf(store.batch([put(b(2), b(2))]))).toBe('NOT_OPEN');
    expect(await codeOf(store.flush())).toBe('NOT_OPEN');
    expect(await codeOf(store.stats())).toBe('NOT_OPEN');
    const again = await LmdbMetaStore.open({ path });
    expect(await again.get(b(9))).toEqual(b(9));
    await again.close();
  });

  it('releases the read transaction when a consumer breaks out early', async () => {
    const store = await LmdbMetaStore.open({ path: freshPath(), create: true });
    try {
      await store.batch(Array.from({ length: 50 }, (_, i) => put(b(i), b(i))));
      for (let round = 0; round < 200; round++) {
        for await (const [key] of store.iterate({ gte: b(round % 50) })) if (key[0]! >= 0) break;
      }
      expect((store as unknown as { pins: Set<unknown> }).pins.size).toBe(0);
      await store.batch([put(b(200), b(1))]);
      expect((await store.stats()).keyCount).toBe(51);
    } finally {
      await store.close();
    }
  });
});
