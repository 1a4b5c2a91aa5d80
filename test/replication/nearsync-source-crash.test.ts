// NearSync under source crashes (issue #11): the source's write log, metadata and extent
// devices crash after a seeded number of writes while it writes, marks and ships; reopened
// on what survived, the session resumes from its durable hold (or, when the hold is gone,
// reports it so the engine re-seeds), and every LWS the target reports valid restores to
// exactly what the source held at that marker — records a crash took back were never shipped.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DeviceExtentStore, LogMetaStore, MemoryBlockDevice, MemoryTransport } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site } from '../../src/replication/index.js';
import { FaultyBlockDevice } from '../../src/testing/index.js';
import { expectSameBytes } from '../../src/testing/internal/extent-fixtures.js';
import { PSK, targetSite } from './nearsync-helpers.js';

const KiB = 1024;
const VOLUME_BYTES = 128 * KiB;
const SEED = Number(process.env.NEARSYNC_SOURCE_CRASH_SEED ?? 1203);

async function openSource(inner: { meta: MemoryBlockDevice; data: MemoryBlockDevice; log: MemoryBlockDevice }, seed: number) {
  const devices = [new FaultyBlockDevice(inner.meta, { seed, ownsInner: false }), new FaultyBlockDevice(inner.data, { seed: seed + 1, ownsInner: false }), new FaultyBlockDevice(inner.log, { seed: seed + 2, ownsInner: false })] as const;
  const meta = await LogMetaStore.open({ device: devices[0] });
  const extents = await DeviceExtentStore.open({ device: devices[1], meta });
  const tree = await SnapshotTree.open({ meta, extents, writeLog: devices[2] });
  const site = await Site.open({ siteId: 'src', tree, meta, peerKeys: () => PSK });
  return { site, tree, devices };
}

describe('NearSync source crashes', () => {
  it(`after a crash of the source every valid LWS at the target restores exactly, and shipping resumes (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 120 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 1000 }), async (crashAfter, which, seed) => {
        const inner = { meta: await MemoryBlockDevice.create({ byteLength: 4 << 20 }), data: await MemoryBlockDevice.create({ byteLength: 8 << 20 }), log: await MemoryBlockDevice.create({ byteLength: 2 << 20 }) };
        const net = MemoryTransport.create();
        const dst = await targetSite('dst', net);
        let src = await openSource(inner, seed);
        try {
          let vol = await src.tree.createVolume({ name: 'a', byteLength: VOLUME_BYTES, blockBytes: 16 * KiB });
          const volumeId = vol.id;
          let n = 0;
          const write = async () => {
            // Every third write is whole blocks of few contents (references, holes), the rest exact ranges.
            const whole = n % 3 === 2;
            const data = whole ? new Uint8Array(16 * KiB * (1 + (n % 2))).fill(n % 4) : new Uint8Array(3 * KiB).fill((n % 250) + 1);
            await vol.write(whole ? (n % ((VOLUME_BYTES - data.length) / (16 * KiB) + 1)) * 16 * KiB : (n * 5 * KiB + seed) % (VOLUME_BYTES - data.length), data);
            n++;
          };
          await write();
          let shipper = src.site.nearSync(dst.remote, { sessionId: 'pd', volumeIds: [volumeId] });
          const at = await shipper.markSeed();
          const [seedSnap] = await src.tree.snapshotGroup([volumeId], { name: 'seed' });
          const seedIds = new Map([[volumeId, seedSnap!.id]]);
          shipper.setBase(at.seq, seedIds);
          await src.site.replicate([seedSnap!.id], dst.remote);
          // What the source held at each marker it took (read back, so the truth of the source).
          const expected = new Map<number, Uint8Array>();
          src.devices[which]!.crashAfterWrites(crashAfter);
          try {
            for (let i = 0; i < 10; i++) {
              for (let k = 0; k < 3; k++) await write();
              const m = await shipper.mark();
              expected.set(m.seq, await vol.read(0, VOLUME_BYTES));
              await shipper.ship(m);
            }
          } catch {
            // crashed somewhere in there
          }
          await shipper.close();
          for (const d of src.devices) await d.crash();
          await src.site.close().catch(() => undefined);
          src = await openSource(inner, seed + 10);
          vol = await src.tree.openVolume(volumeId);
          const check = async () => {
            for (const p of await dst.site.lws.points()) {
              if (!p.valid) continue;
              const clone = await dst.site.lws.clone('src', 'pd', p.seq, `c${p.seq}-${Math.random()}/`);
              expectSameBytes(await clone.volumes.get(volumeId)!.read(0, VOLUME_BYTES), expected.get(p.seq)!);
              for (const v of clone.volumes.values()) await v.close();
            }
          };
          await check();
          // Resume from the durable hold (if it survived), with new writes and markers.
          shipper = src.site.nearSync(dst.remote, { sessionId: 'pd', volumeIds: [volumeId] });
          shipper.setBase(at.seq, seedIds);
          for (let k = 0; k < 3; k++) await write();
          const m = await shipper.mark();
          expected.set(m.seq, await vol.read(0, VOLUME_BYTES));
          const r = await shipper.ship(m);
          if (r.kind === 'shipped') {
            expect((await dst.site.lws.points()).at(-1)).toMatchObject({ seq: m.seq, valid: true });
          } else expect(r.kind).toBe('dropped');
          await check();
          await shipper.close();
          await vol.close();
        } finally {
          await src.site.close().catch(() => undefined);
          await dst.site.close();
        }
      }),
      { seed: SEED, numRuns: 20 },
    );
  }, 180_000);
});
