// Restore and clone of a protection domain: two sites over MemoryTransport, a PD with a
// consistency group of two volumes plus one volume on its own, snapshotted by the
// Protector (so restore points are grouped exactly as the engine records them) and
// replicated to B. Restores in place from a local point and from a point held only at
// B (only missing data crosses the wire), clones with a prefix, and bad inputs.
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../../src/index.js';
import { MemoryExtentStore, MemoryMetaStore, MemoryTransport, SystemClock, VirtualClock, type Connection, type IoOptions, type Transport } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site, type RemoteSite } from '../../src/replication/index.js';
import { Protector, cloneDomain, createProtectionDomain, listRestorePoints, restoreDomain, type ProtectionDomain, type RestorePoint } from '../../src/policy/index.js';

const KiB = 1024;
const BLOCK_BYTES = 16 * KiB;
const VOLUME_BYTES = 64 * BLOCK_BYTES; // 1 MiB
const PSK = new Uint8Array(32).fill(7);
const SEED = 20261125;

/** Counts every byte a site's connections send and receive. */
class CountingTransport implements Transport {
  bytes = 0;
  constructor(readonly inner: Transport) {}
  async connect(address: string, options?: IoOptions & { timeoutMs?: number }): Promise<Connection> {
    const c = await this.inner.connect(address, options);
    const counter = this;
    return {
      peer: c.peer,
      async write(bytes: Uint8Array, o?: IoOptions) {
        counter.bytes += bytes.length;
        return c.write(bytes, o);
      },
      read() {
        return (async function* () {
          for await (const chunk of c.read()) {
            counter.bytes += chunk.length;
            yield chunk;
          }
        })();
      },
      close: () => c.close(),
      destroy: (reason?: Error) => c.destroy(reason),
    };
  }
  listen: Transport['listen'] = (address, options) => this.inner.listen(address, options);
}

function pattern(byteLength: number, seed: number): Uint8Array {
  const out = new Uint8Array(byteLength);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    new DataView(out.buffer).setUint32(i, x);
  }
  return out;
}

async function volumeBytes(tree: SnapshotTree, volumeId: string): Promise<Uint8Array> {
  const v = await tree.openVolume(volumeId);
  try {
    return await v.read(0, v.byteLength);
  } finally {
    await v.close();
  }
}

async function snapshotBytes(tree: SnapshotTree, snapshotId: string): Promise<Uint8Array> {
  const r = tree.openSnapshot(snapshotId);
  try {
    return await r.read(0, r.byteLength);
  } finally {
    await r.close();
  }
}

async function makeWorld() {
  const net = MemoryTransport.create();
  const clock = new VirtualClock(Date.UTC(2026, 0, 1));
  const open = async (siteId: string) => {
    const meta = await MemoryMetaStore.open();
    const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open(), clock });
    const site = await Site.open({ siteId, tree, meta, peerKeys: () => PSK, clock: new SystemClock() });
    const listener = await site.listen(net, `${siteId}:7000`);
    return { meta, tree, site, address: listener.address };
  };
  const a = await open('A');
  const b = await open('B');
  const counting = new CountingTransport(net);
  const remoteB: RemoteSite = { siteId: 'B', address: b.address, transport: counting, psk: PSK };
  const vols = [];
  for (const [i, name] of ['db', 'log', 'cfg'].entries()) {
    const v = await a.tree.createVolume({ name, byteLength: VOLUME_BYTES, blockBytes: BLOCK_BYTES });
    await v.write(0, pattern(VOLUME_BYTES, SEED + i));
    await v.close();
    vols.push(v.id);
  }
  const [db, log, cfg] = vols as [string, string, string];
  const pd = createProtectionDomain({
    id: 'shop',
    protects: { kind: 'entities', entities: vols.map((id) => ({ kind: 'volume' as const, id })) },
    consistencyGroups: [{ id: 'app', entities: [{ kind: 'volume', id: db }, { kind: 'volume', id: log }] }],
  });
  const protector = await Protector.open({ site: a.site, clock, meta: a.meta, connectionFor: () => ({ transport: counting, psk: PSK }) });
  await protector.addDomain(pd);
  return { net, clock, a, b, remoteB, counting, pd, protector, db, log, cfg };
}

