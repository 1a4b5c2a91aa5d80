// The NearSync engine on a VirtualClock and a SimulatedNetwork (issue #11): seed, second
// seed, stable; a partition longer than the threshold -> fallback at the exact tick the
// oldest unacknowledged LWS passes it; healed -> re-seed -> stable again, by itself; the
// target restores the newest LWS to the source's contents at that marker; a restart
// resumes from the persisted state.
import { describe, expect, it } from 'vitest';
import { DeviceExtentStore, MemoryBlockDevice, MemoryExtentStore, MemoryMetaStore, VirtualClock } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site, startLwsComposer, type RemoteSite } from '../../src/replication/index.js';
import { SimulatedNetwork } from '../../src/testing/index.js';
import { NearSyncEngine, type NearSyncEngineEvent } from '../../src/policy/index.js';
import { expectSameBytes } from '../../src/testing/internal/extent-fixtures.js';

const PSK = new Uint8Array(32).fill(7);
const KiB = 1024;
const START_MS = Date.UTC(2026, 11, 2, 0, 0, 0);
const INTERVAL_MS = 10_000;
const THRESHOLD_MS = 300_000;

async function world(seed: number) {
  const clock = new VirtualClock(START_MS);
  const net = new SimulatedNetwork({ clock, seed, defaults: { latencyMs: 2 }, connectTimeoutMs: 2_000 });
  const bMeta = await MemoryMetaStore.open();
  const bTree = await SnapshotTree.open({ meta: bMeta, extents: await MemoryExtentStore.open(), clock });
  const b = await Site.open({ siteId: 'B', tree: bTree, meta: bMeta, clock, peerKeys: () => PSK, idleTimeoutMs: 30_000 });
  await b.listen(net.transport('B'), 'B:7000');
  const meta = await MemoryMetaStore.open();
  const extents = await DeviceExtentStore.open({ device: await MemoryBlockDevice.create({ byteLength: 32 << 20 }), meta });
  const log = await MemoryBlockDevice.create({ byteLength: 8 << 20 });
  const tree = await SnapshotTree.open({ meta, extents, writeLog: log, clock });
  const a = await Site.open({ siteId: 'A', tree, meta, clock, peerKeys: () => PSK, idleTimeoutMs: 30_000 });
  const remote: RemoteSite = { siteId: 'B', address: 'B:7000', transport: net.transport('A'), psk: PSK, connectTimeoutMs: 2_000 };
  return { clock, net, a, b, tree, remote, meta, extents, log };
}

