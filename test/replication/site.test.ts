// Sites talking the real protocol over MemoryTransport: replicate, incremental, dedup
// across volumes and sites, chains and meshes, consistency groups, pull (restore from a
// remote site), authentication failures, cancellation.
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../../src/index.js';
import { MemoryExtentStore, MemoryMetaStore, MemoryTransport, SystemClock } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site, type RemoteSite } from '../../src/replication/index.js';
import { snapshotBytes as content } from './site-helpers.js';

const KiB = 1024;
const PSK = new Uint8Array(32).fill(7);

async function makeSite(siteId: string, transport: MemoryTransport, options: { storageOnly?: boolean; psk?: Uint8Array } = {}) {
  const meta = await MemoryMetaStore.open();
  const extents = await MemoryExtentStore.open();
  const tree = await SnapshotTree.open({ meta, extents });
  const site = await Site.open({ siteId, tree, meta, peerKeys: () => options.psk ?? PSK, clock: new SystemClock(), storageOnly: options.storageOnly ?? false });
  const listener = await site.listen(transport, `${siteId}:7000`);
  const remote: RemoteSite = { siteId, address: listener.address, transport, psk: PSK };
  return { site, tree, remote, extents };
}

function pattern(byteLength: number, seed: number): Uint8Array {
  const out = new Uint8Array(byteLength);
  let x = seed || 1;
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    new DataView(out.buffer).setUint32(i, x);
  }
  return out;
}


