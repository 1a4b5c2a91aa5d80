// Promotion, unplanned failover, failback and split-brain safety between Sites talking
// the real protocol over MemoryTransport, with a VirtualClock for snapshot times. Every
// randomised test derives its data from a seed printed in its assertion messages.
import { describe, expect, it } from 'vitest';
import { equalBytes, isDrkitError } from '../../src/index.js';
import { MemoryExtentStore, MemoryMetaStore, MemoryTransport, VirtualClock } from '../../src/adapters/index.js';
import type { Connection, Transport } from '../../src/adapters/index.js';
import { SnapshotTree, type Volume } from '../../src/snapshot/index.js';
import {
  Site,
  demote,
  detectSplitBrain,
  failback,
  failover,
  generationOf,
  lineageStatus,
  originOf,
  promote,
  snapshotPromoted,
  volumeKeyOf,
  type RemoteSite,
} from '../../src/replication/index.js';
import { snapshotBytes } from './site-helpers.js';

const PSK = new Uint8Array(32).fill(5);
const BLOCK_BYTES = 4096;

/** Counts every byte a client connection writes and reads: the wire cost of a transfer. */
class CountingTransport implements Transport {
  wireBytes = 0;
  constructor(private readonly inner: Transport) {}
  async connect(address: string, options?: Parameters<Transport['connect']>[1]): Promise<Connection> {
    const c = await this.inner.connect(address, options);
    const self = this;
    return {
      peer: c.peer,
      async write(bytes, o) {
        self.wireBytes += bytes.length;
        return c.write(bytes, o);
      },
      async *read() {
        for await (const chunk of c.read()) {
          self.wireBytes += chunk.length;
          yield chunk;
        }
      },
      close: () => c.close(),
      destroy: (reason) => c.destroy(reason),
    };
  }
  listen(address: string, options: Parameters<Transport['listen']>[1]) {
    return this.inner.listen(address, options);
  }
}

interface TestSite {
  site: Site;
  tree: SnapshotTree;
  remote: RemoteSite;
  counter: CountingTransport;
}

async function makeSite(siteId: string, net: MemoryTransport, clock: VirtualClock): Promise<TestSite> {
  const meta = await MemoryMetaStore.open();
  const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open(), clock });
  const site = await Site.open({ siteId, tree, meta, clock, peerKeys: () => PSK });
  const listener = await site.listen(net, `${siteId}:7000`);
  const counter = new CountingTransport(net);
  return { site, tree, counter, remote: { siteId, address: listener.address, transport: counter, psk: PSK } };
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x;
  };
}

function randomBytes(next: () => number, byteLength: number): Uint8Array {
  const out = new Uint8Array(byteLength);
  for (let i = 0; i < byteLength; i += 4) new DataView(out.buffer).setUint32(i, next());
  return out;
}

/** Writes `blockCount` random blocks at random places; returns the distinct blocks written. */
async function scribble(volume: Volume, next: () => number, blockCount: number): Promise<Set<number>> {
  const written = new Set<number>();
  const blocks = volume.byteLength / BLOCK_BYTES;
  for (let i = 0; i < blockCount; i++) {
    const b = next() % blocks;
    written.add(b);
    await volume.write(b * BLOCK_BYTES, randomBytes(next, BLOCK_BYTES));
  }
  return written;
}


async function volumeBytes(tree: SnapshotTree, volumeId: string): Promise<Uint8Array> {
  const v = await tree.openVolume(volumeId);
  try {
    return await v.read(0, v.byteLength);
  } finally {
    await v.close();
  }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return isDrkitError(err) ? err.code : `uncoded: ${String(err)}`;
  }
  return 'resolved';
}

const NO_RETRY = { retries: 0 };

