// NearSync under target crashes (issue #11): the target's metadata and extent devices
// crash after a seeded number of writes while LWS arrive; reopened on what survived, every
// LWS it reports valid restores to the source's contents at that marker, and the source
// resumes shipping from the target's durable point (nothing it acknowledged is lost).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DeviceExtentStore, LogMetaStore, MemoryBlockDevice, MemoryTransport } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site, type RemoteSite } from '../../src/replication/index.js';
import { FaultyBlockDevice } from '../../src/testing/index.js';
import { expectSameBytes } from '../../src/testing/internal/extent-fixtures.js';
import { PSK, sourceSite } from './nearsync-helpers.js';

const KiB = 1024;
const VOLUME_BYTES = 128 * KiB;
const SEED = Number(process.env.NEARSYNC_CRASH_SEED ?? 1202);

async function openTarget(inner: { meta: MemoryBlockDevice; data: MemoryBlockDevice }, seed: number, crashAfter: number | undefined) {
  const metaDev = new FaultyBlockDevice(inner.meta, { seed, ownsInner: false });
  const dataDev = new FaultyBlockDevice(inner.data, { seed: seed + 1, ownsInner: false });
  const meta = await LogMetaStore.open({ device: metaDev });
  const extents = await DeviceExtentStore.open({ device: dataDev, meta });
  const tree = await SnapshotTree.open({ meta, extents });
  const site = await Site.open({ siteId: 'dst', tree, meta, peerKeys: () => PSK });
  if (crashAfter !== undefined) metaDev.crashAfterWrites(crashAfter); // armed once open: the crash hits the replication and LWS writes
  const net = MemoryTransport.create();
  const listener = await site.listen(net, 'dst:7000');
  const remote: RemoteSite = { siteId: 'dst', address: listener.address, transport: net, psk: PSK };
  return { site, tree, remote, devices: [metaDev, dataDev] };
}

describe('NearSync target crashes', () => {
  it(`no LWS is reported valid that cannot be restored, and shipping resumes (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 1, max: 1000 }), async (crashAfter, seed) => {
        const inner = { meta: await MemoryBlockDevice.create({ byteLength: 4 << 20 }), data: await MemoryBlockDevice.create({ byteLength: 8 << 20 }) };
        const src = await sourceSite('src');
        let dst = await openTarget(inner, seed, crashAfter);
        try {
          const vol = await src.tree.createVolume({ name: 'a', byteLength: VOLUME_BYTES, blockBytes: 16 * KiB });
          const model = new Uint8Array(VOLUME_BYTES);
          let n = 0;
          const write = async () => {
            // Every third write is whole blocks of few contents (references, holes), the rest exact ranges.
            const whole = n % 3 === 2;
            const data = whole ? new Uint8Array(16 * KiB * (1 + (n % 2))).fill(n % 4) : new Uint8Array(3 * KiB).fill((n % 250) + 1);
            const off = whole ? (n % ((VOLUME_BYTES - data.length) / (16 * KiB) + 1)) * 16 * KiB : (n * 5 * KiB + seed) % (VOLUME_BYTES - data.length);
            await vol.write(off, data);
            model.set(data, off);
            n++;
          };
          await write();
          let shipper = src.site.nearSync(dst.remote, { sessionId: 'pd', volumeIds: [vol.id] });
          const at = await shipper.markSeed();
          const [seedSnap] = await src.tree.snapshotGroup([vol.id], { name: 'seed' });
          const seedIds = new Map([[vol.id, seedSnap!.id]]);
          shipper.setBase(at.seq, seedIds);
          const expected = new Map<number, Uint8Array>();
          let last = at;
          let crashed = false;
          try {
            await src.site.replicate([seedSnap!.id], dst.remote, { retries: 0 });
          } catch {
            crashed = true;
          }
          for (let i = 0; i < 8; i++) {
            for (let k = 0; k < 3; k++) await write();
            last = await shipper.mark();
            expected.set(last.seq, model.slice());
            if (!crashed) {
              try {
                await shipper.ship(last);
              } catch {
                crashed = true;
              }
            }
          }
          await shipper.close();
          for (const d of dst.devices) await d.crash();
          await dst.site.close().catch(() => undefined);
          // Reopen on what survived: whatever it reports valid must restore exactly.
          dst = await openTarget(inner, seed + 7, undefined);
          const check = async () => {
            for (const p of await dst.site.lws.points()) {
              if (!p.valid) continue;
              const clone = await dst.site.lws.clone('src', 'pd', p.seq, `c${p.seq}-${Math.random()}/`);
              expectSameBytes(await clone.volumes.get(vol.id)!.read(0, VOLUME_BYTES), expected.get(p.seq)!);
              for (const v of clone.volumes.values()) await v.close();
            }
          };
          await check();
          // The source resumes: the seed again (resumable), then the LWS from the target's durable point.
          await src.site.replicate([seedSnap!.id], dst.remote);
          shipper = src.site.nearSync(dst.remote, { sessionId: 'pd', volumeIds: [vol.id] });
          shipper.setBase(at.seq, seedIds);
          expect(await shipper.ship(last)).toMatchObject({ kind: 'shipped', durableSeq: last.seq });
          await shipper.close();
          const points = await dst.site.lws.points();
          expect(points.filter((p) => p.valid).map((p) => p.seq)).toEqual([...expected.keys()]);
          await check();
          await vol.close();
        } finally {
          await dst.site.close().catch(() => undefined);
          await src.close();
        }
      }),
      { seed: SEED, numRuns: 25 },
    );
  }, 120_000);
});
