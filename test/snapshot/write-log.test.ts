// The write log (issue #10): small writes append to a log, are read back from it, made
// durable by flush with one device flush, drained into whole blocks, and replayed after
// a crash or restart. Model tests with crashes are in snapshot-model.test.ts.
import { describe, expect, it } from 'vitest';
import { DeviceExtentStore, MemoryBlockDevice, MemoryExtentStore, MemoryMetaStore } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { FaultyBlockDevice } from '../../src/testing/index.js';
import { SeededPrng } from '../../src/testing/internal/seeded-prng.js';
import { WriteLog } from '../../src/snapshot/internal/write-log.js';
import { expectSameBytes } from '../../src/testing/internal/extent-fixtures.js';
import { loadXxh64 } from '../../src/core/checksum.js';

const KiB = 1024;

async function loggedTree(logBytes = 1 << 20) {
  const meta = await MemoryMetaStore.open();
  const extents = await MemoryExtentStore.open();
  const logDevice = await MemoryBlockDevice.create({ byteLength: logBytes });
  const tree = await SnapshotTree.open({ meta, extents, writeLog: logDevice });
  return { meta, extents, logDevice, tree };
}

describe('write log', () => {
  it('small writes go to the log, reads see them, and a snapshot drains them', async () => {
    const { tree, extents } = await loggedTree();
    const vol = await tree.createVolume({ name: 'v', byteLength: 256 * KiB, blockBytes: 16 * KiB });
    await vol.write(100, new Uint8Array(50).fill(7));
    await vol.write(16 * KiB - 10, new Uint8Array(20).fill(8)); // spans two blocks
    expect(tree.writeLogStats()!.pendingBytes).toBe(70);
    expect((await extents.stats()).extentCount).toBe(0); // nothing redirected yet
    const got = await vol.read(0, 32 * KiB);
    expect(got.subarray(100, 150).every((x) => x === 7)).toBe(true);
    expect(got.subarray(16 * KiB - 10, 16 * KiB + 10).every((x) => x === 8)).toBe(true);
    expect(got[99]).toBe(0);
    const snap = await tree.snapshot(vol.id, { name: 's' });
    expect(tree.writeLogStats()!.pendingBytes).toBe(0);
    const reader = tree.openSnapshot(snap.id);
    expect(await reader.read(0, 32 * KiB)).toEqual(got);
    await reader.close();
  });

  it('a block rewritten many times before a drain costs one extent and leaves no dead one', async () => {
    const { tree, extents } = await loggedTree();
    const vol = await tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 16 * KiB });
    for (let i = 1; i <= 20; i++) await vol.write(4 * KiB, new Uint8Array(4 * KiB).fill(i));
    await tree.snapshot(vol.id, { name: 's' });
    expect((await extents.stats()).extentCount).toBe(1);
    expect((await tree.reclaim()).extentsDeleted).toBe(0);
    expect((await vol.read(4 * KiB, 4 * KiB)).every((x) => x === 20)).toBe(true);
  });

  it('a drain keeps old bytes a block\'s logged writes leave uncovered, and needs none where they cover it in pieces', async () => {
    const { tree, extents } = await loggedTree();
    const vol = await tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 16 * KiB });
    await vol.write(0, new Uint8Array(64 * KiB).fill(9)); // old content in every block (bypasses or drains)
    await tree.snapshot(vol.id, { name: 'old' });
    // Block 0: pieces that overlap and together cover it. Block 1: a 1-byte gap at 20 KiB.
    await vol.write(0, new Uint8Array(6 * KiB).fill(1));
    await vol.write(10 * KiB, new Uint8Array(6 * KiB).fill(2));
    await vol.write(4 * KiB, new Uint8Array(7 * KiB).fill(3));
    await vol.write(16 * KiB, new Uint8Array(4 * KiB).fill(4));
    await vol.write(20 * KiB + 1, new Uint8Array(12 * KiB - 1).fill(5));
    const expected = new Uint8Array(64 * KiB).fill(9);
    expected.fill(1, 0, 6 * KiB).fill(2, 10 * KiB, 16 * KiB).fill(3, 4 * KiB, 11 * KiB);
    expected.fill(4, 16 * KiB, 20 * KiB).fill(5, 20 * KiB + 1, 32 * KiB);
    const before = (await extents.stats()).extentCount;
    await tree.snapshot(vol.id, { name: 'drained' });
    expect(tree.writeLogStats()!.pendingBytes).toBe(0);
    expectSameBytes(await vol.read(0, 64 * KiB), expected);
    expect((await extents.stats()).extentCount).toBe(before + 2);
  });

  it('flushed writes survive a restart without a drain (replayed), unflushed ones do not', async () => {
    const meta = await MemoryMetaStore.open();
    const data = await MemoryBlockDevice.create({ byteLength: 1 << 20 });
    const extents = await DeviceExtentStore.open({ device: data, meta });
    const logInner = await MemoryBlockDevice.create({ byteLength: 1 << 20 });
    const log = new FaultyBlockDevice(logInner, { seed: 1, ownsInner: false });
    let tree = await SnapshotTree.open({ meta, extents, writeLog: log });
    const vol = await tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    await vol.write(0, new Uint8Array(1000).fill(1));
    await vol.flush();
    await vol.write(2000, new Uint8Array(1000).fill(2)); // never flushed
    await log.crash();
    tree = await SnapshotTree.open({ meta, extents, writeLog: new FaultyBlockDevice(logInner, { seed: 2, ownsInner: false }) });
    const again = await tree.openVolume(vol.id);
    const got = await again.read(0, 4 * KiB);
    expect(got.subarray(0, 1000).every((x) => x === 1)).toBe(true);
    expect(got.subarray(2000, 3000).every((x) => x === 0)).toBe(true);
    expect(tree.writeLogStats()!.pendingBytes).toBe(0); // replayed and drained at open
    expect((await tree.verify({ readData: true })).problems).toEqual([]);
  });

  it('a full log drains by itself (backpressure) and every byte stays right', async () => {
    const { tree } = await loggedTree(64 * KiB); // 128 records of 512 B
    const vol = await tree.createVolume({ name: 'v', byteLength: 256 * KiB, blockBytes: 4 * KiB });
    const model = new Uint8Array(256 * KiB);
    const rng = new SeededPrng(42);
    for (let i = 0; i < 600; i++) {
      const byteLength = 1 + rng.below(3000);
      const byteOffset = rng.below(model.byteLength - byteLength);
      const data = rng.fill(new Uint8Array(byteLength));
      await vol.write(byteOffset, data);
      model.set(data, byteOffset);
      expect(tree.writeLogStats()!.usedBytes).toBeLessThan(64 * KiB);
    }
    expect(await vol.read(0, model.byteLength)).toEqual(model);
    await vol.flush();
    expect(await vol.read(0, model.byteLength)).toEqual(model);
  });

  it('drains in the background a prefix at a time; a crash after prefix commits replays exactly the rest', async () => {
    const meta = await MemoryMetaStore.open();
    const extents = await DeviceExtentStore.open({ device: await MemoryBlockDevice.create({ byteLength: 4 << 20 }), meta });
    const logInner = await MemoryBlockDevice.create({ byteLength: 256 * KiB });
    const log = new FaultyBlockDevice(logInner, { seed: 3, ownsInner: false });
    const tree = await SnapshotTree.open({ meta, extents, writeLog: log });
    const vol = await tree.createVolume({ name: 'v', byteLength: 512 * KiB, blockBytes: 4 * KiB });
    const model = new Uint8Array(512 * KiB);
    const rng = new SeededPrng(99);
    let backgroundDrains = 0;
    let lastUsed = 0;
    for (let i = 0; i < 400; i++) {
      const byteLength = 1 + rng.below(3000);
      const byteOffset = rng.below(model.byteLength - byteLength);
      const data = rng.fill(new Uint8Array(byteLength));
      await vol.write(byteOffset, data);
      model.set(data, byteOffset);
      if (i % 20 === 19) await vol.flush();
      await new Promise<void>((resolve) => setImmediate(resolve)); // let a background step run
      const { usedBytes } = tree.writeLogStats()!;
      if (usedBytes < lastUsed) backgroundDrains++;
      lastUsed = usedBytes;
      expect(usedBytes).toBeLessThanOrEqual(256 * KiB * 0.75 + 8 * KiB);
    }
    await vol.flush();
    expect(backgroundDrains, 'the log shrank without a snapshot or a full log').toBeGreaterThan(0);
    expect(tree.writeLogStats()!.pendingBytes, 'some writes are still only in the log').toBeGreaterThan(0);
    expectSameBytes(await vol.read(0, model.byteLength), model);
    await log.crash(); // no close: what prefix commits persisted plus the replayed rest
    const again = await SnapshotTree.open({ meta, extents, writeLog: new FaultyBlockDevice(logInner, { seed: 4, ownsInner: false }) });
    expectSameBytes(await (await again.openVolume(vol.id)).read(0, model.byteLength), model);
    expect((await again.verify({ readData: true })).problems).toEqual([]);
  });

  it('drains in the background once writes pause, down to an eighth of the ring', async () => {
    const { tree } = await loggedTree(256 * KiB);
    const vol = await tree.createVolume({ name: 'v', byteLength: 512 * KiB, blockBytes: 4 * KiB });
    for (let i = 0; i < 20; i++) await vol.write(i * 5000, new Uint8Array(3000).fill(i + 1)); // ~70 KiB of records: over 1/8, under 1/2
    const used = tree.writeLogStats()!.usedBytes;
    expect(used).toBeGreaterThan(256 * KiB / 8);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(tree.writeLogStats()!.usedBytes, 'no drain while within the pause').toBe(used);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(tree.writeLogStats()!.usedBytes).toBeLessThanOrEqual(256 * KiB / 8);
    for (let i = 0; i < 20; i++) expect((await vol.read(i * 5000, 3000)).every((x) => x === i + 1)).toBe(true);
  });

  it('reads of any range see exactly the pending writes over the block map (writes spanning granules, no drain)', async () => {
    const { tree } = await loggedTree(16 << 20);
    const vol = await tree.createVolume({ name: 'v', byteLength: 1024 * KiB, blockBytes: 16 * KiB });
    await vol.write(0, new Uint8Array(1024 * KiB).fill(0x11)); // the block map underneath (bypasses the log)
    const model = new Uint8Array(1024 * KiB).fill(0x11);
    const rng = new SeededPrng(7);
    for (let i = 0; i < 200; i++) {
      const byteLength = 1 + rng.below(200 * KiB);
      const byteOffset = rng.below(model.byteLength - byteLength);
      const data = rng.fill(new Uint8Array(byteLength));
      await vol.write(byteOffset, data);
      model.set(data, byteOffset);
      const readLength = 1 + rng.below(300 * KiB);
      const readOffset = rng.below(model.byteLength - readLength);
      expectSameBytes(await vol.read(readOffset, readLength), model.subarray(readOffset, readOffset + readLength), `read ${i} at ${readOffset}+${readLength}`);
    }
    expect(tree.writeLogStats()!.pendingBytes).toBeGreaterThan(1 << 20);
  });

  it('large aligned writes skip the log unless a logged write overlaps them; discards stay ordered', async () => {
    const { tree } = await loggedTree();
    const vol = await tree.createVolume({ name: 'v', byteLength: 1024 * KiB, blockBytes: 16 * KiB });
    await vol.write(0, new Uint8Array(256 * KiB).fill(3));
    expect(tree.writeLogStats()!.pendingBytes).toBe(0);
    await vol.write(10, new Uint8Array(10).fill(4));
    await vol.write(0, new Uint8Array(256 * KiB).fill(5)); // overlaps the logged write: logged after it
    await vol.discard(0, 100);
    const got = await vol.read(0, 256 * KiB);
    expect(got.subarray(0, 100).every((x) => x === 0)).toBe(true);
    expect(got.subarray(100).every((x) => x === 5)).toBe(true);
  });

  it('a tree that has a write log refuses to open without it (its flushed writes would be lost)', async () => {
    const { meta, extents, logDevice, tree } = await loggedTree();
    const vol = await tree.createVolume({ name: 'v', byteLength: 64 * KiB });
    await vol.write(0, new Uint8Array(10).fill(1));
    await vol.flush();
    await tree.close();
    await expect(SnapshotTree.open({ meta, extents })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const again = await SnapshotTree.open({ meta, extents, writeLog: logDevice });
    expect((await (await again.openVolume(vol.id)).read(0, 10)).every((x) => x === 1)).toBe(true);
  });

  it('a marker names a point of the write stream across volumes', async () => {
    const { tree } = await loggedTree();
    const a = await tree.createVolume({ name: 'a', byteLength: 64 * KiB });
    const b = await tree.createVolume({ name: 'b', byteLength: 64 * KiB });
    await a.write(0, new Uint8Array(10).fill(1));
    const m1 = await tree.markWriteLog([a.id, b.id]);
    await b.write(0, new Uint8Array(10).fill(2));
    const m2 = await tree.markWriteLog([a.id, b.id]);
    expect(m2.seq).toBeGreaterThan(m1.seq);
    await expect(tree.markWriteLog(['nope'])).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('records an earlier open wrote but never had acknowledged are not chained behind newer ones (the epoch check)', async () => {
    const xxh = await loadXxh64();
    const device = await MemoryBlockDevice.create({ byteLength: 1 << 20 });
    const bytes = (n: number) => new Uint8Array(100).fill(n);
    // Open 1: A is flushed; B, C and a flush record follow, but B is torn (the flush that
    // would have acknowledged them never completed).
    const log1 = await WriteLog.open(device, xxh, WriteLog.freshState());
    await log1.appendWrite('v', 0, bytes(1));
    await log1.flush();
    const bAt = log1.drainedState.startOffset;
    await log1.appendWrite('v', 0, bytes(2));
    await log1.appendWrite('v', 0, bytes(3));
    await log1.flush();
    await device.write(bAt, new Uint8Array(512));
    // Open 2 replays A only, then writes B' exactly where B was, and crashes unflushed.
    const log2 = await WriteLog.open(device, xxh, log1.persistedState);
    expect(log2.pending.map((w) => w.data[0])).toEqual([1]);
    await log2.appendWrite('v', 0, bytes(4));
    // Open 3: B' (newer epoch) is followed by C and a flush record of the older epoch. They
    // chain by sequence number, but were never acknowledged: only A may come back.
    const log3 = await WriteLog.open(device, xxh, log2.persistedState);
    expect(log3.pending.map((w) => w.data[0])).toEqual([1]);
  });
});
