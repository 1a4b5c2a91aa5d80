import { describe, expect, it } from 'vitest';
import { MemoryExtentStore, MemoryMetaStore, VirtualClock } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';

const KiB = 1024;
const fill = (byteLength: number, value: number) => new Uint8Array(byteLength).fill(value);

async function openTree(meta?: MemoryMetaStore, extents?: MemoryExtentStore) {
  const m = meta ?? (await MemoryMetaStore.open());
  const e = extents ?? (await MemoryExtentStore.open());
  const clock = new VirtualClock(1_000_000);
  return { tree: await SnapshotTree.open({ meta: m, extents: e, clock }), meta: m, extents: e, clock };
}

describe('SnapshotTree basics', () => {
  it('writes, snapshots, keeps the snapshot frozen, clones, restores, diffs, deletes and reclaims', async () => {
    const { tree, extents } = await openTree();
    const vol = await tree.createVolume({ name: 'db', byteLength: 1024 * KiB, blockBytes: 4 * KiB });
    await vol.write(0, fill(8 * KiB, 1));
    await vol.write(100 * KiB + 7, fill(10, 2)); // partial block
    const s1 = await tree.snapshot(vol.id, { name: 'one' });
    await vol.write(0, fill(4 * KiB, 3));
    await vol.write(512 * KiB, fill(4 * KiB, 4));

    const r1 = tree.openSnapshot(s1.id);
    expect(await r1.read(0, 8 * KiB)).toEqual(fill(8 * KiB, 1));
    expect((await r1.read(100 * KiB, 32))[7]).toBe(2);
    expect(await r1.read(512 * KiB, 4 * KiB)).toEqual(fill(4 * KiB, 0));
    await r1.close();
    expect(await vol.read(0, 4 * KiB)).toEqual(fill(4 * KiB, 3));

    const s2 = await tree.snapshot(vol.id, { name: 'two' });
    const ranges = [];
    for await (const r of tree.diff(s1.id, s2.id)) ranges.push(r);
    expect(ranges.map((r) => [r.blockIndex, r.blockCount])).toEqual([[0, 1], [128, 1]]);

    const clone = await tree.clone(s1.id, { name: 'db-clone' });
    expect(await clone.read(0, 4 * KiB)).toEqual(fill(4 * KiB, 1));
    await clone.write(0, fill(4 * KiB, 9));
    expect(await vol.read(0, 4 * KiB)).toEqual(fill(4 * KiB, 3));

    await tree.restore(vol.id, s1.id);
    expect(await vol.read(0, 4 * KiB)).toEqual(fill(4 * KiB, 1));
    expect(await vol.read(512 * KiB, 4 * KiB)).toEqual(fill(4 * KiB, 0));

    expect((await tree.verify({ readData: true })).problems).toEqual([]);
    await tree.deleteSnapshot(s2.id);
    expect((await tree.verify({ readData: true })).problems).toEqual([]);
    await clone.close();
    await tree.deleteVolume(clone.id);
    await tree.deleteSnapshot(s1.id);
    expect((await tree.verify({ readData: true })).problems).toEqual([]);
    // Only the volume's current content remains: blocks of 1 (x2 dedup to one extent) and the partial block.
    expect((await extents.stats()).extentCount).toBe(2);
    expect(tree.listSnapshots()).toEqual([]);
  });
});

describe('Volume.mapBlocks', () => {
  it('points blocks at stored extents without moving data, and refuses unknown fingerprints', async () => {
    const { tree } = await openTree();
    const a = await tree.createVolume({ name: 'a', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    const b = await tree.createVolume({ name: 'b', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    await a.write(0, fill(4 * KiB, 5));
    const fp = tree.fingerprinter.fingerprint(fill(4 * KiB, 5));
    await b.mapBlocks([{ blockIndex: 3, fingerprint: fp }, { blockIndex: 15, fingerprint: fp }, { blockIndex: 15, fingerprint: undefined }]);
    expect(await b.read(3 * KiB * 4, 4 * KiB)).toEqual(fill(4 * KiB, 5));
    expect(await b.read(15 * KiB * 4, 4 * KiB)).toEqual(fill(4 * KiB, 0));
    await expect(b.mapBlocks([{ blockIndex: 16, fingerprint: fp }])).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    await expect(b.mapBlocks([{ blockIndex: 1, fingerprint: new Uint8Array(32).fill(1) }])).rejects.toMatchObject({ code: 'EXTENT_NOT_FOUND' });
    await expect(b.mapBlocks([{ blockIndex: 1, fingerprint: new Uint8Array(3) }])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await tree.verify({ readData: true })).problems).toEqual([]);
  });
});
