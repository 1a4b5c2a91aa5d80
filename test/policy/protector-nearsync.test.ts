// The Protector with NearSync on (issue #11): a schedule of 5 minutes to a remote site, on
// a write-logged tree, runs a NearSync engine for that (domain, site) — seed, second seed,
// stable, LWS every 10 s — and the schedule's own snapshots are no longer replicated there
// (the target composes its own); the remote holds valid LWS of the whole domain.
import { describe, expect, it } from 'vitest';
import { DeviceExtentStore, MemoryBlockDevice, MemoryExtentStore, MemoryMetaStore, VirtualClock } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site } from '../../src/replication/index.js';
import { SimulatedNetwork } from '../../src/testing/index.js';
import { cloneDomain, listRestorePoints, Protector, type ProtectorEvent } from '../../src/policy/index.js';

const PSK = new Uint8Array(32).fill(7);
const KiB = 1024;
const START_MS = Date.UTC(2026, 11, 2, 0, 0, 0);

describe('Protector with NearSync', () => {
  it('a 5-minute schedule to a site runs NearSync there instead of replicating its snapshots', async () => {
    const clock = new VirtualClock(START_MS);
    const net = new SimulatedNetwork({ clock, seed: 3, defaults: { latencyMs: 2 }, connectTimeoutMs: 2_000 });
    const bMeta = await MemoryMetaStore.open();
    const b = await Site.open({ siteId: 'dr', tree: await SnapshotTree.open({ meta: bMeta, extents: await MemoryExtentStore.open(), clock }), meta: bMeta, clock, peerKeys: () => PSK });
    await b.listen(net.transport('dr'), 'dr:7000');
    const meta = await MemoryMetaStore.open();
    const extents = await DeviceExtentStore.open({ device: await MemoryBlockDevice.create({ byteLength: 32 << 20 }), meta });
    const tree = await SnapshotTree.open({ meta, extents, writeLog: await MemoryBlockDevice.create({ byteLength: 8 << 20 }), clock });
    const a = await Site.open({ siteId: 'prod', tree, meta, clock, peerKeys: () => PSK });
    const vols = [await tree.createVolume({ name: 'db', byteLength: 256 * KiB, blockBytes: 16 * KiB }), await tree.createVolume({ name: 'log', byteLength: 256 * KiB, blockBytes: 16 * KiB })];
    const events: ProtectorEvent[] = [];
    const protector = await Protector.open({ site: a, clock, meta, connectionFor: () => ({ transport: net.transport('prod'), psk: PSK, connectTimeoutMs: 2_000 }), onEvent: (e) => events.push(e), nearSync: { lwsIntervalMs: 10_000 } });
    const domain = await protector.addDomain({
      id: 'shop',
      protects: { kind: 'entities', entities: vols.map((v) => ({ kind: 'volume' as const, id: v.id })) },
      consistencyGroups: [{ id: 'app', entities: vols.map((v) => ({ kind: 'volume' as const, id: v.id })) }],
      remoteSites: [{ id: 'dr', address: 'dr:7000', credentialsRef: 'psk:dr' }],
      schedules: [{ id: 'five', recurrence: { kind: 'interval', every: 5, unit: 'minutes' }, remoteSiteIds: ['dr'], retention: { local: { keepLast: 3 }, remote: [{ siteId: 'dr', rule: { keepLast: 3 } }] } }],
    });
    const auto = net.autoAdvance();
    const writes: { atMs: number; volume: number; byteOffset: number; fill: number }[] = [];
    try {
      protector.start();
      await clock.sleep(5_000); // writes between the LWS instants (every 10 s), so the model knows which LWS holds each
      for (let i = 0; i < 72; i++) {
        writes.push({ atMs: clock.now(), volume: i % 2, byteOffset: (i % 16) * 16 * KiB, fill: i + 1 });
        await vols[i % 2]!.write((i % 16) * 16 * KiB, new Uint8Array(16 * KiB).fill(i + 1));
        await clock.sleep(10_000);
      }
      await protector.stop();
    } finally {
      await auto.stop();
    }
    const ns = events.filter((e) => e.kind === 'nearsync') as Extract<ProtectorEvent, { kind: 'nearsync' }>[];
    expect(ns.filter((e) => e.event.kind === 'transition').map((e) => (e.event as { to: string }).to)).toEqual(['second-seed', 'stable']);
    expect(ns.every((e) => e.domainId === 'shop' && e.siteId === 'dr')).toBe(true);
    // The schedule fired (local snapshots every 5 minutes) but none of them replicated to dr.
    expect(events.filter((e) => e.kind === 'snapshot-taken' && e.scheduleId === 'five').length).toBeGreaterThanOrEqual(2);
    expect(events.filter((e) => e.kind === 'replicated')).toEqual([]);
    const points = await b.lws.points({ sourceSiteId: 'prod' });
    expect(points.filter((p) => p.valid).length).toBeGreaterThan(50);
    expect(points.at(-1)!.volumeIds).toEqual(vols.map((v) => v.id));

    // Restore points at the target list the valid LWS (kind-tagged, with time and marker
    // seq), and cloneDomain materializes one: equal to the model of the writes before it.
    const restorePoints = await listRestorePoints(domain, { site: b });
    const lwsPoints = restorePoints.filter((p) => p.kind === 'lws');
    expect(lwsPoints.map((p) => p.lws!.markerSeq)).toEqual(points.filter((p) => p.valid).map((p) => p.seq));
    expect(lwsPoints.map((p) => p.createdMs)).toEqual(points.filter((p) => p.valid).map((p) => p.timeMs));
    expect(lwsPoints.every((p) => p.complete && p.heldLocally && p.consistency === 'crash' && p.id === `lws:prod@${p.lws!.markerSeq}`)).toBe(true);
    for (const [n, point] of [lwsPoints[3]!, lwsPoints[Math.floor(lwsPoints.length / 2)]!, lwsPoints.at(-1)!].entries()) {
      const model = vols.map(() => new Uint8Array(256 * KiB));
      for (const w of writes) if (w.atMs < point.createdMs) model[w.volume]!.fill(w.fill, w.byteOffset, w.byteOffset + 16 * KiB);
      const report = await cloneDomain(domain, point, { site: b, namePrefix: `at-lws-${n}-` });
      expect(report.ok).toBe(true);
      const recovered = report.entities.flatMap((e) => e.volumes);
      for (const [i, v] of vols.entries()) {
        const r = recovered.find((x) => x.sourceVolumeId === v.id)!;
        const clone = await b.tree.openVolume(r.volumeId);
        expect(Buffer.compare(Buffer.from(await clone.read(0, 256 * KiB)), Buffer.from(model[i]!)), `LWS ${point.id} volume ${i}`).toBe(0);
        await clone.close();
      }
    }
    for (const v of vols) await v.close();
  }, 60_000);
});