describe('Site over MemoryTransport', () => {
  it('replicates, then incrementally, across a chain and a mesh, and pulls back', async () => {
    const net = MemoryTransport.create();
    const a = await makeSite('A', net);
    const b = await makeSite('B', net, { storageOnly: true });
    const c = await makeSite('C', net);
    const vol = await a.tree.createVolume({ name: 'db', byteLength: 256 * 16 * KiB });
    await vol.write(0, pattern(vol.byteLength, 1));
    const s1 = await a.tree.snapshot(vol.id, { name: 'one' });

    const toB = await a.site.replicate(s1.id, b.remote);
    expect(equalBytes(await content(b.tree, toB.remoteSnapshotIds[0]!), await content(a.tree, s1.id))).toBe(true);
    expect(toB.progress.sentExtentBytes).toBe(vol.byteLength);

    // Chain: B forwards its replica to C; C now holds A's snapshot by origin.
    const toC = await b.site.replicate(toB.remoteSnapshotIds[0]!, c.remote);
    expect(equalBytes(await content(c.tree, toC.remoteSnapshotIds[0]!), await content(a.tree, s1.id))).toBe(true);

    // Incremental from A to C uses the snapshot C got through B as the base (mesh).
    await vol.write(10 * 16 * KiB, pattern(16 * KiB, 9));
    const s2 = await a.tree.snapshot(vol.id, { name: 'two' });
    const inc = await a.site.replicate(s2.id, c.remote);
    expect(inc.baseSnapshotIds).toEqual([s1.id]);
    expect(inc.progress.totalBytes).toBe(16 * KiB);
    expect(inc.progress.sentExtentBytes).toBe(16 * KiB);
    expect(equalBytes(await content(c.tree, inc.remoteSnapshotIds[0]!), await content(a.tree, s2.id))).toBe(true);

    // Restore from the backup target: a fresh site pulls B's copy; only missing data moves.
    const d = await makeSite('D', net);
    const pulled = await d.site.pull(b.remote, toB.remoteSnapshotIds[0]!);
    expect(equalBytes(await content(d.tree, pulled.id), await content(a.tree, s1.id))).toBe(true);
    expect(d.site.listVolumes()).toEqual([]);
    for (const s of [a, b, c, d]) {
      expect((await s.tree.verify({ readData: true })).problems).toEqual([]);
      await s.site.close();
    }
  });

  it('replicates a consistency group over the wire, atomically', async () => {
    const net = MemoryTransport.create();
    const a = await makeSite('A', net);
    const b = await makeSite('B', net);
    const app = await a.tree.createVolume({ name: 'app', byteLength: 64 * 16 * KiB });
    const db = await a.tree.createVolume({ name: 'db', byteLength: 64 * 16 * KiB });
    await app.write(0, pattern(32 * 16 * KiB, 3));
    await db.write(0, pattern(32 * 16 * KiB, 4));
    const group = await a.tree.snapshotGroup([app.id, db.id], { name: 'nightly' });
    const r = await a.site.replicate(group.map((g) => g.id), b.remote);
    const remote = r.remoteSnapshotIds.map((id) => b.tree.getSnapshot(id));
    expect(new Set(remote.map((s) => s.groupId)).size).toBe(1);
    expect(equalBytes(await content(b.tree, remote[1]!.id), await content(a.tree, group[1]!.id))).toBe(true);
    await a.site.close();
    await b.site.close();
  });

  it('refuses a peer with the wrong key, with AUTH_FAILED and no retry', async () => {
    const net = MemoryTransport.create();
    const a = await makeSite('A', net);
    const b = await makeSite('B', net, { psk: new Uint8Array(32).fill(9) });
    const vol = await a.tree.createVolume({ name: 'v', byteLength: 16 * 16 * KiB });
    const s = await a.tree.snapshot(vol.id, { name: 's' });
    await expect(a.site.replicate(s.id, b.remote, { retries: 3, retryDelayMs: 1 })).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    await expect(a.site.replicate(s.id, { ...b.remote, siteId: 'NOT-B' })).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    expect(b.tree.listSnapshots()).toEqual([]);
    await a.site.close();
    await b.site.close();
  });

  it('is cancellable and resumes afterwards without resending what arrived', async () => {
    const net = MemoryTransport.create();
    const a = await makeSite('A', net);
    const b = await makeSite('B', net);
    const vol = await a.tree.createVolume({ name: 'v', byteLength: 2048 * 16 * KiB });
    await vol.write(0, pattern(vol.byteLength, 5));
    const s = await a.tree.snapshot(vol.id, { name: 's' });
    const ac = new AbortController();
    let sentBeforeAbort = 0;
    await expect(
      a.site.replicate(s.id, b.remote, {
        signal: ac.signal,
        onProgress: (p) => {
          sentBeforeAbort = p.sentExtentBytes;
          if (p.completedBytes >= vol.byteLength / 4) ac.abort();
        },
      }),
    ).rejects.toMatchObject({ code: 'ABORTED' });
    expect(b.tree.listSnapshots()).toEqual([]);
    expect(sentBeforeAbort).toBeGreaterThan(0);
    const resumed = await a.site.replicate(s.id, b.remote);
    expect(resumed.progress.sentExtentBytes).toBeLessThanOrEqual(vol.byteLength - sentBeforeAbort + 8 * 256 * 16 * KiB);
    expect(equalBytes(await content(b.tree, resumed.remoteSnapshotIds[0]!), await content(a.tree, s.id))).toBe(true);
    await a.site.close();
    await b.site.close();
  });
});

describe('remote retention', () => {
  it('lists and prunes replicas of our own snapshots only', async () => {
    const net = MemoryTransport.create();
    const a = await makeSite('A', net);
    const b = await makeSite('B', net);
    const c = await makeSite('C', net);
    const vol = await a.tree.createVolume({ name: 'v', byteLength: 16 * 16 * KiB });
    const snaps = [];
    for (let i = 0; i < 3; i++) {
      await vol.write(0, new Uint8Array(16 * KiB).fill(i + 1));
      const s = await a.tree.snapshot(vol.id, { name: `s${i}` });
      await a.site.replicate(s.id, b.remote);
      snaps.push(s);
    }
    const volumeKey = `A/${vol.id}`;
    expect((await a.site.listRemote(b.remote, volumeKey)).map((h) => h.originSnapshotId)).toEqual(snaps.map((s) => s.id));
    // C may not prune A's replicas at B.
    expect(await c.site.pruneRemote(b.remote, [snaps[0]!.id])).toEqual([]);
    const deleted = await a.site.pruneRemote(b.remote, [snaps[0]!.id, snaps[1]!.id]);
    expect(deleted).toHaveLength(2);
    expect((await a.site.listRemote(b.remote, volumeKey)).map((h) => h.originSnapshotId)).toEqual([snaps[2]!.id]);
    expect((await b.tree.verify({ readData: true })).problems).toEqual([]);
    for (const s of [a, b, c]) await s.site.close();
  });
});