describe('failover and failback', () => {
  it('failover yields exactly the last replicated snapshot after the source dies mid-transfer', async () => {
    for (const seed of [11, 12, 13, 14, 15]) {
      const next = rng(seed);
      const clock = new VirtualClock(1_000_000);
      const net = MemoryTransport.create();
      const a = await makeSite('A', net, clock);
      const b = await makeSite('B', net, clock);
      // 1024 blocks of 4 KiB: a full send spans 4 batches, so an abort lands mid-way.
      const vol = await a.tree.createVolume({ name: 'db', byteLength: 1024 * BLOCK_BYTES, blockBytes: BLOCK_BYTES });
      await scribble(vol, next, 300);
      const s1 = await a.tree.snapshot(vol.id, { name: 's1' });
      const lineage = volumeKeyOf(originOf(s1, 'A'));
      await a.site.replicate(s1.id, b.remote, NO_RETRY);
      await clock.advance(1000);
      await vol.write(0, randomBytes(next, vol.byteLength)); // rewrite everything: s2 needs every batch
      const s2 = await a.tree.snapshot(vol.id, { name: 's2' });
      const dies = new AbortController();
      const cut = 1 + (next() % 3); // the transfer dies after 1-3 batches
      let batches = 0;
      const code = await codeOf(a.site.replicate(s2.id, b.remote, { ...NO_RETRY, signal: dies.signal, onProgress: (p) => { if (p.phase === 'transfer' && ++batches === cut) dies.abort(); } }));
      expect(code, `seed ${seed}`).toBe('ABORTED');
      await a.site.close(); // the source is gone

      const promotion = await failover(b.site, lineage, { name: 'db-dr' });
      expect(promotion.generation, `seed ${seed}`).toBe(1);
      expect(b.tree.getSnapshot(promotion.fromSnapshotId).createdMs, `seed ${seed}`).toBe(s1.createdMs);
      const got = await promotion.volume.read(0, promotion.volume.byteLength);
      expect(equalBytes(got, await snapshotBytes(a.tree, s1.id)), `seed ${seed}: promoted content is s1`).toBe(true);
      // The promoted volume continues the lineage, one generation up.
      await promotion.volume.write(0, randomBytes(next, BLOCK_BYTES));
      const p1 = await snapshotPromoted(b.site, lineage, { name: 'after' });
      expect(volumeKeyOf(originOf(p1, 'B'))).toBe(lineage);
      expect(generationOf(p1)).toBe(1);
      await promotion.volume.close();
      await vol.close();
      await b.site.close();
    }
  });

  it('fails back shipping only the delta, keeps the old side\'s writes as a clone, refuses the stale side, and migrates back', async () => {
    const seed = 20261125;
    const next = rng(seed);
    const clock = new VirtualClock(1_000_000);
    const net = MemoryTransport.create();
    const a = await makeSite('A', net, clock);
    const b = await makeSite('B', net, clock);
    const vol = await a.tree.createVolume({ name: 'db', byteLength: 1024 * BLOCK_BYTES, blockBytes: BLOCK_BYTES });
    await vol.write(0, randomBytes(next, vol.byteLength));
    const s1 = await a.tree.snapshot(vol.id, { name: 's1' });
    const lineage = volumeKeyOf(originOf(s1, 'A'));
    await a.site.replicate(s1.id, b.remote, NO_RETRY);
    await clock.advance(1000);
    // A writes after the last replication (snapshotted, and not), then becomes unreachable.
    await scribble(vol, next, 10);
    const s2 = await a.tree.snapshot(vol.id, { name: 's2' });
    await scribble(vol, next, 3);
    const oldSideBytes = await vol.read(0, vol.byteLength);

    const promotion = await failover(b.site, lineage, { name: 'db-dr' });
    expect(promotion.generation).toBe(1);
    await clock.advance(1000);
    const changed = await scribble(promotion.volume, next, 51); // ~5% of the blocks
    const p1 = await snapshotPromoted(b.site, lineage, { name: 'p1' });

    // A returns. Two writable sides: reported; A's stale generation is refused by B, and
    // B's newer generation by A while A still writes the lineage.
    const report = detectSplitBrain([await lineageStatus(a.site, lineage), await lineageStatus(b.site, lineage)]);
    expect(report).toMatchObject({ splitBrain: true, currentSiteId: 'B', staleSiteIds: ['A'], generation: 1 });
    const stagingBefore = b.tree.listVolumes().length;
    expect(await codeOf(a.site.replicate(s2.id, b.remote, NO_RETRY))).toBe('STALE_GENERATION');
    expect(b.tree.listVolumes().length).toBe(stagingBefore); // refused before anything was stored
    expect(await codeOf(b.site.replicate(p1.id, a.remote, NO_RETRY))).toBe('DIVERGED');
    expect(await codeOf(demote(a.site, lineage))).toBe('DIVERGED');
    // Failing back the wrong way (the current side onto the stale one) is refused and
    // leaves B writing the lineage.
    expect(await codeOf(failback(b.site, a.remote, lineage, NO_RETRY))).toBe('STALE_GENERATION');
    expect((await lineageStatus(b.site, lineage)).writableVolumeId).toBe(promotion.volume.id);

    b.counter.wireBytes = 0; // counts connections made to B: the pull
    const back = await failback(a.site, b.remote, lineage, { ...NO_RETRY });
    expect(back.commonSnapshotId).toBe(s1.id);
    expect(back.demotedVolumeId).toBe(vol.id);
    // Only the delta crossed: the changed blocks plus protocol overhead, far below the volume.
    const deltaBytes = changed.size * BLOCK_BYTES;
    expect(b.counter.wireBytes).toBeGreaterThanOrEqual(deltaBytes);
    expect(b.counter.wireBytes).toBeLessThan(deltaBytes + 64 * 1024);
    expect(b.counter.wireBytes).toBeLessThan(vol.byteLength / 10);
    console.log(`failback wire: ${b.counter.wireBytes} bytes for ${changed.size} changed 4 KiB blocks of a ${vol.byteLength}-byte volume`);
    // Nothing of A's was discarded: its post-base writes live on as a clone, s2 as a snapshot.
    expect(back.divergedVolumeId).toBeDefined();
    expect(a.tree.getVolume(back.divergedVolumeId!).name).toMatch(/^db-diverged-\d+$/);
    expect(equalBytes(await volumeBytes(a.tree, back.divergedVolumeId!), oldSideBytes)).toBe(true);
    expect(a.tree.getSnapshot(s2.id).id).toBe(s2.id);
    // Both sides hold the promoted side's state bit for bit; no split brain remains.
    expect(equalBytes(await snapshotBytes(a.tree, back.resyncedSnapshotId), await snapshotBytes(b.tree, p1.id))).toBe(true);
    expect(detectSplitBrain([await lineageStatus(a.site, lineage), await lineageStatus(b.site, lineage)])).toMatchObject({ splitBrain: false, currentSiteId: 'B' });
    // Rerunning is harmless: nothing new to keep, nothing new to pull.
    const again = await failback(a.site, b.remote, lineage, NO_RETRY);
    expect(again).toMatchObject({ divergedVolumeId: undefined, resyncedSnapshotId: back.resyncedSnapshotId });

    // Migrate back: B's final snapshot, B stops writing, A is promoted at generation 2.
    await clock.advance(1000);
    await scribble(promotion.volume, next, 4);
    const pFinal = await snapshotPromoted(b.site, lineage, { name: 'final' });
    const toA = await b.site.replicate(pFinal.id, a.remote, NO_RETRY);
    expect(toA.baseSnapshotIds).toEqual([p1.id]);
    await promotion.volume.close();
    await demote(b.site, lineage, { force: true });
    const home = await promote(a.site, toA.remoteSnapshotIds[0]!, { volumeId: back.demotedVolumeId! });
    expect(home.generation).toBe(2);
    expect(equalBytes(await home.volume.read(0, home.volume.byteLength), await snapshotBytes(b.tree, pFinal.id))).toBe(true);
    await clock.advance(1000);
    await scribble(home.volume, next, 2);
    const h1 = await snapshotPromoted(a.site, lineage, { name: 'home' });
    const toB = await a.site.replicate(h1.id, b.remote, NO_RETRY);
    expect(toB.baseSnapshotIds[0]).toBeDefined(); // incremental back again
    expect(toB.progress.sentExtentBytes).toBeLessThanOrEqual(2 * BLOCK_BYTES);
    expect(await codeOf(promote(a.site, h1.id, { name: 'twice' }))).toBe('ALREADY_EXISTS');
    await home.volume.close();
    await vol.close();
    for (const s of [a, b]) {
      expect((await s.tree.verify({ readData: true })).problems).toEqual([]);
      await s.site.close();
    }
  });

  it('rejects bad promotion and split-brain inputs with coded errors', async () => {
    const clock = new VirtualClock(0);
    const net = MemoryTransport.create();
    const a = await makeSite('A', net, clock);
    const vol = await a.tree.createVolume({ name: 'db', byteLength: 8 * BLOCK_BYTES, blockBytes: BLOCK_BYTES });
    const s = await a.tree.snapshot(vol.id, { name: 's' });
    expect(await codeOf(promote(a.site, s.id, {}))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(promote(a.site, s.id, { name: 'x', volumeId: vol.id }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(promote(a.site, 'snap-999', { name: 'x' }))).toBe('NOT_FOUND');
    expect(await codeOf(promote(a.site, s.id, { name: 'x' }))).toBe('ALREADY_EXISTS'); // A writes its own lineage
    expect(await codeOf(failover(a.site, 'Z/vol-9', { name: 'x' }))).toBe('NOT_FOUND');
    expect(await codeOf(failover(a.site, '', { name: 'x' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(snapshotPromoted(a.site, 'Z/vol-9', { name: 'x' }))).toBe('NOT_FOUND');
    expect(() => detectSplitBrain([])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    const st = await lineageStatus(a.site, `A/${vol.id}`);
    expect(st).toMatchObject({ generation: 0, writableVolumeId: vol.id, snapshotIds: [s.id] });
    expect(() => detectSplitBrain([st, st])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    await vol.close();
    await a.site.close();
  });

  it('100 seeded failover/failback cycles with writes on whichever side is primary converge bit-identical', async () => {
    const seed = Number(process.env.DRKIT_FAILOVER_SEED ?? 6006);
    const next = rng(seed);
    const clock = new VirtualClock(1_000_000);
    const net = MemoryTransport.create();
    const sites = [await makeSite('A', net, clock), await makeSite('B', net, clock)];
    const first = await sites[0]!.tree.createVolume({ name: 'db', byteLength: 128 * BLOCK_BYTES, blockBytes: BLOCK_BYTES });
    await first.write(0, randomBytes(next, first.byteLength));
    const lineage = `A/${first.id}`;
    let primary = 0;
    const volumes: (Volume | undefined)[] = [first, undefined]; // each site's writable (or demoted) volume
    let generation = 0;
    for (let cycle = 0; cycle < 100; cycle++) {
      const msg = `seed ${seed} (DRKIT_FAILOVER_SEED), cycle ${cycle}`;
      const p = sites[primary]!;
      const r = sites[1 - primary]!;
      const pv = volumes[primary]!;
      // Writes on the primary, replicated.
      await clock.advance(1000);
      await scribble(pv, next, 1 + (next() % 8));
      const last = await snapshotPromoted(p.site, lineage, { name: `c${cycle}` });
      expect(generationOf(last), msg).toBe(generation);
      const sent = await p.site.replicate(last.id, r.remote, NO_RETRY);
      if (cycle > 0) expect(sent.baseSnapshotIds[0], `${msg}: incremental`).toBeDefined();
      // More writes the replica never sees (sometimes snapshotted), then the primary dies.
      await clock.advance(1000);
      const lost = next() % 4;
      await scribble(pv, next, lost);
      if (next() % 2 === 0) await snapshotPromoted(p.site, lineage, { name: `c${cycle}-unsent` });
      const oldSide = await pv.read(0, pv.byteLength);

      // Unplanned failover at the replica: exactly the last replicated snapshot.
      const reuse = volumes[1 - primary];
      if (reuse !== undefined) await reuse.close();
      const promo = await failover(r.site, lineage, reuse === undefined ? { name: 'db' } : { volumeId: reuse.id });
      generation += 1;
      expect(promo.generation, msg).toBe(generation);
      expect(equalBytes(await promo.volume.read(0, promo.volume.byteLength), await snapshotBytes(p.tree, last.id)), `${msg}: promoted = last replicated`).toBe(true);
      volumes[1 - primary] = promo.volume;
      await clock.advance(1000);
      const changed = await scribble(promo.volume, next, 1 + (next() % 8));
      const newest = await snapshotPromoted(r.site, lineage, { name: `c${cycle}-dr` });

      // The old primary returns and fails back.
      r.counter.wireBytes = 0; // counts connections made to r: the pull
      const back = await failback(p.site, r.remote, lineage, NO_RETRY);
      expect(back.commonSnapshotId, msg).toBe(last.id);
      expect(r.counter.wireBytes, `${msg}: the delta`).toBeGreaterThanOrEqual(changed.size * BLOCK_BYTES);
      expect(r.counter.wireBytes, `${msg}: only the delta`).toBeLessThan(changed.size * BLOCK_BYTES + 64 * 1024);
      if (lost > 0) {
        expect(back.divergedVolumeId, msg).toBeDefined();
        expect(equalBytes(await volumeBytes(p.tree, back.divergedVolumeId!), oldSide), `${msg}: old side's writes kept`).toBe(true);
      }
      // Converged: both sides hold the new primary's state bit for bit, one writer.
      const target = await snapshotBytes(r.tree, newest.id);
      expect(equalBytes(await snapshotBytes(p.tree, back.resyncedSnapshotId), target), `${msg}: resynced`).toBe(true);
      expect(equalBytes(await promo.volume.read(0, promo.volume.byteLength), target), msg).toBe(true);
      const report = detectSplitBrain([await lineageStatus(p.site, lineage), await lineageStatus(r.site, lineage)]);
      expect(report, msg).toMatchObject({ splitBrain: false, currentSiteId: r.site.siteId, generation });
      primary = 1 - primary;
    }
    for (const v of volumes) await v?.close();
    for (const s of sites) {
      expect((await s.tree.verify({ readData: true })).problems).toEqual([]);
      await s.site.close();
    }
  });
});