type World = Awaited<ReturnType<typeof makeWorld>>;

/** Takes a PD snapshot with the Protector, replicates each unit to B, and records every volume's bytes. */
async function protect(w: World, replicate: boolean): Promise<{ ids: string[]; bytes: Map<string, Uint8Array> }> {
  const infos = await w.protector.snapshotNow(w.pd.id);
  if (replicate) {
    const group = infos.filter((s) => s.groupId !== undefined).map((s) => s.id);
    await w.a.site.replicate(group, w.remoteB);
    for (const s of infos.filter((x) => x.groupId === undefined)) await w.a.site.replicate(s.id, w.remoteB);
  }
  const bytes = new Map<string, Uint8Array>();
  for (const s of infos) bytes.set(s.volumeId, await snapshotBytes(w.a.tree, s.id));
  return { ids: infos.map((s) => s.id), bytes };
}

async function scribble(w: World, seed: number, blocks: readonly number[]): Promise<void> {
  for (const [i, volumeId] of [w.db, w.log, w.cfg].entries()) {
    const v = await w.a.tree.openVolume(volumeId);
    for (const blockIndex of blocks) await v.write(blockIndex * BLOCK_BYTES, pattern(BLOCK_BYTES, seed * 31 + i * 7 + blockIndex));
    await v.close();
  }
  await w.a.tree.flush();
}

function pointOf(points: readonly RestorePoint[], snapshotId: string): RestorePoint {
  const p = points.find((x) => x.members.some((m) => m.localSnapshotId === snapshotId));
  expect(p, `no restore point holds ${snapshotId} (seed ${SEED})`).toBeDefined();
  return p!;
}

async function close(w: World): Promise<void> {
  await w.protector.close();
  await w.a.site.close();
  await w.b.site.close();
}

