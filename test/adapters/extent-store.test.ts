import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlockDevice } from '../../src/adapters/block-device.js';
import type { ExtentStore } from '../../src/adapters/extent-store.js';
import type { MetaStore } from '../../src/adapters/meta-store.js';
import { DeviceExtentStore, type DeviceExtentStoreOptions } from '../../src/adapters/device-extent-store.js';
import { MemoryExtentStore } from '../../src/adapters/memory-extent-store.js';
import { MemoryBlockDevice } from '../../src/adapters/memory-block-device.js';
import { MemoryMetaStore } from '../../src/adapters/memory-meta-store.js';
import { LogMetaStore } from '../../src/adapters/log-meta-store.js';
import { RawFileBlockDevice } from '../../src/adapters/raw-file-block-device.js';
import { LmdbMetaStore } from '../../src/adapters/lmdb-meta-store.js';
import { INDEX_TAG, decodeEntry } from '../../src/adapters/internal/extent-index-codec.js';
import { expectSameBytes, fixtureData, fixtureExtent, fixtureFingerprint } from '../../src/testing/internal/extent-fixtures.js';
import { describeExtentStore } from '../../src/testing/describe-extent-store.js';
import { concatBytes, utf8 } from '../../src/core/bytes.js';
import { isDrkitError } from '../../src/core/errors.js';

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return isDrkitError(err) ? err.code : String(err);
  }
}

// ---- conformance -------------------------------------------------------------------

describeExtentStore({
  name: 'MemoryExtentStore',
  open: () => MemoryExtentStore.open(),
  corrupt: async (store, fingerprint) => (store as MemoryExtentStore).corruptForTesting(fingerprint, 13),
});

/** What a DeviceExtentStore under test sits on, so reopen/corrupt can reach it. */
interface Backing {
  device: BlockDevice;
  meta: MetaStore;
  reopenMedia?: () => Promise<{ device: BlockDevice; meta: MetaStore }>;
}
const backings = new WeakMap<ExtentStore, Backing>();

async function openOn(backing: Backing, extra: Partial<DeviceExtentStoreOptions> = {}): Promise<DeviceExtentStore> {
  const store = await DeviceExtentStore.open({ device: backing.device, meta: backing.meta, ...extra });
  backings.set(store, backing);
  return store;
}

/** The device location of an extent, read from the index in the MetaStore (its on-disk format). */
async function locate(meta: MetaStore, fingerprint: Uint8Array, prefix = 'x/') {
  const value = await meta.get(concatBytes([utf8(prefix), Uint8Array.of(INDEX_TAG.entry), fingerprint]));
  expect(value, 'index entry').toBeDefined();
  return decodeEntry(value!);
}

/** Flips bits of one byte, reading and writing the whole aligned block around it. */
async function flipBit(device: BlockDevice, byteOffset: number, mask = 0x10): Promise<void> {
  const align = device.capabilities.alignmentBytes;
  const blockOffset = byteOffset - (byteOffset % align);
  const b = await device.read(blockOffset, align);
  b[byteOffset - blockOffset]! ^= mask;
  await device.write(blockOffset, b);
}

const deviceSuiteHooks = {
  reopen: async (store: ExtentStore) => {
    let backing = backings.get(store)!;
    await store.close();
    if (backing.reopenMedia) backing = { ...backing, ...(await backing.reopenMedia()) };
    return openOn(backing);
  },
  corrupt: async (store: ExtentStore, fingerprint: Uint8Array) => {
    const { device, meta } = backings.get(store)!;
    const e = await locate(meta, fingerprint);
    await flipBit(device, e.byteOffset + Math.floor(e.byteLength / 2));
  },
};

describeExtentStore({
  name: 'DeviceExtentStore over MemoryBlockDevice + MemoryMetaStore',
  open: async () => openOn({ device: await MemoryBlockDevice.create({ byteLength: 64 * 1024 }), meta: await MemoryMetaStore.open() }),
  ...deviceSuiteHooks,
});

describeExtentStore({
  name: 'DeviceExtentStore over an aligned (4 KiB) MemoryBlockDevice',
  open: async () =>
    openOn({ device: await MemoryBlockDevice.create({ byteLength: 64 * 1024, alignmentBytes: 4096 }), meta: await MemoryMetaStore.open() }),
  ...deviceSuiteHooks,
  numRuns: 10,
});

const tmp = mkdtempSync(join(tmpdir(), 'drkit-extent-store-'));
const toClose: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const c of toClose) await c.close();
  rmSync(tmp, { recursive: true, force: true });
});
let fileCounter = 0;

describeExtentStore({
  name: 'DeviceExtentStore over RawFileBlockDevice + MemoryMetaStore',
  open: async () => {
    const path = join(tmp, `data-${fileCounter++}`);
    let device = await RawFileBlockDevice.open({ path, create: { byteLength: 64 * 1024 } });
    toClose.push(device);
    const meta = await MemoryMetaStore.open();
    return openOn({
      device,
      meta,
      // A restart: the data file is closed and opened again (the memory index survives in-process).
      reopenMedia: async () => {
        await device.close();
        device = await RawFileBlockDevice.open({ path });
        toClose.push(device);
        return { device, meta };
      },
    });
  },
  ...deviceSuiteHooks,
  numRuns: 10,
});

