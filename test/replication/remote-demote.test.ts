// DEMOTE_REQ at the target, check by check (issue 14): a migration rolled back after the
// promotion takes the lineage back by address. Only the site that handed it over may ask
// (AUTH_FAILED for any other authenticated peer), nothing written at the target since the
// promotion is dropped (DIVERGED), a group goes back all or none, a repeat is answered as done.
import { describe, expect, it } from 'vitest';
import { MemoryTransport } from '../../src/adapters/index.js';
import { lineageStatus, originOf, snapshotPromoted, volumeKeyOf } from '../../src/replication/index.js';
import { SeededPrng } from '../../src/testing/index.js';
import { errorOf, memorySite } from './site-helpers.js';

const KiB = 1024;
const PSK = new Uint8Array(32).fill(23);
const NO_RETRY = { retries: 0 };

/** A hands two lineages over to B (their final snapshots are held at B and C). */
async function world() {
  const net = MemoryTransport.create();
  const a = await memorySite('A', net, PSK);
  const b = await memorySite('B', net, PSK);
  const c = await memorySite('C', net, PSK);
  const members = [];
  for (const name of ['one', 'two']) {
    const vol = await a.tree.createVolume({ name, byteLength: 8 * 16 * KiB });
    await vol.write(0, new SeededPrng(name.length + 5).fill(new Uint8Array(vol.byteLength)));
    await vol.close();
    const s = await a.tree.snapshot(vol.id, { name: `${name}-final` });
    for (const to of [b, c]) await a.site.replicate(s.id, to.remote, NO_RETRY);
    members.push({ lineage: volumeKeyOf(originOf(s, 'A')), originSnapshotId: s.id, sourceGeneration: 0 });
  }
  const promoted = await a.site.promoteRemote(b.remote, members.map((m) => ({ ...m, volumeName: `${m.lineage}-b` })), NO_RETRY);
  const close = async () => {
    for (const s of [a, b, c]) await s.site.close();
  };
  return { a, b, c, members, promoted, close };
}

describe('remote demotion (DEMOTE_REQ)', () => {
  it('gives a group back to the site that handed it over, and answers a repeated request as done', async () => {
    const w = await world();
    const first = await w.a.site.demoteRemote(w.b.remote, w.members, NO_RETRY);
    expect(first).toEqual(w.members.map((m) => ({ lineage: m.lineage, generation: 0 })));
    for (const m of w.members) expect(await lineageStatus(w.b.site, m.lineage)).toMatchObject({ generation: 0, writableVolumeId: undefined });
    expect(await w.a.site.demoteRemote(w.b.remote, w.members, NO_RETRY)).toEqual(first);
    // A writes the lineage again at its generation: B accepts it as a replica once more.
    const s = await snapshotPromoted(w.a.site, w.members[0]!.lineage, { name: 'after' });
    expect((await w.a.site.replicate(s.id, w.b.remote, NO_RETRY)).remoteSnapshotIds).toHaveLength(1);
    await w.close();
  });

  it('refuses any other authenticated site (AUTH_FAILED): only the one that handed the lineage over may take it back', async () => {
    const w = await world();
    // C is a trusted peer and knows A's snapshot ids, but B was not promoted from a snapshot of C.
    const err = await errorOf(w.c.site.demoteRemote(w.b.remote, [w.members[0]!], NO_RETRY));
    expect(err.code).toBe('AUTH_FAILED');
    expect((await lineageStatus(w.b.site, w.members[0]!.lineage)).writableVolumeId).toBe(w.promoted[0]!.volumeId);
    // Nor may A name another of its snapshots than the one the promotion started from.
    const vol = await w.a.tree.openVolume(w.a.tree.getSnapshot(w.members[0]!.originSnapshotId).volumeId);
    await vol.close();
    const other = await w.a.tree.snapshot(vol.id, { name: 'other' });
    expect((await errorOf(w.a.site.demoteRemote(w.b.remote, [{ ...w.members[0]!, originSnapshotId: other.id }], NO_RETRY))).code).toBe('AUTH_FAILED');
    expect((await lineageStatus(w.b.site, w.members[0]!.lineage)).writableVolumeId).toBe(w.promoted[0]!.volumeId);
    await w.close();
  });

  it('refuses a generation other than the one after the hand-over (STALE_GENERATION)', async () => {
    const w = await world();
    const err = await errorOf(w.a.site.demoteRemote(w.b.remote, [{ ...w.members[0]!, sourceGeneration: 1 }], NO_RETRY));
    expect(err.code).toBe('STALE_GENERATION');
    expect((await lineageStatus(w.b.site, w.members[0]!.lineage)).writableVolumeId).toBe(w.promoted[0]!.volumeId);
    await w.close();
  });

  it('refuses when the target wrote a member since its promotion (DIVERGED), and demotes no member of the group', async () => {
    const w = await world();
    const written = await w.b.tree.openVolume(w.promoted[1]!.volumeId);
    await written.write(0, new Uint8Array(16 * KiB).fill(9));
    await written.close();
    expect((await errorOf(w.a.site.demoteRemote(w.b.remote, w.members, NO_RETRY))).code).toBe('DIVERGED');
    for (const [i, m] of w.members.entries()) expect((await lineageStatus(w.b.site, m.lineage)).writableVolumeId).toBe(w.promoted[i]!.volumeId);
    await w.close();
  });

  it('refuses when the target snapshotted a member at its new generation (DIVERGED)', async () => {
    const w = await world();
    await snapshotPromoted(w.b.site, w.members[0]!.lineage, { name: 'b-g1' });
    expect((await errorOf(w.a.site.demoteRemote(w.b.remote, [w.members[0]!], NO_RETRY))).code).toBe('DIVERGED');
    expect((await lineageStatus(w.b.site, w.members[0]!.lineage)).writableVolumeId).toBe(w.promoted[0]!.volumeId);
    await w.close();
  });

  it('refuses a site that does not write the lineage but knows a newer generation (STALE_GENERATION), rather than answering done', async () => {
    const w = await world();
    const g1 = await snapshotPromoted(w.b.site, w.members[0]!.lineage, { name: 'b-g1' });
    await w.b.site.replicate(g1.id, w.c.remote, NO_RETRY); // C now knows generation 1
    expect((await errorOf(w.a.site.demoteRemote(w.c.remote, [w.members[0]!], NO_RETRY))).code).toBe('STALE_GENERATION');
    await w.close();
  });
});
