import { describe, expect, it } from 'vitest';
import { LogMetaStore, DeviceExtentStore, MemoryBlockDevice, MemoryExtentStore, MemoryMetaStore, VirtualClock } from '../../src/adapters/index.js';
import { SnapshotTree, type QuiesceHooks } from '../../src/snapshot/index.js';
import { FaultyBlockDevice } from '../../src/testing/index.js';

const KiB = 1024;
const fill = (n: number, v: number) => new Uint8Array(n).fill(v);

async function memTree(clock = new VirtualClock(0)) {
  return SnapshotTree.open({ meta: await MemoryMetaStore.open(), extents: await MemoryExtentStore.open(), clock });
}

function recordingHooks(behaviour: 'ok' | 'throw' | 'hang', log: string[]): QuiesceHooks {
  return {
    preFreeze: async ({ signal }) => {
      log.push('preFreeze');
      if (behaviour === 'throw') throw new Error('app refused to freeze');
      if (behaviour === 'hang') await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
    },
    postThaw: async () => {
      log.push('postThaw');
    },
  };
}

describe('consistency groups', () => {
  it('snapshot several volumes in one commit with one group id and the same time', async () => {
    const tree = await memTree(new VirtualClock(42));
    const app = await tree.createVolume({ name: 'app', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    const db = await tree.createVolume({ name: 'db', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    await app.write(0, fill(4 * KiB, 1));
    await db.write(0, fill(4 * KiB, 2));
    const snaps = await tree.snapshotGroup([app.id, db.id], { name: 'nightly', userMetadata: { tier: 'gold' } });
    expect(snaps).toHaveLength(2);
    expect(new Set(snaps.map((s) => s.groupId)).size).toBe(1);
    expect(snaps[0]!.groupId).toBeDefined();
    expect(snaps.every((s) => s.createdMs === 42 && s.consistency === 'crash' && s.userMetadata.tier === 'gold')).toBe(true);
    expect(tree.listSnapshots({ groupId: snaps[0]!.groupId })).toHaveLength(2);
    await expect(tree.snapshotGroup([app.id, app.id], { name: 'dup' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(tree.snapshotGroup([], { name: 'empty' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(tree.snapshotGroup([app.id, 'vol-999'], { name: 'x' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('runs quiesce hooks around the commit and records application consistency', async () => {
    const tree = await memTree();
    const v = await tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    const log: string[] = [];
    const [s] = await tree.snapshotGroup([v.id], { name: 'app-consistent', quiesce: recordingHooks('ok', log) });
    expect(s!.consistency).toBe('application');
    expect(s!.fallbackReason).toBeUndefined();
    expect(log).toEqual(['preFreeze', 'postThaw']);
  });

  it('falls back to crash consistency when preFreeze fails, and still thaws', async () => {
    const tree = await memTree();
    const v = await tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    const log: string[] = [];
    const s = await tree.snapshot(v.id, { name: 'x', quiesce: recordingHooks('throw', log) });
    expect(s.consistency).toBe('crash');
    expect(s.fallbackReason).toMatch(/app refused to freeze/);
    expect(log).toEqual(['preFreeze', 'postThaw']);
  });

  it('falls back when preFreeze exceeds its deadline on the tree clock, and still thaws', async () => {
    const clock = new VirtualClock(0);
    const tree = await memTree(clock);
    const v = await tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    const log: string[] = [];
    const pending = tree.snapshot(v.id, { name: 'slow', quiesce: recordingHooks('hang', log), quiesceTimeoutMs: 5_000 });
    await clock.advance(4_999);
    expect(log).toEqual(['preFreeze']);
    await clock.advance(1);
    const s = await pending;
    expect(s.consistency).toBe('crash');
    expect(s.fallbackReason).toMatch(/timed out after 5000 ms/);
    expect(log).toEqual(['preFreeze', 'postThaw']);
  });

  it('a crash at any write of the group commit leaves all or none of the group', async () => {
    for (let crashAt = 1; crashAt <= 8; crashAt++) {
      const metaInner = await MemoryBlockDevice.create({ byteLength: 1 << 20 });
      const dataInner = await MemoryBlockDevice.create({ byteLength: 1 << 20 });
      const open = async (seed: number) => {
        const metaDev = new FaultyBlockDevice(metaInner, { seed, ownsInner: false });
        const dataDev = new FaultyBlockDevice(dataInner, { seed: seed + 1, ownsInner: false });
        const meta = await LogMetaStore.open({ device: metaDev });
        const extents = await DeviceExtentStore.open({ device: dataDev, meta });
        return { metaDev, dataDev, tree: await SnapshotTree.open({ meta, extents }) };
      };
      const first = await open(crashAt * 10);
      const vols = [];
      for (let i = 0; i < 3; i++) {
        const v = await first.tree.createVolume({ name: `v${i}`, byteLength: 32 * KiB, blockBytes: 4 * KiB });
        await v.write(0, fill(8 * KiB, i + 1));
        vols.push(v);
      }
      first.metaDev.crashAfterWrites(crashAt);
      const outcome = await first.tree.snapshotGroup(vols.map((v) => v.id), { name: 'cg' }).then(
        () => 'committed',
        (err: { code?: string }) => err.code,
      );
      await first.metaDev.crash();
      await first.dataDev.crash();
      const second = await open(crashAt * 10 + 5);
      const listed = second.tree.listSnapshots();
      expect([0, 3], `crash at write ${crashAt} (${outcome}) left ${listed.length} of 3`).toContain(listed.length);
      if (outcome === 'committed') expect(listed).toHaveLength(3);
      for (const s of listed) {
        const r = second.tree.openSnapshot(s.id);
        const i = Number(second.tree.getVolume(s.volumeId).name.slice(1));
        expect(await r.read(0, 8 * KiB)).toEqual(fill(8 * KiB, i + 1));
        await r.close();
      }
      await second.tree.collectGarbage();
      expect((await second.tree.verify({ readData: true })).problems).toEqual([]);
    }
  });
});

describe('pins, reclamation and the verifier', () => {
  it('refuses to delete a snapshot that a reader holds, and reclaims incrementally while writes go on', async () => {
    const extents = await MemoryExtentStore.open();
    const tree = await SnapshotTree.open({ meta: await MemoryMetaStore.open(), extents });
    const v = await tree.createVolume({ name: 'v', byteLength: 2048 * 512, blockBytes: 512 });
    for (let i = 0; i < 2048; i += 4) await v.write(i * 512, fill(4 * 512, (i % 250) + 1));
    const s = await tree.snapshot(v.id, { name: 's' });
    for (let i = 0; i < 2048; i += 4) await v.write(i * 512, fill(4 * 512, 251));
    const reader = tree.openSnapshot(s.id);
    await expect(tree.deleteSnapshot(s.id)).rejects.toMatchObject({ code: 'BUSY' });
    await reader.close();
    const before = (await extents.stats()).extentCount;
    await tree.deleteSnapshot(s.id, { reclaim: false });
    let steps = 0;
    for (;;) {
      const r = await tree.reclaim({ maxNodes: 2 });
      await v.write(steps * 512, fill(512, 7)); // writes continue between steps
      steps++;
      if (r.done) break;
    }
    expect(steps).toBeGreaterThan(2);
    expect((await extents.stats()).extentCount).toBeLessThan(before);
    expect((await tree.verify({ readData: true })).problems).toEqual([]);
  });

  it('reports damage with coded problems', async () => {
    const meta = await MemoryMetaStore.open();
    const extents = await MemoryExtentStore.open();
    const tree = await SnapshotTree.open({ meta, extents });
    const v = await tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    await v.write(0, fill(4 * KiB, 1));
    await v.write(4 * KiB, fill(4 * KiB, 2));
    await tree.snapshot(v.id, { name: 's' });
    expect((await tree.verify({ readData: true })).ok).toBe(true);

    const fp1 = tree.fingerprinter.fingerprint(fill(4 * KiB, 1));
    const stray = fill(4 * KiB, 9);
    await extents.put([{ fingerprint: tree.fingerprinter.fingerprint(stray), data: stray }]);
    await extents.delete([fp1]);
    const codes = (await tree.verify()).problems.map((p) => p.code).sort();
    expect(codes).toEqual(['DANGLING_EXTENT', 'LEAKED_EXTENT']);
    expect((await tree.collectGarbage()).leakedExtentsDeleted).toBe(1);
  });
});
