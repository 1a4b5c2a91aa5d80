// A crash of either side in the middle of a transfer: the next attempt resumes the same
// session. The receiver's stores sit on FaultyBlockDevices and crash at a seeded write;
// after a restart on what survived, the transfer completes bit-identical and resends at
// most what arrived since the receiver's last durable checkpoint.
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../../src/index.js';
import { DeviceExtentStore, LogMetaStore, MemoryBlockDevice, MemoryExtentStore, MemoryMetaStore, MemoryTransport } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site, type RemoteSite } from '../../src/replication/index.js';
import { FaultyBlockDevice } from '../../src/testing/index.js';
import { snapshotBytes as content } from './site-helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const PSK = new Uint8Array(32).fill(5);
const CHECKPOINT_BYTES = 512 * KiB;


async function sourceSite() {
  const meta = await MemoryMetaStore.open();
  const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
  const site = await Site.open({ siteId: 'A', tree, meta, peerKeys: () => PSK });
  const vol = await tree.createVolume({ name: 'v', byteLength: 4 * MiB });
  const data = new Uint8Array(vol.byteLength);
  for (let i = 0; i < data.length; i += 4) new DataView(data.buffer).setUint32(i, (i * 2246822519) >>> 0);
  await vol.write(0, data);
  return { site, tree, snap: await tree.snapshot(vol.id, { name: 's' }) };
}

/** Site B on crash-prone devices; `open` reopens it on whatever survived. */
function crashProneTarget(net: MemoryTransport) {
  const inner = { meta: MemoryBlockDevice.create({ byteLength: 1 * MiB }), data: MemoryBlockDevice.create({ byteLength: 1 * MiB }) };
  let generation = 0;
  return async (crashAtMetaWrite?: number) => {
    generation++;
    const metaDev = new FaultyBlockDevice(await inner.meta, { seed: generation, ownsInner: false });
    const dataDev = new FaultyBlockDevice(await inner.data, { seed: generation + 100, ownsInner: false });
    const meta = await LogMetaStore.open({ device: metaDev });
    const extents = await DeviceExtentStore.open({ device: dataDev, meta });
    const tree = await SnapshotTree.open({ meta, extents });
    const site = await Site.open({ siteId: 'B', tree, meta, peerKeys: () => PSK, checkpointBytes: CHECKPOINT_BYTES });
    const listener = await site.listen(net, `B-${generation}:1`);
    if (crashAtMetaWrite !== undefined) metaDev.crashAfterWrites(crashAtMetaWrite);
    const remote: RemoteSite = { siteId: 'B', address: listener.address, transport: net, psk: PSK };
    return {
      tree,
      site,
      remote,
      crash: async () => {
        await listener.close();
        await metaDev.crash();
        await dataDev.crash();
      },
    };
  };
}

describe('crash of either side mid-transfer', () => {
  for (const crashAt of [2, 3, 5, 7]) {
    it(`receiver crashes at its metadata write #${crashAt}; the retry resumes and converges`, async () => {
      const net = MemoryTransport.create();
      const a = await sourceSite();
      const openB = crashProneTarget(net);
      const b1 = await openB(crashAt);
      const first = await a.site.replicate(a.snap.id, b1.remote, { retries: 0 }).then(
        () => 'completed',
        (err: { code?: string }) => err.code,
      );
      // The fault fired inside the transfer: the first attempt failed with the crash.
      expect(first).not.toBe('completed');
      await b1.crash();
      const b2 = await openB();
      const second = await a.site.replicate(a.snap.id, b2.remote);
      expect(equalBytes(await content(b2.tree, second.remoteSnapshotIds[0]!), await content(a.tree, a.snap.id)), `first attempt: ${first}`).toBe(true);
      expect(b2.site.listSnapshots()).toHaveLength(1);
      if (first !== 'completed') expect(second.progress.sentExtentBytes).toBeLessThanOrEqual(4 * MiB);
      await b2.tree.collectGarbage();
      expect((await b2.tree.verify({ readData: true })).problems).toEqual([]);
      await a.site.close();
      await b2.site.close();
    });
  }

  it('resumes from the receiver checkpoint: extents made durable before the crash are not resent', async () => {
    const net = MemoryTransport.create();
    const a = await sourceSite();
    const openB = crashProneTarget(net);
    const b1 = await openB();
    // Stop the sender once half is through; then the receiver loses power.
    const ac = new AbortController();
    await expect(
      a.site.replicate(a.snap.id, b1.remote, {
        signal: ac.signal,
        onProgress: (p) => {
          if (p.completedBytes >= 2 * MiB) ac.abort();
        },
      }),
    ).rejects.toMatchObject({ code: 'ABORTED' });
    await b1.crash();
    const b2 = await openB();
    const resumed = await a.site.replicate(a.snap.id, b2.remote);
    // At least the checkpointed part (>= 2 MiB - one checkpoint interval) arrived durably and is not resent.
    expect(resumed.progress.sentExtentBytes).toBeLessThanOrEqual(4 * MiB - 2 * MiB + CHECKPOINT_BYTES + 4 * 256 * 16 * KiB);
    expect(resumed.progress.sentExtentBytes).toBeLessThan(4 * MiB);
    expect(equalBytes(await content(b2.tree, resumed.remoteSnapshotIds[0]!), await content(a.tree, a.snap.id))).toBe(true);
    await a.site.close();
    await b2.site.close();
  });

  it('sender crash: a new sender process (same stores) resumes the same session', async () => {
    const net = MemoryTransport.create();
    const a = await sourceSite();
    const openB = crashProneTarget(net);
    const b = await openB();
    const ac = new AbortController();
    let sentBefore = 0;
    await expect(
      a.site.replicate(a.snap.id, b.remote, {
        signal: ac.signal,
        onProgress: (p) => {
          sentBefore = p.sentExtentBytes;
          if (p.completedBytes >= 3 * MiB) ac.abort();
        },
      }),
    ).rejects.toMatchObject({ code: 'ABORTED' });
    await a.site.close(); // the sender process is gone
    const a2 = await Site.open({ siteId: 'A', tree: a.tree, meta: await MemoryMetaStore.open(), peerKeys: () => PSK });
    const resumed = await a2.replicate(a.snap.id, b.remote);
    expect(resumed.progress.sentExtentBytes).toBeLessThanOrEqual(4 * MiB - sentBefore + 4 * 256 * 16 * KiB);
    expect(equalBytes(await content(b.tree, resumed.remoteSnapshotIds[0]!), await content(a.tree, a.snap.id))).toBe(true);
    await a2.close();
    await b.site.close();
  });
});