describeExtentStore({
  name: 'DeviceExtentStore over RawFileBlockDevice + LogMetaStore (temp files)',
  open: async () => {
    const n = fileCounter++;
    const dataPath = join(tmp, `data-${n}`);
    const metaPath = join(tmp, `meta-${n}`);
    const openMedia = async (create: boolean) => {
      const device = await RawFileBlockDevice.open({ path: dataPath, create: create ? { byteLength: 64 * 1024 } : undefined });
      const metaDevice = await RawFileBlockDevice.open({ path: metaPath, create: create ? { byteLength: 256 * 1024 } : undefined });
      const meta = await LogMetaStore.open({ device: metaDevice, closeDevice: true });
      toClose.push(device, meta);
      return { device, meta };
    };
    const media = await openMedia(true);
    const backing: Backing = {
      ...media,
      // A restart: both files are closed and opened again; the index is recovered from its log.
      reopenMedia: async () => {
        await backing.meta.close();
        await backing.device.close();
        const again = await openMedia(false);
        backing.device = again.device;
        backing.meta = again.meta;
        return again;
      },
    };
    return openOn(backing);
  },
  ...deviceSuiteHooks,
  numRuns: 15,
});

describeExtentStore({
  name: 'DeviceExtentStore over RawFileBlockDevice + LmdbMetaStore (the default stores)',
  open: async () => {
    const n = fileCounter++;
    const dataPath = join(tmp, `ldata-${n}`);
    const metaPath = join(tmp, `lmeta-${n}`);
    const openMedia = async (create: boolean) => {
      const device = await RawFileBlockDevice.open({ path: dataPath, create: create ? { byteLength: 64 * 1024 } : undefined });
      const meta = await LmdbMetaStore.open({ path: metaPath, create });
      toClose.push(device, meta);
      return { device, meta };
    };
    const media = await openMedia(true);
    const backing: Backing = {
      ...media,
      reopenMedia: async () => {
        await backing.meta.close();
        await backing.device.close();
        const again = await openMedia(false);
        backing.device = again.device;
        backing.meta = again.meta;
        return again;
      },
    };
    return openOn(backing);
  },
  ...deviceSuiteHooks,
  numRuns: 15,
});

// ---- DeviceExtentStore specifics --------------------------------------------------

/** `inner` declaring `resizable: false`, as a block special file does. */
function fixedLength(inner: BlockDevice): BlockDevice {
  return {
    get byteLength() {
      return inner.byteLength;
    },
    capabilities: { ...inner.capabilities, resizable: false },
    read: (...a) => inner.read(...a),
    readv: (...a) => inner.readv(...a),
    write: (...a) => inner.write(...a),
    writev: (...a) => inner.writev(...a),
    discard: (...a) => inner.discard(...a),
    flush: (...a) => inner.flush(...a),
    resize: (...a) => inner.resize(...a),
    close: () => inner.close(),
  };
}

