// Index format 2 of the DeviceExtentStore: the persisted space map, the counters, the
// constant-cost open, and every check at its trust boundary (each test below fails when
// the check it names is removed).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MetaRange, MetaStore } from '../../src/adapters/meta-store.js';
import { DeviceExtentStore } from '../../src/adapters/device-extent-store.js';
import { MemoryBlockDevice } from '../../src/adapters/memory-block-device.js';
import { MemoryMetaStore } from '../../src/adapters/memory-meta-store.js';
import { INDEX_TAG, decodeEntry } from '../../src/adapters/internal/extent-index-codec.js';
import { SpaceMap, countBits, findFreeRun, setBits } from '../../src/adapters/internal/space-map.js';
import { spaceMapKeys } from '../../src/adapters/internal/extent-store-setup.js';
import { expectSameBytes, fixtureFingerprint } from '../../src/testing/internal/extent-fixtures.js';
import { concatBytes, utf8 } from '../../src/core/bytes.js';
import { expectCode } from '../../src/testing/internal/suite-assertions.js';

const KiB = 1024;
const prefix = utf8('x/');

/** Extent bytes for id at a given length: distinct per id. */
function dataOf(id: number, byteLength: number): Uint8Array {
  const out = new Uint8Array(byteLength);
  for (let i = 0; i < byteLength; i += 997) out[i] = (id * 31 + i) & 0xff;
  if (byteLength > 0) out[0] = id & 0xff;
  return out;
}

/** A MetaStore wrapper counting the calls made through it. */
function counting(inner: MetaStore): { meta: MetaStore; calls: { get: number; getMany: number; iterate: number } } {
  const calls = { get: 0, getMany: 0, iterate: 0 };
  const meta: MetaStore = {
    get: (k, o) => (calls.get++, inner.get(k, o)),
    getMany: (k, o) => (calls.getMany++, inner.getMany(k, o)),
    batch: (ops, o) => inner.batch(ops, o),
    iterate: (r?: MetaRange, o?) => (calls.iterate++, inner.iterate(r, o)),
    flush: (o) => inner.flush(o),
    stats: () => inner.stats(),
    close: () => inner.close(),
  };
  return { meta, calls };
}

describe('bitmap helpers', () => {
  it('find runs of clear bits, skipping used bytes, within a limit', () => {
    const bits = new Uint8Array(8);
    setBits(bits, 0, 20, true);
    expect(findFreeRun(bits, 4, 0, 64)).toBe(20);
    setBits(bits, 22, 1, true);
    expect(findFreeRun(bits, 4, 0, 64)).toBe(23);
    expect(findFreeRun(bits, 42, 0, 64)).toBe(undefined);
    expect(findFreeRun(bits, 41, 0, 64)).toBe(23);
    expect(findFreeRun(bits, 4, 0, 26)).toBe(undefined);
    expect(countBits(bits, 0, 64)).toBe(21);
    expect(countBits(bits, 3, 23)).toBe(18);
  });
});

describe('SpaceMap', () => {
  it('refuses a double free of committed space as INTERNAL', async () => {
    const meta = await MemoryMetaStore.open();
    const map = new SpaceMap(meta, spaceMapKeys(prefix), { unitBytes: 4096, groupUnits: 32768, reservedUnits: 1 }, { capacityBytes: 1 << 30, usedUnits: 1, cursorGroup: 0 }, 1 << 20);
    const at = (await map.allocate(8192))!;
    const first = await map.commitOps([{ byteOffset: at, byteLength: 8192 }]);
    await meta.batch(first.ops);
    first.apply();
    await expectCode(map.commitOps([{ byteOffset: at, byteLength: 8192 }]), 'INTERNAL');
  });

  it('a malformed persisted bitmap is CORRUPTION', async () => {
    const meta = await MemoryMetaStore.open();
    const keys = spaceMapKeys(prefix);
    await meta.batch([{ kind: 'put', key: keys.bitmap(0), value: new Uint8Array(10) }]);
    const map = new SpaceMap(meta, keys, { unitBytes: 4096, groupUnits: 32768, reservedUnits: 1 }, { capacityBytes: 1 << 30, usedUnits: 1, cursorGroup: 0 }, 1 << 20);
    await expectCode(map.allocate(4096), 'CORRUPTION');
  });
});

