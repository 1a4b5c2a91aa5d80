// Generations on the wire (issue 14): STATUS_REQ tells a site a peer's generation and role
// in a lineage; replicate and pull refuse a stale or diverged peer on their own, before
// anything is sent (the error is the sender's own, not the receiver's answer); two sides
// that both write a lineage at the same generation — which the receiver's BEGIN guard
// alone lets through — never exchange it; detectSplitBrain asks remote sites itself.
import { describe, expect, it } from 'vitest';
import { MemoryTransport } from '../../src/adapters/index.js';
import { demote, detectSplitBrain, failover, originOf, snapshotPromoted, volumeKeyOf } from '../../src/replication/index.js';
import { SeededPrng } from '../../src/testing/index.js';
import { errorOf, memorySite } from './site-helpers.js';

const KiB = 1024;
const PSK = new Uint8Array(32).fill(13);

/** A writes a lineage and replicates its first snapshot to B and C. */
async function world() {
  const net = MemoryTransport.create();
  const [a, b, c] = await Promise.all(['A', 'B', 'C'].map((id) => memorySite(id, net, PSK)));
  const vol = await a!.tree.createVolume({ name: 'db', byteLength: 32 * 16 * KiB });
  await vol.write(0, new SeededPrng(7).fill(new Uint8Array(vol.byteLength)));
  const s0 = await a!.tree.snapshot(vol.id, { name: 's0' });
  await vol.close();
  const lineage = volumeKeyOf(originOf(s0, 'A'));
  await a!.site.replicate(s0.id, b!.remote);
  await a!.site.replicate(s0.id, c!.remote);
  const close = async () => {
    for (const x of [a!, b!, c!]) await x.site.close();
  };
  return { net, a: a!, b: b!, c: c!, s0, lineage, close };
}

const stagingAt = (x: { site: { tree: { listVolumes(): { name: string }[] } } }) => x.site.tree.listVolumes().filter((v) => v.name.startsWith('.drkit-staging/'));

describe('generations on the wire', () => {
  it('STATUS_REQ reports a peer\'s generation and role, by lineage or by snapshot', async () => {
    const w = await world();
    expect(await w.a.site.remoteStatus(w.b.remote, { lineage: w.lineage })).toEqual({ siteId: 'B', lineage: w.lineage, generation: 0, writableVolumeId: undefined });
    const promoted = await failover(w.b.site, w.lineage, { name: 'db-b' });
    await promoted.volume.close();
    const byLineage = await w.a.site.remoteStatus(w.b.remote, { lineage: w.lineage });
    expect(byLineage).toMatchObject({ generation: 1, writableVolumeId: promoted.volume.id });
    const s1 = await snapshotPromoted(w.b.site, w.lineage, { name: 's1' });
    expect(await w.a.site.remoteStatus(w.b.remote, { snapshotId: s1.id })).toMatchObject({ lineage: w.lineage, generation: 1, snapshotGeneration: 1 });
    expect((await errorOf(w.a.site.remoteStatus(w.b.remote, { snapshotId: 'no-such-snapshot' }, { retries: 0 }))).code).toBe('NOT_FOUND');
    await w.close();
  });

  it('a newer generation is refused (DIVERGED) by a side that still writes the lineage, even when the sender no longer does', async () => {
    const w = await world();
    const promoted = await failover(w.b.site, w.lineage, { name: 'db-b' });
    await promoted.volume.write(0, new Uint8Array(16 * KiB).fill(2));
    await promoted.volume.close();
    const s1 = await snapshotPromoted(w.b.site, w.lineage, { name: 's1' });
    await demote(w.b.site, w.lineage, { force: true }); // B stops writing; A still writes at generation 0
    const err = await errorOf(w.b.site.replicate(s1.id, w.a.remote, { retries: 0 }));
    expect(err.code).toBe('DIVERGED');
    expect(w.a.tree.listSnapshots().map((s) => s.name)).not.toContain('s1');
    await w.b.site.replicate(s1.id, w.c.remote); // C does not write the lineage: it takes generation 1
    await w.close();
  });

  it('replicate refuses a peer at a newer generation on its own (STALE_GENERATION before BEGIN)', async () => {
    const w = await world();
    const promoted = await failover(w.b.site, w.lineage, { name: 'db-b' });
    await promoted.volume.close();
    // The old primary A still writes the lineage at generation 0 and takes a new snapshot.
    const vol = await w.a.tree.openVolume(w.s0.volumeId);
    await vol.write(0, new Uint8Array(16 * KiB).fill(1));
    await vol.close();
    const late = await w.a.tree.snapshot(w.s0.volumeId, { name: 'late' });
    const err = await errorOf(w.a.site.replicate(late.id, w.b.remote, { retries: 0 }));
    expect(err.code).toBe('STALE_GENERATION');
    expect(err.data.fromPeer).toBeUndefined(); // A's own check, not B's answer to a BEGIN
    expect(stagingAt(w.b)).toEqual([]);
    await w.close();
  });

  it('two sites writing a lineage at the same generation never exchange it (DIVERGED, split brain)', async () => {
    const w = await world();
    // Two independent failovers of A's lineage, at B and at C: both write it at generation 1.
    for (const x of [w.b, w.c]) await (await failover(x.site, w.lineage, { name: `db-${x.site.siteId}` })).volume.close();
    const fromB = await snapshotPromoted(w.b.site, w.lineage, { name: 'b1' });
    const err = await errorOf(w.b.site.replicate(fromB.id, w.c.remote, { retries: 0 }));
    expect([err.code, err.data.reason]).toEqual(['DIVERGED', 'split-brain']);
    expect(w.c.site.listSnapshots().map((s) => s.name)).toEqual(['s0']);
    // And pulling it the other way is refused the same way.
    const pulled = await errorOf(w.c.site.pull(w.b.remote, fromB.id, { retries: 0 }));
    expect([pulled.code, pulled.data.reason]).toEqual(['DIVERGED', 'split-brain']);
    expect(stagingAt(w.c)).toEqual([]);
    await w.close();
  });

  it('pull refuses a peer\'s snapshot of an older generation on its own', async () => {
    const w = await world();
    const promoted = await failover(w.b.site, w.lineage, { name: 'db-b' });
    await promoted.volume.close();
    const err = await errorOf(w.b.site.pull(w.a.remote, w.s0.id, { retries: 0 }));
    expect(err.code).toBe('STALE_GENERATION');
    expect(err.data.fromPeer).toBeUndefined();
    await w.close();
  });

  it('detectSplitBrain asks the remote sites itself, and names the ones it cannot reach', async () => {
    const w = await world();
    const promoted = await failover(w.b.site, w.lineage, { name: 'db-b' });
    await promoted.volume.close();
    const gone = { siteId: 'D', address: 'D:7000', transport: w.net, psk: PSK };
    const report = await detectSplitBrain({ site: w.c.site, lineage: w.lineage, remotes: [w.a.remote, w.b.remote, gone], retries: 0 });
    expect(report).toMatchObject({ splitBrain: true, currentSiteId: 'B', staleSiteIds: ['A'], generation: 1, unreachable: [{ siteId: 'D', code: 'CONNECTION_REFUSED' }] });
    expect(report.writable.map((x) => x.siteId)).toEqual(['B', 'A']);
    await w.close();
  });
});