describe('NearSyncEngine', () => {
  it('seed -> second seed -> stable; partition past the threshold -> fallback; heal -> re-seed -> stable, at exact times', async () => {
    const w = await world(11);
    const auto = w.net.autoAdvance();
    const events: NearSyncEngineEvent[] = [];
    try {
      const vols = [await w.tree.createVolume({ name: 'db', byteLength: 512 * KiB, blockBytes: 16 * KiB }), await w.tree.createVolume({ name: 'logs', byteLength: 512 * KiB, blockBytes: 16 * KiB })];
      const model = vols.map(() => new Uint8Array(512 * KiB));
      let n = 0;
      const write = async () => {
        const v = n % 2;
        const data = new Uint8Array(4 * KiB).fill((n % 250) + 1);
        const off = ((n * 7) % 128) * 4 * KiB;
        await vols[v]!.write(off, data);
        model[v]!.set(data, off);
        n++;
      };
      const engine = await NearSyncEngine.open({ site: w.a, remote: w.remote, sessionId: 'pd-1', volumeIds: vols.map((v) => v.id), clock: w.clock, lwsIntervalMs: INTERVAL_MS, thresholdMs: THRESHOLD_MS, onEvent: (e) => events.push(e) });
      engine.start();
      // The target composes a full snapshot every 2 minutes of its own clock and keeps 2 minutes of LWS.
      const composed: { seq: number; atMs: number }[] = [];
      const composer = startLwsComposer({ journal: w.b.lws, clock: w.clock, everyMs: 120_000, lwsRetentionMs: 120_000, onComposed: (c) => composed.push(c) });
      const transitions = () => events.filter((e) => e.kind === 'transition') as Extract<NearSyncEngineEvent, { kind: 'transition' }>[];
      // Run a minute with writes every 5 s.
      for (let i = 0; i < 12; i++) {
        await write();
        await w.clock.sleep(5_000);
      }
      expect(transitions().map((t) => [t.from, t.to])).toEqual([['seeding', 'second-seed'], ['second-seed', 'stable']]);
      // Exact virtual times (ms after the start; the network's latency is 2 ms a hop, seeded):
      // the seed replicates in 40 ms, the second seed starts at once and takes 52 ms.
      expect(transitions().map((t) => t.atMs - START_MS)).toEqual([40, 92]);
      expect(engine.state.phase).toBe('stable');
      const validBefore = events.filter((e) => e.kind === 'lws-valid').length;
      expect(validBefore).toBeGreaterThan(3);

      // A partition longer than the threshold.
      const cutMs = w.clock.now();
      w.net.partition(['A'], ['B']);
      for (let i = 0; i < 80 && engine.state.phase !== 'fallback'; i++) {
        await write();
        await w.clock.sleep(5_000);
      }
      const fallback = transitions()[2]!;
      expect([fallback.from, fallback.to]).toEqual(['stable', 'fallback']);
      // LWS are taken on the ticks (0, 10 s, 20 s, ...); the one at 60 s (the cut) is the first
      // never acknowledged: the fallback is at the first tick where it is older than 300 s, 370 s.
      expect(cutMs - START_MS).toBe(60_000);
      expect(events.filter((e) => e.kind === 'lws-shipped').every((e) => e.atMs < cutMs)).toBe(true);
      expect(fallback.atMs - START_MS).toBe(370_000);
      expect(fallback.reason).toMatch(/unacknowledged for 310000 ms \(> 300000\)/);
      expect(w.tree.writeLogHolds().has(engine.holderId)).toBe(false); // the log no longer grows for this target

      // Heal: the engine re-seeds by itself and is stable again.
      const healMs = w.clock.now();
      w.net.heal();
      for (let i = 0; i < 24; i++) {
        await write();
        await w.clock.sleep(5_000);
      }
      const after = transitions().slice(3);
      expect(after.map((t) => [t.from, t.to])).toEqual([['fallback', 'second-seed'], ['second-seed', 'stable']]);
      // The fallback's full snapshot started at 370 s, failed at 372 s (connect timeout, still
      // partitioned), was retried an interval later after the heal and replicated at 382.064 s:
      // well within the threshold, so the re-seed (second seed + LWS) starts at once.
      expect(healMs - START_MS).toBe(370_000);
      expect(after.map((t) => t.atMs - START_MS)).toEqual([382_064, 382_128]);
      expect(after[0]!.reason).toMatch(/full snapshot replicated in 12064 ms/);

      // The newest valid LWS at the target equals the source's contents at that marker.
      const markAt = model.map((m) => m.slice());
      await w.clock.sleep(INTERVAL_MS + 1_000); // no writes: the next LWS is this content
      await engine.stop();
      await composer.stop();
      // Compositions at 120 s (the newest valid LWS is the one of 50 s: the partition began at
      // 60 s), none at 240 s or 360 s (nothing newer is valid), then at 480 s from the re-seed's LWS.
      expect(composed.map((c) => c.atMs - START_MS)).toEqual([120_000, 480_000]);
      const points = (await w.b.lws.points({ sourceSiteId: 'A', sessionId: 'pd-1' })).filter((p) => p.valid);
      const newest = points.at(-1)!;
      expect(newest.timeMs).toBeGreaterThan(after[1]!.atMs);
      const clone = await w.b.lws.clone('A', 'pd-1', newest.seq, 'restore/');
      for (const [i, v] of vols.entries()) expectSameBytes(await clone.volumes.get(v.id)!.read(0, 512 * KiB), markAt[i]!);
      for (const v of clone.volumes.values()) await v.close();
      // Retention: after the round at 480 s no point older than 2 minutes before it is kept.
      expect(points.every((p) => p.timeMs >= START_MS + 480_000 - 120_000)).toBe(true);

      // A restart resumes: the engine reopens stable from its persisted state.
      const again = await NearSyncEngine.open({ site: w.a, remote: w.remote, sessionId: 'pd-1', volumeIds: vols.map((v) => v.id), clock: w.clock, lwsIntervalMs: INTERVAL_MS, thresholdMs: THRESHOLD_MS });
      expect(again.state.phase).toBe('stable');
      for (const v of vols) await v.close();
    } finally {
      await auto.stop();
    }
  }, 60_000);
});