describe('DeviceExtentStore', () => {
  async function fresh(byteLength = 64 * 1024, alignmentBytes = 1) {
    const device = await MemoryBlockDevice.create({ byteLength, alignmentBytes });
    const meta = await MemoryMetaStore.open();
    return { device, meta, store: await DeviceExtentStore.open({ device, meta }) };
  }

  it('reuses the space of a delete only once the delete is flushed', async () => {
    const { meta, store } = await fresh();
    await store.put([fixtureExtent(1, 8192)]);
    await store.flush();
    const first = await locate(meta, fixtureFingerprint(1));
    await store.delete([fixtureFingerprint(1)]);
    // Not durable yet: a crash could bring back the entry, so its bytes must stay.
    await store.put([fixtureExtent(2, 8192)]);
    await store.flush();
    const second = await locate(meta, fixtureFingerprint(2));
    expect(second.byteOffset).not.toBe(first.byteOffset);
    // Now the delete is durable; the next extent of that size takes the freed hole.
    await store.put([fixtureExtent(3, 8192)]);
    await store.flush();
    expect((await locate(meta, fixtureFingerprint(3))).byteOffset).toBe(first.byteOffset);
    expectSameBytes(await store.get(fixtureFingerprint(2)), fixtureData(2, 8192));
    expectSameBytes(await store.get(fixtureFingerprint(3)), fixtureData(3, 8192));
    await store.close();
  });

  it('keeps index entries out of the MetaStore until flush, and the device flushed first', async () => {
    const { device, meta, store } = await fresh();
    const order: string[] = [];
    const deviceFlush = device.flush.bind(device);
    device.flush = async (o) => {
      order.push('device.flush');
      return deviceFlush(o);
    };
    const metaBatch = meta.batch.bind(meta);
    meta.batch = async (ops, o) => {
      order.push(`meta.batch(sync=${String(o?.sync)})`);
      return metaBatch(ops, o);
    };
    await store.put([fixtureExtent(1, 3000), fixtureExtent(2, 3000)]);
    expect(await meta.get(concatBytes([utf8('x/'), fixtureFingerprint(1)]))).toBeUndefined();
    expect(order).toEqual([]);
    await store.flush();
    expect(order).toEqual(['device.flush', 'meta.batch(sync=true)']);
    expect((await locate(meta, fixtureFingerprint(2))).byteLength).toBe(3000);
    await store.close();
  });

  it('writes a put batch with one device writev call', async () => {
    const { device, store } = await fresh();
    let writevCalls = 0;
    let writeCalls = 0;
    const writev = device.writev.bind(device);
    device.writev = async (w, o) => {
      writevCalls++;
      return writev(w, o);
    };
    device.write = async () => {
      writeCalls++;
    };
    await store.put(Array.from({ length: 64 }, (_, i) => fixtureExtent(i, 4096)));
    expect([writevCalls, writeCalls]).toEqual([1, 0]);
    await store.close();
  });

  it('grows a resizable device, and fails NO_SPACE on a fixed one', async () => {
    const { device, store } = await fresh(16 * 1024);
    await store.put(Array.from({ length: 20 }, (_, i) => fixtureExtent(i, 60_000)));
    expect(device.byteLength).toBeGreaterThanOrEqual(20 * 61_440 + 4096);
    for (let i = 0; i < 20; i++) expectSameBytes(await store.get(fixtureFingerprint(i)), fixtureData(i, 60_000));
    await store.close();

    const inner = await MemoryBlockDevice.create({ byteLength: 32 * 1024 });
    const fixed = fixedLength(inner);
    const small = await DeviceExtentStore.open({ device: fixed, meta: await MemoryMetaStore.open() });
    await small.put([fixtureExtent(1, 20_000)]);
    expect(await codeOf(small.put([fixtureExtent(2, 20_000)]))).toBe('NO_SPACE');
    expect(await small.has([fixtureFingerprint(2)])).toEqual([false]);
    const stats = await small.stats();
    expect(stats).toMatchObject({ extentCount: 1, extentBytes: 20_000, storedBytes: 4096 + 20_480, freeBytes: 8192 });
    await small.close();
  });

  it('reports CORRUPTION with fingerprint and byteOffset when device bits flip under an extent', async () => {
    const { device, meta, store } = await fresh(64 * 1024, 4096);
    const extents = [fixtureExtent(1, 10_000), fixtureExtent(2, 10_000)];
    await store.put(extents);
    await store.flush();
    const e = await locate(meta, fixtureFingerprint(1));
    await flipBit(device, e.byteOffset + e.byteLength - 1, 0x01); // the last byte, just before the padding
    const err = await store.get(fixtureFingerprint(1)).catch((x: unknown) => x);
    expect(err).toMatchObject({ code: 'CORRUPTION', data: { fingerprint: expect.any(String), byteOffset: e.byteOffset } });
    // Padding after the extent's last byte is not part of it: damage there is harmless.
    const e2 = await locate(meta, fixtureFingerprint(2));
    await flipBit(device, e2.byteOffset + e2.byteLength + 5);
    expectSameBytes(await store.get(fixtureFingerprint(2)), extents[1]!.data);
    await store.close();
  });

  it('refuses a device that belongs to another store, and a changed allocation unit', async () => {
    const a = await fresh();
    await a.store.put([fixtureExtent(1)]);
    await a.store.flush();
    await a.store.close();
    const b = await fresh();
    await b.store.close();
    expect(await codeOf(DeviceExtentStore.open({ device: b.device, meta: a.meta }))).toBe('CORRUPTION');
    expect(await codeOf(DeviceExtentStore.open({ device: a.device, meta: a.meta, allocationUnitBytes: 8192 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(DeviceExtentStore.open({ device: a.device, meta: await MemoryMetaStore.open(), allocationUnitBytes: 3000 }))).toBe(
      'INVALID_ARGUMENT',
    );
    const again = await DeviceExtentStore.open({ device: a.device, meta: a.meta });
    expectSameBytes(await again.get(fixtureFingerprint(1)), fixtureData(1));
    await again.close();
  });

  it('keeps two stores apart in one MetaStore by key prefix', async () => {
    const meta = await MemoryMetaStore.open();
    const d1 = await MemoryBlockDevice.create({ byteLength: 0 });
    const d2 = await MemoryBlockDevice.create({ byteLength: 0 });
    const s1 = await DeviceExtentStore.open({ device: d1, meta, keyPrefix: 'site-a/' });
    const s2 = await DeviceExtentStore.open({ device: d2, meta, keyPrefix: utf8('site-b/') });
    await s1.put([fixtureExtent(1)]);
    await s2.put([fixtureExtent(2)]);
    await s1.flush();
    await s2.flush();
    expect(await s1.has([fixtureFingerprint(1), fixtureFingerprint(2)])).toEqual([true, false]);
    await s1.close();
    const r1 = await DeviceExtentStore.open({ device: d1, meta, keyPrefix: 'site-a/' });
    expect(await r1.has([fixtureFingerprint(1), fixtureFingerprint(2)])).toEqual([true, false]);
    await Promise.all([r1.close(), s2.close()]);
  });
});
