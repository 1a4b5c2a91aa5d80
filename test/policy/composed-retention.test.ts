// Composed snapshots at a NearSync target kept by the schedule's retention (issue #11):
// on a VirtualClock and a SimulatedNetwork, the target composes every minute; the
// composer's pruneComposed hook (composedRetention: the schedule's remote rule at the
// target, planned by planRemoteRetention) deletes the composed snapshots the rule does not
// keep, never a base the kept LWS still need; LWS retention is unchanged, and every valid
// LWS still restores to the source's contents at its marker.
import { describe, expect, it } from 'vitest';
import { DeviceExtentStore, MemoryBlockDevice, MemoryExtentStore, MemoryMetaStore, VirtualClock } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site, startLwsComposer, type RemoteSite } from '../../src/replication/index.js';
import { SimulatedNetwork } from '../../src/testing/index.js';
import { composedRetention, createSchedule, NearSyncEngine } from '../../src/policy/index.js';
import { expectSameBytes } from '../../src/testing/internal/extent-fixtures.js';

const PSK = new Uint8Array(32).fill(7);
const KiB = 1024;
const START_MS = Date.UTC(2026, 11, 2, 0, 0, 0);

describe('composed snapshots kept by the schedule retention', () => {
  it('keepLast 1 at the target: the newest composed snapshot plus the bases the kept LWS need remain, older ones are deleted', async () => {
    const clock = new VirtualClock(START_MS);
    const net = new SimulatedNetwork({ clock, seed: 5, defaults: { latencyMs: 2 }, connectTimeoutMs: 2_000 });
    const bMeta = await MemoryMetaStore.open();
    const b = await Site.open({ siteId: 'B', tree: await SnapshotTree.open({ meta: bMeta, extents: await MemoryExtentStore.open(), clock }), meta: bMeta, clock, peerKeys: () => PSK });
    await b.listen(net.transport('B'), 'B:7000');
    const meta = await MemoryMetaStore.open();
    const extents = await DeviceExtentStore.open({ device: await MemoryBlockDevice.create({ byteLength: 32 << 20 }), meta });
    const tree = await SnapshotTree.open({ meta, extents, writeLog: await MemoryBlockDevice.create({ byteLength: 8 << 20 }), clock });
    const a = await Site.open({ siteId: 'A', tree, meta, clock, peerKeys: () => PSK });
    const remote: RemoteSite = { siteId: 'B', address: 'B:7000', transport: net.transport('A'), psk: PSK, connectTimeoutMs: 2_000 };
    const schedule = createSchedule({ id: 'five', recurrence: { kind: 'interval', every: 5, unit: 'minutes' }, remoteSiteIds: ['B'], retention: { local: { keepLast: 5 }, remote: [{ siteId: 'B', rule: { keepLast: 1 } }] } });
    expect(() => composedRetention(schedule, 'C')).toThrow(/does not replicate/);
    const auto = net.autoAdvance();
    try {
      const vols = [await tree.createVolume({ name: 'db', byteLength: 256 * KiB, blockBytes: 16 * KiB }), await tree.createVolume({ name: 'log', byteLength: 256 * KiB, blockBytes: 16 * KiB })];
      const engine = await NearSyncEngine.open({ site: a, remote, sessionId: 'pd-shop', volumeIds: vols.map((v) => v.id), clock, lwsIntervalMs: 10_000, thresholdMs: 300_000 });
      engine.start();
      const composed: number[] = [];
      const errors: unknown[] = [];
      const composer = startLwsComposer({ journal: b.lws, clock, everyMs: 60_000, lwsRetentionMs: 90_000, pruneComposed: composedRetention(schedule, 'B', ['shop']), onComposed: (c) => composed.push(c.atMs - START_MS), onError: (e) => errors.push(e) });
      const history: { atMs: number; volume: number; byteOffset: number; fill: number }[] = [];
      await clock.sleep(5_000); // writes between the LWS instants (every 10 s)
      for (let i = 0; i < 40; i++) {
        history.push({ atMs: clock.now(), volume: i % 2, byteOffset: (i % 16) * 16 * KiB, fill: i + 1 });
        await vols[i % 2]!.write((i % 16) * 16 * KiB, new Uint8Array(16 * KiB).fill(i + 1));
        await clock.sleep(10_000);
      }
      await engine.stop();
      await composer.stop();
      expect(errors).toEqual([]);
      expect(composed).toEqual([60_000, 120_000, 180_000, 240_000, 300_000, 360_000]);
      // Left: the composition of 360 s (keepLast 1) and the bases the kept LWS (from 270 s on)
      // replay from, the compositions of 240 s and 300 s (held); those of 60-180 s were deleted.
      const left = b.lws.composedSnapshots('A', 'pd-shop');
      expect(left.map((s) => s.createdMs - START_MS)).toEqual([240_000, 240_000, 300_000, 300_000, 360_000, 360_000]);
      expect(new Set(b.lws.composedBaseIds('A', 'pd-shop'))).toEqual(new Set(left.map((s) => s.id)));
      // A base in use is refused.
      await expect(b.lws.deleteComposed('A', 'pd-shop', [left[0]!.id])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      // LWS retention as it is: 90 s of LWS before the last round; each still restores.
      const points = (await b.lws.points({ sourceSiteId: 'A', sessionId: 'pd-shop' })).filter((p) => p.valid);
      expect(points[0]!.timeMs - START_MS).toBeGreaterThanOrEqual(360_000 - 90_000);
      for (const p of [points[0]!, points.at(-1)!]) {
        const model = vols.map(() => new Uint8Array(256 * KiB));
        for (const w of history) if (w.atMs < p.timeMs) model[w.volume]!.fill(w.fill, w.byteOffset, w.byteOffset + 16 * KiB);
        const clone = await b.lws.clone('A', 'pd-shop', p.seq, `at-${p.seq}/`);
        for (const [i, v] of vols.entries()) expectSameBytes(await clone.volumes.get(v.id)!.read(0, 256 * KiB), model[i]!);
        for (const v of clone.volumes.values()) await v.close();
      }
      for (const v of vols) await v.close();
    } finally {
      await auto.stop();
    }
  }, 60_000);
});
