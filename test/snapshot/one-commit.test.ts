// One durable MetaStore batch per tree flush: when the ExtentStore shares the tree's
// MetaStore, its index changes ride in the tree's batch (ExtentStore.prepareCommit).
import { describe, expect, it } from 'vitest';
import { DeviceExtentStore, MemoryBlockDevice, MemoryMetaStore, type BatchOptions, type MetaOp, type MetaStore } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';

function countingSyncBatches(inner: MetaStore): { meta: MetaStore; syncBatches: () => number } {
  let n = 0;
  const meta: MetaStore = {
    get: (k, o) => inner.get(k, o),
    getMany: (k, o) => inner.getMany(k, o),
    iterate: (r, o) => inner.iterate(r, o),
    flush: (o) => inner.flush(o),
    stats: () => inner.stats(),
    close: () => inner.close(),
    batch: (ops: readonly MetaOp[], o?: BatchOptions) => {
      if (o?.sync === true) n++;
      return inner.batch(ops, o);
    },
  };
  return { meta, syncBatches: () => n };
}

describe('tree commits', () => {
  it('a flush after writes is one durable batch, and everything reads back after a reopen', async () => {
    const inner = await MemoryMetaStore.open();
    const { meta, syncBatches } = countingSyncBatches(inner);
    const device = await MemoryBlockDevice.create({ byteLength: 1 << 20 });
    const extents = await DeviceExtentStore.open({ device, meta });
    const tree = await SnapshotTree.open({ meta, extents });
    const vol = await tree.createVolume({ name: 'v', byteLength: 1 << 20, blockBytes: 4096 });
    const data = new Uint8Array(64 * 1024).map((_, i) => (i * 7) & 0xff);
    await vol.write(0, data);
    const before = syncBatches();
    await vol.flush();
    expect(syncBatches() - before).toBe(1);
    const snap = await tree.snapshot(vol.id, { name: 's' });
    await vol.discard(0, 8192);
    await tree.deleteSnapshot(snap.id); // frees extents: their space returns with the commit
    await vol.write(0, new Uint8Array(8192).fill(9));
    await vol.flush();
    await tree.close();
    await extents.close();
    const extents2 = await DeviceExtentStore.open({ device, meta: inner });
    const tree2 = await SnapshotTree.open({ meta: inner, extents: extents2 });
    const again = await tree2.openVolume(vol.id);
    const got = await again.read(0, 64 * 1024);
    expect(got.subarray(0, 8192).every((x) => x === 9)).toBe(true);
    expect(got.subarray(8192)).toEqual(data.subarray(8192));
    expect((await tree2.verify({ readData: true })).problems).toEqual([]);
  });
});