describe('Protector NearSync by default', () => {
  async function run(nearSync: false | undefined) {
    const clock = new VirtualClock(START_MS);
    const net = new SimulatedNetwork({ clock, seed: 4, defaults: { latencyMs: 2 }, connectTimeoutMs: 2_000 });
    const bMeta = await MemoryMetaStore.open();
    const b = await Site.open({ siteId: 'dr', tree: await SnapshotTree.open({ meta: bMeta, extents: await MemoryExtentStore.open(), clock }), meta: bMeta, clock, peerKeys: () => PSK });
    await b.listen(net.transport('dr'), 'dr:7000');
    const meta = await MemoryMetaStore.open();
    const extents = await DeviceExtentStore.open({ device: await MemoryBlockDevice.create({ byteLength: 32 << 20 }), meta });
    const tree = await SnapshotTree.open({ meta, extents, writeLog: await MemoryBlockDevice.create({ byteLength: 8 << 20 }), clock });
    const a = await Site.open({ siteId: 'prod', tree, meta, clock, peerKeys: () => PSK });
    const vol = await tree.createVolume({ name: 'db', byteLength: 256 * KiB, blockBytes: 16 * KiB });
    const events: ProtectorEvent[] = [];
    const protector = await Protector.open({
      site: a, clock, meta, connectionFor: () => ({ transport: net.transport('prod'), psk: PSK, connectTimeoutMs: 2_000 }), onEvent: (e) => events.push(e), ...(nearSync === undefined ? {} : { nearSync }),
    });
    await protector.addDomain({
      id: 'shop',
      protects: { kind: 'entities', entities: [{ kind: 'volume' as const, id: vol.id }] },
      remoteSites: [{ id: 'dr', address: 'dr:7000', credentialsRef: 'psk:dr' }],
      schedules: [{ id: 'ten', recurrence: { kind: 'interval', every: 10, unit: 'minutes' }, remoteSiteIds: ['dr'], retention: { local: { keepLast: 3 } } }],
    });
    const auto = net.autoAdvance();
    const ages: number[] = [];
    try {
      protector.start();
      for (let i = 0; i < 25; i++) { // stops at 25 min, between fires
        await vol.write((i % 16) * 16 * KiB, new Uint8Array(16 * KiB).fill(i + 1));
        await clock.sleep(60_000);
        ages.push(protector.rpoReport()[0]!.ageMs);
      }
      const engines = protector.nearSyncEngines().size;
      await protector.stop();
      await vol.close();
      return { events, ages, engines, points: await b.lws.points({ sourceSiteId: 'prod' }) };
    } finally {
      await auto.stop();
    }
  }

  it('a 10-minute schedule on a write-logged tree uses NearSync without the option, and the RPO report counts its LWS', async () => {
    const on = await run(undefined);
    expect(on.engines).toBe(1);
    expect(on.events.filter((e) => e.kind === 'replicated')).toEqual([]);
    expect(on.points.filter((p) => p.valid).length).toBeGreaterThan(20);
    // LWS every 60 s (the default) valid at dr: the RPO age stays under two LWS intervals,
    // where replicated 10-minute snapshots alone would let it reach 10 minutes.
    expect(Math.max(...on.ages.slice(3))).toBeLessThanOrEqual(120_000);
    // nearSync: false opts out: the schedule's snapshots replicate, no LWS, the age follows the fires.
    const off = await run(false);
    expect(off.engines).toBe(0);
    expect(off.events.filter((e) => e.kind === 'replicated').length).toBeGreaterThanOrEqual(2);
    expect(off.points).toEqual([]);
    expect(Math.max(...off.ages.slice(3))).toBeGreaterThan(300_000);
  }, 60_000);
});
