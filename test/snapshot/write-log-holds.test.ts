// Holds on the write log (the source half of NearSync, issue #11): records between two
// markers read back exactly as written, drained records stay while held (across a crash),
// a holder that falls too far behind is dropped instead of the log growing, and a hold
// must name a real record.
import { describe, expect, it } from 'vitest';
import { DeviceExtentStore, MemoryBlockDevice, MemoryMetaStore } from '../../src/adapters/index.js';
import { SnapshotTree, type WriteLogEntry } from '../../src/snapshot/index.js';
import { FaultyBlockDevice } from '../../src/testing/index.js';
import { SeededPrng } from '../../src/testing/internal/seeded-prng.js';
import { expectSameBytes } from '../../src/testing/internal/extent-fixtures.js';

const KiB = 1024;

async function stores(logBytes: number) {
  const meta = await MemoryMetaStore.open();
  const extents = await DeviceExtentStore.open({ device: await MemoryBlockDevice.create({ byteLength: 8 << 20 }), meta });
  const logInner = await MemoryBlockDevice.create({ byteLength: logBytes });
  return { meta, extents, logInner };
}

async function collect(it: AsyncIterable<WriteLogEntry>): Promise<WriteLogEntry[]> {
  const out: WriteLogEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

describe('write log holds', () => {
  it('records between two markers are exactly the writes in between, large aligned ones included while held', async () => {
    const { meta, extents, logInner } = await stores(4 << 20);
    const tree = await SnapshotTree.open({ meta, extents, writeLog: logInner });
    const a = await tree.createVolume({ name: 'a', byteLength: 1024 * KiB, blockBytes: 16 * KiB });
    const b = await tree.createVolume({ name: 'b', byteLength: 1024 * KiB, blockBytes: 16 * KiB });
    await a.write(0, new Uint8Array(100).fill(9)); // before the first marker
    const m1 = await tree.markWriteLog([a.id, b.id]);
    await tree.holdWriteLog('target-1', m1);
    const big = new Uint8Array(256 * KiB).fill(3);
    await a.write(5, new Uint8Array(10).fill(1));
    await b.write(256 * KiB, big); // would bypass the log without the hold
    await tree.snapshot(a.id, { name: 'drains-everything' });
    const m2 = await tree.markWriteLog([a.id, b.id]);
    const entries = await collect(tree.readWriteLog(m1, m2.seq));
    const writes = entries.filter((e) => e.kind === 'write');
    expect(writes.map((w) => [w.volumeId, w.byteOffset, w.data.byteLength])).toEqual([[a.id, 5, 10], [b.id, 256 * KiB, 256 * KiB]]);
    expectSameBytes((writes[1] as { data: Uint8Array }).data, big);
    expect(entries[0]).toMatchObject({ kind: 'marker', seq: m1.seq, volumeIds: [a.id, b.id] });
    expect(entries.at(-1)).toMatchObject({ kind: 'marker', seq: m2.seq });
    await tree.releaseWriteLog('target-1');
    await expect(collect(tree.readWriteLog(m1, m2.seq))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('a hold keeps drained records through a crash; released, the ring is reused', async () => {
    const { meta, extents, logInner } = await stores(1 << 20);
    const log = new FaultyBlockDevice(logInner, { seed: 5, ownsInner: false });
    const tree = await SnapshotTree.open({ meta, extents, writeLog: log });
    const vol = await tree.createVolume({ name: 'v', byteLength: 256 * KiB, blockBytes: 4 * KiB });
    const m1 = await tree.markWriteLog([vol.id]);
    await tree.holdWriteLog('t', m1);
    const rng = new SeededPrng(11);
    const expected: [number, Uint8Array][] = [];
    for (let i = 0; i < 40; i++) {
      const data = rng.fill(new Uint8Array(1 + rng.below(4000)));
      const byteOffset = rng.below(256 * KiB - data.byteLength);
      await vol.write(byteOffset, data);
      expected.push([byteOffset, data]);
    }
    const m2 = await tree.markWriteLog([vol.id]);
    await tree.snapshot(vol.id, { name: 'drained' }); // drains and flushes
    expect(tree.writeLogStats()!.pendingBytes).toBe(0);
    const usedWhileHeld = tree.writeLogStats()!.usedBytes;
    expect(usedWhileHeld).toBeGreaterThan(40 * 512);
    await log.crash();
    const again = await SnapshotTree.open({ meta, extents, writeLog: new FaultyBlockDevice(logInner, { seed: 6, ownsInner: false }) });
    expect(again.writeLogHolds().get('t')).toEqual(m1);
    const writes = (await collect(again.readWriteLog(m1, m2.seq))).filter((e) => e.kind === 'write') as { byteOffset: number; data: Uint8Array }[];
    expect(writes.length).toBe(40);
    writes.forEach((w, i) => {
      expect(w.byteOffset).toBe(expected[i]![0]);
      expectSameBytes(w.data, expected[i]![1]);
    });
    await again.releaseWriteLog('t');
    expect(again.writeLogStats()!.usedBytes).toBeLessThan(usedWhileHeld);
  });

  it('a holder that falls behind by half the ring is dropped (told why) and writes go on', async () => {
    const { meta, extents, logInner } = await stores(256 * KiB);
    const dropped: [string, string][] = [];
    const tree = await SnapshotTree.open({ meta, extents, writeLog: logInner, onWriteLogHoldDropped: (holder, reason) => dropped.push([holder, reason]) });
    const vol = await tree.createVolume({ name: 'v', byteLength: 512 * KiB, blockBytes: 4 * KiB });
    await tree.holdWriteLog('slow', await tree.markWriteLog([vol.id]));
    const model = new Uint8Array(512 * KiB);
    const rng = new SeededPrng(12);
    for (let i = 0; i < 300; i++) {
      const data = rng.fill(new Uint8Array(1 + rng.below(3000)));
      const byteOffset = rng.below(model.byteLength - data.byteLength);
      await vol.write(byteOffset, data);
      model.set(data, byteOffset);
      expect(tree.writeLogStats()!.usedBytes).toBeLessThan(256 * KiB);
    }
    expect(dropped).toEqual([['slow', 'bound']]);
    expect(tree.writeLogHolds().size).toBe(0);
    expectSameBytes(await vol.read(0, model.byteLength), model);
  });

  it('a hold must name a record of the log: a wrong offset or a position already reused is refused', async () => {
    const { meta, extents, logInner } = await stores(1 << 20);
    const tree = await SnapshotTree.open({ meta, extents, writeLog: logInner });
    const vol = await tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    const m1 = await tree.markWriteLog([vol.id]);
    await vol.write(0, new Uint8Array(100).fill(1));
    await expect(tree.holdWriteLog('x', { seq: m1.seq, offset: m1.offset + 512 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(tree.writeLogHolds().size).toBe(0);
    await tree.snapshot(vol.id, { name: 's' }); // drains: m1 is behind the start now
    await expect(tree.holdWriteLog('x', m1)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