describe('restore and clone of a protection domain', () => {
  it('lists Protector fires as restore points and restores in place from a local one', async () => {
    const w = await makeWorld();
    const p1 = await protect(w, true);
    await w.clock.advance(60_000);
    await scribble(w, 1, [3, 40]);
    const p2 = await protect(w, false);
    await scribble(w, 2, [0, 5, 63]); // the live state differs from both points

    const points = await listRestorePoints(w.pd, { site: w.a.site, remotes: [w.remoteB] });
    expect(points.map((p) => p.members.map((m) => m.localSnapshotId))).toEqual([p1.ids, p2.ids].map((ids) => [...ids].sort((x, y) => x.localeCompare(y, 'en', { numeric: true }))));
    const [first, second] = points as [RestorePoint, RestorePoint];
    expect(first).toMatchObject({ domainId: 'shop', heldLocally: true, complete: true, consistency: 'crash', remoteSiteIds: ['B'], scheduleId: undefined });
    expect(second).toMatchObject({ heldLocally: true, complete: true, remoteSiteIds: [] });
    expect(first.members.find((m) => m.volumeId === w.db)!.unitKey).toBe('cg:app');
    expect(first.members.find((m) => m.volumeId === w.cfg)!.unitKey).toBe(`volume:${w.cfg}`);
    expect(second.createdMs - first.createdMs).toBe(60_000);

    const report = await restoreDomain(w.pd, first, { site: w.a.site });
    expect(report.ok).toBe(true);
    expect(report.pulledSnapshotIds).toEqual([]);
    expect(report.entities.map((e) => e.entity.id).sort()).toEqual([w.db, w.log, w.cfg].sort());
    for (const e of report.entities) for (const v of e.volumes) expect(v.snapshotDigest).toBe(v.volumeDigest);
    for (const id of [w.db, w.log, w.cfg]) expect(equalBytes(await volumeBytes(w.a.tree, id), p1.bytes.get(id)!), `volume ${id} (seed ${SEED})`).toBe(true);

    // Chosen entities only: cfg goes to the second point, the group stays at the first.
    await restoreDomain(w.pd, second, { site: w.a.site, entities: [{ kind: 'volume', id: w.cfg }] });
    expect(equalBytes(await volumeBytes(w.a.tree, w.cfg), p2.bytes.get(w.cfg)!)).toBe(true);
    expect(equalBytes(await volumeBytes(w.a.tree, w.db), p1.bytes.get(w.db)!)).toBe(true);
    expect((await w.a.tree.verify({ readData: true })).problems).toEqual([]);
    await close(w);
  });

  it('restores from a point held only at the remote, pulling only what is missing', async () => {
    const w = await makeWorld();
    await protect(w, true);
    await w.clock.advance(60_000);
    await scribble(w, 3, [7, 8, 30]);
    const p2 = await protect(w, true);
    // Overwrite p2's changed blocks too, so its extents are gone here once p2 is deleted.
    await scribble(w, 4, [7, 8, 30, 50]);
    for (const id of p2.ids) await w.a.tree.deleteSnapshot(id);

    const points = await listRestorePoints(w.pd, { site: w.a.site, remotes: [w.remoteB] });
    expect(points).toHaveLength(2);
    const remoteOnly = points[1]!;
    expect(remoteOnly).toMatchObject({ heldLocally: false, complete: true, consistency: 'unknown', remoteSiteIds: ['B'], fireMs: undefined });
    expect(remoteOnly.members.map((m) => m.volumeId).sort()).toEqual([w.db, w.log, w.cfg].sort());
    expect(remoteOnly.members.every((m) => m.localSnapshotId === undefined && m.remoteSnapshotIds.B !== undefined)).toBe(true);

    await expect(restoreDomain(w.pd, remoteOnly, { site: w.a.site })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'remote' } });

    w.counting.bytes = 0;
    const report = await restoreDomain(w.pd, remoteOnly, { site: w.a.site, remote: w.remoteB });
    const wireBytes = w.counting.bytes;
    expect(report.ok).toBe(true);
    expect(report.pulledSnapshotIds).toHaveLength(3);
    // Three volumes of 1 MiB each; only the 3 blocks per volume changed since the common base move.
    expect(wireBytes, `wire bytes ${wireBytes} (seed ${SEED})`).toBeLessThan(VOLUME_BYTES);
    expect(wireBytes).toBeGreaterThan(9 * BLOCK_BYTES);
    for (const id of [w.db, w.log, w.cfg]) expect(equalBytes(await volumeBytes(w.a.tree, id), p2.bytes.get(id)!), `volume ${id} (seed ${SEED})`).toBe(true);

    // The pulled snapshots carry the Protector's stamps: the point is local again, and a rerun pulls nothing.
    const after = await listRestorePoints(w.pd, { site: w.a.site, remotes: [w.remoteB] });
    expect(after.map((p) => p.heldLocally)).toEqual([true, true]);
    expect(after[1]!.remoteSiteIds).toEqual(['B']);
    w.counting.bytes = 0;
    const again = await restoreDomain(w.pd, remoteOnly, { site: w.a.site, remote: w.remoteB });
    expect(again.pulledSnapshotIds).toEqual([]);
    expect(w.counting.bytes).toBe(0);
    expect((await w.a.tree.verify({ readData: true })).problems).toEqual([]);
    await close(w);
  });

  it('clones a point into prefixed volumes and leaves the originals untouched', async () => {
    const w = await makeWorld();
    const p1 = await protect(w, false);
    await scribble(w, 5, [0, 10, 20]);
    const before = new Map<string, Uint8Array>();
    for (const id of [w.db, w.log, w.cfg]) before.set(id, await volumeBytes(w.a.tree, id));
    const volumesBefore = w.a.tree.listVolumes();

    const [point] = await listRestorePoints(w.pd, { site: w.a.site });
    const report = await cloneDomain(w.pd, point!, { site: w.a.site, namePrefix: 'dr-' });
    expect(report.ok).toBe(true);
    const clones = w.a.tree.listVolumes().filter((v) => !volumesBefore.some((o) => o.id === v.id));
    expect(clones.map((v) => v.name).sort()).toEqual(['dr-cfg', 'dr-db', 'dr-log']);
    for (const e of report.entities) {
      for (const v of e.volumes) {
        expect(v.volumeId).not.toBe(v.sourceVolumeId);
        expect(equalBytes(await volumeBytes(w.a.tree, v.volumeId), p1.bytes.get(v.sourceVolumeId)!)).toBe(true);
      }
    }
    for (const id of [w.db, w.log, w.cfg]) expect(equalBytes(await volumeBytes(w.a.tree, id), before.get(id)!)).toBe(true);
    expect(w.a.tree.listVolumes().filter((v) => volumesBefore.some((o) => o.id === v.id))).toEqual(volumesBefore);

    // Same prefix again: every name is taken, nothing is created.
    await expect(cloneDomain(w.pd, point!, { site: w.a.site, namePrefix: 'dr-' })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(w.a.tree.listVolumes()).toHaveLength(volumesBefore.length + 3);
    // Only one entity.
    const one = await cloneDomain(w.pd, point!, { site: w.a.site, namePrefix: 'test-', entities: [{ kind: 'volume', id: w.log }] });
    expect(one.entities.map((e) => e.volumes.map((v) => v.sourceVolumeId))).toEqual([[w.log]]);
    await close(w);
  });

  it('keeps two fires of one instant apart', async () => {
    const w = await makeWorld();
    const first = await protect(w, false);
    await scribble(w, 7, [11]);
    const second = await protect(w, false);
    const points = await listRestorePoints(w.pd, { site: w.a.site });
    expect(points.map((p) => p.id)).toEqual([`local:ad-hoc@${w.clock.now()}`, `local:ad-hoc@${w.clock.now()}#2`]);
    expect(points.map((p) => p.members.map((m) => m.localSnapshotId).sort())).toEqual([first.ids.sort(), second.ids.sort()]);
    await restoreDomain(w.pd, points[0]!, { site: w.a.site });
    expect(equalBytes(await volumeBytes(w.a.tree, w.db), first.bytes.get(w.db)!)).toBe(true);
    await close(w);
  });

  it('rejects bad input with coded errors and changes nothing', async () => {
    const w = await makeWorld();
    await protect(w, false);
    const other = await w.a.tree.createVolume({ name: 'small', byteLength: 8 * BLOCK_BYTES, blockBytes: BLOCK_BYTES });
    const otherSnap = await w.a.tree.snapshot(other.id, { name: 'other' });
    await other.close();
    await scribble(w, 6, [4]);
    const live = new Map<string, Uint8Array>();
    for (const id of [w.db, w.log, w.cfg]) live.set(id, await volumeBytes(w.a.tree, id));
    const [point] = await listRestorePoints(w.pd, { site: w.a.site });
    const site = w.a.site;

    await expect(restoreDomain(w.pd, point!, { site, entities: [{ kind: 'volume', id: other.id }] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'entities[0]' } });
    await expect(restoreDomain(w.pd, point!, { site, entities: [{ kind: 'tape', id: 'x' } as never] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(restoreDomain(w.pd, point!, { site, entities: [] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(restoreDomain({} as ProtectionDomain, point!, { site })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'domain' } });
    await expect(restoreDomain(w.pd, { ...point!, domainId: 'elsewhere' }, { site })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'restorePoint' } });
    await expect(cloneDomain(w.pd, point!, { site, namePrefix: '' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'namePrefix' } });

    // A point that lacks one of the chosen volumes.
    const partial = { ...point!, members: point!.members.filter((m) => m.volumeId !== w.cfg) };
    await expect(restoreDomain(w.pd, partial, { site })).rejects.toMatchObject({ code: 'NOT_FOUND', data: { volumeId: w.cfg } });

    // Geometry mismatch: db's member points at a snapshot of a smaller volume. Checked before any volume is touched.
    const mismatched = { ...point!, members: point!.members.map((m) => (m.volumeId === w.db ? { ...m, localSnapshotId: otherSnap.id, originKey: `A/${otherSnap.id}` } : m)) };
    await expect(restoreDomain(w.pd, mismatched, { site })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { reason: 'geometry', volumeId: w.db } });

    // A point gone here and not held at the remote asked.
    for (const m of point!.members) await w.a.tree.deleteSnapshot(m.localSnapshotId!);
    await expect(restoreDomain(w.pd, point!, { site, remote: w.remoteB })).rejects.toMatchObject({ code: 'NOT_FOUND', data: { siteId: 'B' } });
    expect(await listRestorePoints(w.pd, { site, remotes: [w.remoteB] })).toEqual([]);

    for (const id of [w.db, w.log, w.cfg]) expect(equalBytes(await volumeBytes(w.a.tree, id), live.get(id)!), `volume ${id} changed by a rejected call`).toBe(true);
    await close(w);
  });
});