describe('DeviceExtentStore format 2', () => {
  it('opens with a constant number of metadata reads, however many extents it holds', async () => {
    const device = await MemoryBlockDevice.create({ byteLength: 4096 });
    const inner = await MemoryMetaStore.open();
    const store = await DeviceExtentStore.open({ device, meta: inner, allocationUnitBytes: 512 });
    for (let b = 0; b < 20; b++) {
      await store.put(Array.from({ length: 250 }, (_, i) => ({ fingerprint: fixtureFingerprint(b * 250 + i), data: dataOf(b * 250 + i, 700) })));
    }
    await store.flush();
    await store.close();
    const { meta, calls } = counting(inner);
    const reopened = await DeviceExtentStore.open({ device, meta, allocationUnitBytes: 512 });
    expect(calls).toEqual({ get: 2, getMany: 0, iterate: 0 });
    expect((await reopened.stats()).extentCount).toBe(5000);
    expectSameBytes(await reopened.get(fixtureFingerprint(4321)), dataOf(4321, 700));
  });

  it('an index read that raced a delete and its commit is not cached (the commit generation guard)', async () => {
    const device = await MemoryBlockDevice.create({ byteLength: 4096 });
    const inner = await MemoryMetaStore.open();
    const fp = fixtureFingerprint(7);
    const first = await DeviceExtentStore.open({ device, meta: inner });
    await first.put([{ fingerprint: fp, data: dataOf(7, 5000) }]);
    await first.flush();
    await first.close();
    // The first getMany reads at once but answers only when released: a read that saw the
    // store before the delete's commit and returns after it.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let gated = true;
    const meta: MetaStore = {
      ...counting(inner).meta,
      getMany: async (keys, o) => {
        const values = await inner.getMany(keys, o);
        if (gated) {
          gated = false;
          await gate;
        }
        return values;
      },
    };
    const store = await DeviceExtentStore.open({ device, meta });
    const stale = store.has([fp]);
    await new Promise((r) => setTimeout(r, 0));
    await store.delete([fp]);
    await store.flush();
    release();
    expect(await stale).toEqual([true]); // advisory: it looked before the delete
    expect(await store.has([fp])).toEqual([false]);
    await expectCode(store.get(fp), 'EXTENT_NOT_FOUND');
  });

  it('a device shorter than the space the counters record is CORRUPTION (truncated or swapped)', async () => {
    const device = await MemoryBlockDevice.create({ byteLength: 4096 });
    const meta = await MemoryMetaStore.open();
    const store = await DeviceExtentStore.open({ device, meta });
    await store.put([{ fingerprint: fixtureFingerprint(1), data: dataOf(1, 64 * KiB) }]);
    await store.flush();
    await store.close();
    await device.resize(8192);
    await expectCode(DeviceExtentStore.open({ device, meta }), 'CORRUPTION');
  });

  it('a header without counters is CORRUPTION; maxExtentBytes above the space group is INVALID_ARGUMENT', async () => {
    const device = await MemoryBlockDevice.create({ byteLength: 4096 });
    const meta = await MemoryMetaStore.open();
    await (await DeviceExtentStore.open({ device, meta })).close();
    await expectCode(DeviceExtentStore.open({ device, meta, maxExtentBytes: 256 * 1024 * 1024 }), 'INVALID_ARGUMENT');
    await meta.batch([{ kind: 'del', key: concatBytes([prefix, Uint8Array.of(INDEX_TAG.counters)]) }]);
    await expectCode(DeviceExtentStore.open({ device, meta }), 'CORRUPTION');
  });

  it('model: puts, deletes, flushes and reopens across several space groups never overlap live extents or lose one', async () => {
    // 512 B units make a space group 16 MiB, so a few hundred 64-256 KiB extents span groups.
    const op = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('put' as const), ids: fc.array(fc.nat(400), { minLength: 1, maxLength: 24 }), kib: fc.integer({ min: 1, max: 256 }) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('delete' as const), ids: fc.array(fc.nat(400), { minLength: 1, maxLength: 24 }) }) },
      { weight: 2, arbitrary: fc.constant({ kind: 'flush' as const }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40 }), async (ops) => {
        const device = await MemoryBlockDevice.create({ byteLength: 4096 });
        const meta = await MemoryMetaStore.open();
        const options = { device, meta, allocationUnitBytes: 512, maxPendingIndexOps: 64, cacheBytes: 64 * KiB };
        let store = await DeviceExtentStore.open(options);
        const model = new Map<number, Uint8Array>();
        for (const o of ops) {
          if (o.kind === 'put') {
            const fresh = [...new Set(o.ids)].filter((id) => !model.has(id));
            const puts = fresh.map((id) => ({ id, data: dataOf(id, o.kib * KiB - (id % 3)) }));
            await store.put(puts.map((p) => ({ fingerprint: fixtureFingerprint(p.id), data: p.data })));
            for (const p of puts) model.set(p.id, p.data);
          } else if (o.kind === 'delete') {
            await store.delete(o.ids.map(fixtureFingerprint));
            for (const id of o.ids) model.delete(id);
          } else if (o.kind === 'flush') {
            await store.flush();
          } else {
            await store.flush();
            await store.close();
            store = await DeviceExtentStore.open(options);
          }
        }
        await store.flush();
        expect((await store.stats()).extentCount).toBe(model.size);
        for (const [id, data] of model) expectSameBytes(await store.get(fixtureFingerprint(id)), data, `extent ${id}`);
        // No two persisted entries overlap on the device, and the counters match the index.
        const ranges: [number, number][] = [];
        for await (const [, value] of meta.iterate({ prefix: concatBytes([prefix, Uint8Array.of(INDEX_TAG.entry)]) })) {
          const e = decodeEntry(value);
          if (e.byteLength > 0) ranges.push([e.byteOffset, e.byteOffset + Math.ceil(e.byteLength / 512) * 512]);
        }
        ranges.sort((a, b) => a[0] - b[0]);
        for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThanOrEqual(ranges[i - 1]![1]);
        expect(ranges.length).toBe([...model.values()].filter((d) => d.byteLength > 0).length);
        const usedBytes = ranges.reduce((n, [a, b]) => n + b - a, 0) + 4096;
        expect((await store.stats()).storedBytes).toBe(usedBytes);
        await store.close();
      }),
      { numRuns: 25, seed: 0x5ace },
    );
  });
});
