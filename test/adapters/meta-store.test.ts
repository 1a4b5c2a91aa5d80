import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogMetaStore, MemoryBlockDevice, MemoryMetaStore, type MetaStore } from '../../src/adapters/index.js';
import { FileMetaStore } from '../../src/adapters/node.js';
import { describeMetaStore } from '../../src/testing/index.js';
import { isDrkitError } from '../../src/core/errors.js';

describeMetaStore({ name: 'MemoryMetaStore', open: () => MemoryMetaStore.open() });

// LogMetaStore over a memory device; reopen hands the same device to a new store.
const devices = new WeakMap<MetaStore, MemoryBlockDevice>();
describeMetaStore({
  name: 'LogMetaStore on MemoryBlockDevice',
  open: async () => {
    const device = await MemoryBlockDevice.create({ byteLength: 64 * 1024 });
    const store = await LogMetaStore.open({ device });
    devices.set(store, device);
    return store;
  },
  reopen: async (store) => {
    const device = devices.get(store)!;
    await store.close();
    const next = await LogMetaStore.open({ device, create: false });
    devices.set(next, device);
    return next;
  },
});

// A tiny compaction threshold so the suite also runs through compactions.
describeMetaStore({
  name: 'LogMetaStore (aligned 4 KiB device, eager compaction)',
  numRuns: 20,
  open: async () => {
    const device = await MemoryBlockDevice.create({ byteLength: 64 * 1024, alignmentBytes: 4096 });
    const store = await LogMetaStore.open({ device, compactMinDeadBytes: 256, compactDeadRatio: 0.3 });
    devices.set(store, device);
    return store;
  },
  reopen: async (store) => {
    const device = devices.get(store)!;
    await store.close();
    const next = await LogMetaStore.open({ device, create: false, compactMinDeadBytes: 256, compactDeadRatio: 0.3 });
    devices.set(next, device);
    return next;
  },
});

const dir = mkdtempSync(join(tmpdir(), 'drkit-meta-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileIndex = 0;
const paths = new WeakMap<MetaStore, string>();
describeMetaStore({
  name: 'FileMetaStore',
  numRuns: 15,
  open: async () => {
    const path = join(dir, `store-${fileIndex++}.drkm`);
    const store = await FileMetaStore.open({ path, create: true });
    paths.set(store, path);
    return store;
  },
  reopen: async (store) => {
    const path = paths.get(store)!;
    await store.close();
    const next = await FileMetaStore.open({ path });
    paths.set(next, path);
    return next;
  },
});

describe('LogMetaStore specifics', () => {
  it('rejects a batch over the 64 MiB bound with INVALID_ARGUMENT', async () => {
    const device = await MemoryBlockDevice.create({ byteLength: 64 * 1024 });
    const store = await LogMetaStore.open({ device });
    const big = new Uint8Array(33 * 1024 * 1024);
    const err = await store.batch([{ kind: 'put', key: Uint8Array.of(1), value: big }, { kind: 'put', key: Uint8Array.of(2), value: big }]).catch((e: unknown) => e);
    expect(isDrkitError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect(await store.get(Uint8Array.of(1))).toBeUndefined();
    await store.close();
  });

  it('compaction keeps the live set and bounds the log', async () => {
    const device = await MemoryBlockDevice.create({ byteLength: 64 * 1024 });
    const store = await LogMetaStore.open({ device, compactMinDeadBytes: 64 * 1024 });
    const value = new Uint8Array(200).fill(3);
    for (let round = 0; round < 50; round++) {
      const ops = Array.from({ length: 100 }, (_, i) => ({ kind: 'put' as const, key: Uint8Array.of(i), value }));
      await store.batch(ops);
    }
    await store.flush();
    const stats = await store.stats();
    expect(stats.keyCount).toBe(100);
    expect(stats.storedBytes).toBeLessThan(4 * stats.liveBytes + 200 * 1024);
    await store.compact();
    expect((await store.stats()).storedBytes).toBeLessThan(stats.liveBytes * 2 + 16 * 1024);
    await store.close();
    const again = await LogMetaStore.open({ device, create: false });
    expect((await again.stats()).keyCount).toBe(100);
    expect(await again.get(Uint8Array.of(42))).toEqual(value);
    await again.close();
  });

  it('create: false on an empty device is NOT_FOUND; garbage superblocks are CORRUPTION', async () => {
    const device = await MemoryBlockDevice.create({ byteLength: 64 * 1024 });
    const err = await LogMetaStore.open({ device, create: false }).catch((e: unknown) => e);
    expect(isDrkitError(err, 'NOT_FOUND')).toBe(true);
    await device.write(0, Uint8Array.of(1, 2, 3));
    await device.write(4096, Uint8Array.of(1, 2, 3));
    const err2 = await LogMetaStore.open({ device }).catch((e: unknown) => e);
    expect(isDrkitError(err2, 'CORRUPTION')).toBe(true);
  });

  it('an unknown superblock format version is FORMAT_VERSION', async () => {
    const device = await MemoryBlockDevice.create({ byteLength: 64 * 1024 });
    await (await LogMetaStore.open({ device })).close();
    const slot = await device.read(0, 16);
    slot[8] = 99; // formatVersion u32 at byte 8
    await device.write(0, slot);
    const err = await LogMetaStore.open({ device }).catch((e: unknown) => e);
    expect(isDrkitError(err, 'FORMAT_VERSION')).toBe(true);
  });

  it('a torn superblock copy falls back to the other copy', async () => {
    const device = await MemoryBlockDevice.create({ byteLength: 64 * 1024 });
    const store = await LogMetaStore.open({ device });
    await store.batch([{ kind: 'put', key: Uint8Array.of(1), value: Uint8Array.of(1) }], { sync: true });
    await store.close();
    await device.write(4096 + 20, Uint8Array.of(0xde, 0xad)); // damage slot B
    const again = await LogMetaStore.open({ device });
    expect(await again.get(Uint8Array.of(1))).toEqual(Uint8Array.of(1));
    await again.close();
  });
});