describe('bandwidth limit and source corruption', () => {
  it('holds extent traffic to the configured rate (virtual time)', async () => {
    const { VirtualClock } = await import('../../src/adapters/index.js');
    const { SimulatedNetwork } = await import('../../src/testing/index.js');
    const clock = new VirtualClock(0);
    const net = new SimulatedNetwork({ clock, seed: 9 });
    const mk = async (siteId: string) => {
      const meta = await MemoryMetaStore.open();
      const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open(), clock });
      return { tree, site: await Site.open({ siteId, tree, meta, clock, peerKeys: () => PSK }) };
    };
    const a = await mk('A');
    const b = await mk('B');
    const listener = await b.site.listen(net.transport('B'), 'B:1');
    const vol = await a.tree.createVolume({ name: 'v', byteLength: 64 * 16 * KiB });
    await vol.write(0, pattern(vol.byteLength, 11)); // 1 MiB of incompressible data
    const s = await a.tree.snapshot(vol.id, { name: 's' });
    const advancing = net.autoAdvance();
    const t0 = clock.now();
    await a.site.replicate(s.id, { siteId: 'B', address: listener.address, transport: net.transport('A'), psk: PSK }, { bandwidthBytesPerSec: 200_000 });
    const elapsedMs = clock.now() - t0;
    await advancing.stop();
    // 1 MiB at 200 kB/s with a one-second burst allowance: at least ~4.2 s.
    expect(elapsedMs).toBeGreaterThan(4_000);
    expect(elapsedMs).toBeLessThan(8_000);
    await a.site.close();
    await b.site.close();
  });

  it('refuses to ship an extent that is corrupt at the source, and commits nothing', async () => {
    const net = MemoryTransport.create();
    const meta = await MemoryMetaStore.open();
    const extents = await MemoryExtentStore.open();
    const tree = await SnapshotTree.open({ meta, extents });
    const a = await Site.open({ siteId: 'A', tree, meta, peerKeys: () => PSK });
    const b = await makeSite('B', net);
    const vol = await tree.createVolume({ name: 'v', byteLength: 16 * 16 * KiB });
    const block = pattern(16 * KiB, 12);
    await vol.write(0, block);
    const s = await tree.snapshot(vol.id, { name: 's' });
    extents.corruptForTesting(tree.fingerprinter.fingerprint(block), 77);
    await expect(a.replicate(s.id, b.remote)).rejects.toMatchObject({ code: 'CORRUPTION' });
    expect(b.site.listSnapshots()).toEqual([]);
    await a.close();
    await b.site.close();
  });
});

describe('storage-only sites', () => {
  it('refuse to open over a tree that holds volumes', async () => {
    const meta = await MemoryMetaStore.open();
    const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
    await tree.createVolume({ name: 'v', byteLength: 16 * 16 * KiB });
    await expect(Site.open({ siteId: 'T', tree, meta, storageOnly: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('pull of a snapshot already held', () => {
  it('resolves at once with the local copy (nothing crosses the wire)', async () => {
    const net = MemoryTransport.create();
    const a = await makeSite('A', net);
    const b = await makeSite('B', net);
    const vol = await a.tree.createVolume({ name: 'v', byteLength: 16 * 16 * KiB });
    await vol.write(0, pattern(vol.byteLength, 21));
    const s = await a.tree.snapshot(vol.id, { name: 's' });
    const r = await a.site.replicate(s.id, b.remote);
    const first = await a.site.pull(b.remote, r.remoteSnapshotIds[0]!);
    expect(first.id).toBe(s.id); // A already holds the origin of B's replica
    await a.site.close();
    await b.site.close();
  });
});
