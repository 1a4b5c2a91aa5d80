// NearSync shipping, the target's LWS journal, composition and clones at LWS points
// (issue #11): for random write histories over a two-volume consistency group and random
// LWS points, a clone at the target at each point equals the model's contents at that
// marker for every volume — from the seed and from composed full snapshots. Histories mix
// exact byte ranges with whole-block writes of repeated content (shipped as references to
// blocks the target holds, or to data earlier in the batch) and zeros (holes).
import { describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { MemoryMetaStore, MemoryTransport } from '../../src/adapters/index.js';
import { sourceSite, targetSite } from './nearsync-helpers.js';
import { loadXxh64 } from '../../src/core/checksum.js';
import { expectSameBytes } from '../../src/testing/internal/extent-fixtures.js';

const KiB = 1024;
const VOLUME_BYTES = 256 * KiB;
const SEED = Number(process.env.NEARSYNC_SEED ?? 20261202);

type Op =
  | { kind: 'write'; vol: number; byteOffset: number; byteLength: number; fill: number }
  | { kind: 'lws' }
  | { kind: 'ship' }
  | { kind: 'drain' }
  | { kind: 'compose' };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), vol: fc.integer({ min: 0, max: 1 }), byteOffset: fc.integer({ min: 0, max: VOLUME_BYTES - 1 }), byteLength: fc.integer({ min: 1, max: 40 * KiB }), fill: fc.integer({ min: 1, max: 255 }) }).map((w) => ({ ...w, byteLength: Math.min(w.byteLength, VOLUME_BYTES - w.byteOffset) })) },
  // Whole blocks (16 KiB) of few distinct contents: 0 (holes) and fills the seed or earlier writes already hold.
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), vol: fc.integer({ min: 0, max: 1 }), block: fc.integer({ min: 0, max: VOLUME_BYTES / (16 * KiB) - 1 }), blocks: fc.integer({ min: 1, max: 4 }), fill: fc.constantFrom(0, 1, 2, 3) }).map(({ block, blocks, ...w }) => ({ ...w, byteOffset: block * 16 * KiB, byteLength: Math.min(blocks * 16 * KiB, VOLUME_BYTES - block * 16 * KiB) })) },
  { weight: 2, arbitrary: fc.constant({ kind: 'lws' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'ship' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'drain' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'compose' as const }) },
);

describe('NearSync shipping and restore to LWS', () => {
  it(`restore to any LWS equals the model at that marker for every volume of the group (seed ${SEED})`, async () => {
    let dedupedBlocks = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(arbOp, { minLength: 1, maxLength: 40 }), fc.array(arbOp, { maxLength: 4 }), async (ops, racing) => {
        const net = MemoryTransport.create();
        const src = await sourceSite('src');
        const dst = await targetSite('dst', net);
        try {
          const vols = [await src.tree.createVolume({ name: 'a', byteLength: VOLUME_BYTES, blockBytes: 16 * KiB }), await src.tree.createVolume({ name: 'b', byteLength: VOLUME_BYTES, blockBytes: 16 * KiB })];
          const model = vols.map(() => new Uint8Array(VOLUME_BYTES));
          const apply = async (op: Op & { kind: 'write' }) => {
            const data = new Uint8Array(op.byteLength).fill(op.fill);
            await vols[op.vol]!.write(op.byteOffset, data);
            model[op.vol]!.set(data, op.byteOffset);
          };
          await apply({ kind: 'write', vol: 0, byteOffset: 0, byteLength: 8 * KiB, fill: 1 });
          await apply({ kind: 'write', vol: 1, byteOffset: 32 * KiB, byteLength: 32 * KiB, fill: 2 }); // whole blocks the seed holds
          const shipper = src.site.nearSync(dst.remote, { sessionId: 'pd-1', volumeIds: vols.map((v) => v.id) });
          const seedAt = await shipper.markSeed();
          // Writes racing the seed: after the marker, maybe inside the seed snapshot.
          for (const op of racing) if (op.kind === 'write') await apply(op);
          const seed = await src.tree.snapshotGroup(vols.map((v) => v.id), { name: 'seed' });
          shipper.setBase(seedAt.seq, new Map(seed.map((s) => [s.volumeId, s.id])));
          await src.site.replicate(seed.map((s) => s.id), dst.remote);
          const expected = new Map<number, Uint8Array[]>();
          let last = seedAt;
          const composedAt: number[] = [];
          for (const op of ops) {
            if (op.kind === 'write') await apply(op);
            else if (op.kind === 'lws') {
              last = await shipper.mark();
              expected.set(last.seq, model.map((m) => m.slice()));
            } else if (op.kind === 'ship') {
              expect(await shipper.ship(last)).toMatchObject({ kind: 'shipped' });
            } else if (op.kind === 'drain') await src.tree.snapshot(vols[0]!.id, { name: `drain-${last.seq}-${composedAt.length}-${Math.random()}` });
            else {
              await shipper.ship(last);
              const points = (await dst.site.lws.points()).filter((p) => p.valid);
              const newest = points.at(-1);
              if (newest !== undefined && !composedAt.includes(newest.seq)) {
                await dst.site.lws.compose('src', 'pd-1', newest.seq, `composed-${newest.seq}`);
                composedAt.push(newest.seq);
              }
            }
          }
          last = await shipper.mark();
          expected.set(last.seq, model.map((m) => m.slice()));
          const res = await shipper.ship(last);
          expect(res).toMatchObject({ kind: 'shipped', durableSeq: last.seq });
          const points = await dst.site.lws.points();
          expect(points.map((p) => p.seq)).toEqual([...expected.keys()]);
          for (const p of points) {
            expect(p.valid).toBe(true);
            const clone = await dst.site.lws.clone('src', 'pd-1', p.seq, `at-${p.seq}/`);
            try {
              vols.forEach((v, i) => expect(clone.volumes.has(v.id)).toBe(true));
              for (const [i, v] of vols.entries()) expectSameBytes(await clone.volumes.get(v.id)!.read(0, VOLUME_BYTES), expected.get(p.seq)![i]!);
            } finally {
              for (const v of clone.volumes.values()) await v.close();
            }
          }
          dedupedBlocks += shipper.dedupedBlocks;
          await shipper.close();
        } finally {
          await dst.site.close();
          await src.close();
        }
      }),
      { seed: SEED, numRuns: 60 },
    );
    expect(dedupedBlocks).toBeGreaterThan(0); // the histories did ship blocks without their data
  }, 120_000);

  it('a source rebuilt with a fresh write log under the same session starts a new generation: nothing skipped, old points kept', async () => {
    const net = MemoryTransport.create();
    const dst = await targetSite('dst', net);
    const expected: Uint8Array[] = [];
    /** One source generation: a fresh tree and log; `skip` snapshots first so its ids differ from the last one's. */
    const generation = async (fill: number, skip: number) => {
      const src = await sourceSite('src');
      try {
        const vol = await src.tree.createVolume({ name: 'a', byteLength: VOLUME_BYTES, blockBytes: 16 * KiB });
        for (let i = 0; i < skip; i++) await src.tree.snapshot(vol.id, { name: `skip-${i}` });
        const shipper = src.site.nearSync(dst.remote, { sessionId: 'pd-1', volumeIds: [vol.id] });
        const seedAt = await shipper.markSeed();
        const seed = await src.tree.snapshotGroup([vol.id], { name: 'seed' });
        shipper.setBase(seedAt.seq, new Map(seed.map((x) => [x.volumeId, x.id])));
        await src.site.replicate(seed.map((x) => x.id), dst.remote);
        const model = new Uint8Array(VOLUME_BYTES);
        for (let i = 0; i < 3; i++) {
          const data = new Uint8Array(8 * KiB).fill(fill + i);
          await vol.write(i * 8 * KiB, data);
          model.set(data, i * 8 * KiB);
          const at = await shipper.mark();
          expected.push(model.slice());
          expect(await shipper.ship(at)).toMatchObject({ kind: 'shipped', durableSeq: at.seq });
        }
        await shipper.close();
      } finally {
        await src.close();
      }
    };
    try {
      await generation(10, 0);
      await generation(20, 3); // the same marker numbers again, from another log
      const points = await dst.site.lws.points({ sessionId: 'pd-1' });
      expect(points).toHaveLength(6); // taken for a resume, the second generation would have stored nothing
      for (const [i, p] of points.entries()) {
        expect(p.valid).toBe(true);
        const clone = await dst.site.lws.clone('src', 'pd-1', p.seq, `gen-${p.seq}/`);
        try {
          expectSameBytes(await [...clone.volumes.values()][0]!.read(0, VOLUME_BYTES), expected[i]!);
        } finally {
          for (const v of clone.volumes.values()) await v.close();
        }
      }
    } finally {
      await dst.site.close();
    }
  });

  it('group commit: appends made during a sync share one synced batch; a refused append refuses its session\'s later ones', async () => {
    const net = MemoryTransport.create();
    const meta = await MemoryMetaStore.open();
    const dst = await targetSite('dst', net, { meta });
    try {
      await dst.site.lws.open('src', 's', 1, [{ volumeId: 'v', seedSnapshotId: 'snap' }], 'log-a');
      const xxh = await loadXxh64();
      const data = new Uint8Array(4096).fill(9);
      const write = (seq: number) => ({ kind: 'write' as const, seq, volumeId: 'v', byteOffset: 0, checksum: xxh.hash(data), codec: 0, rawLength: 4096, data });
      const marker = (seq: number) => ({ kind: 'marker' as const, seq, timeMs: seq, volumeIds: ['v'] });
      const batch = vi.spyOn(meta, 'batch');
      const five = [2, 4, 6, 8, 10].map((seq) => dst.site.lws.append('src', 's', [write(seq), marker(seq + 1)]));
      expect(await Promise.all(five)).toEqual([3, 5, 7, 9, 11]);
      expect(batch).toHaveBeenCalledTimes(1);
      batch.mockClear();
      const bad = { ...write(14), checksum: write(14).checksum ^ 1n };
      const group = [
        dst.site.lws.append('src', 's', [write(12), marker(13)]),
        dst.site.lws.append('src', 's', [bad, marker(15)]),
        dst.site.lws.append('src', 's', [write(16), marker(17)]),
      ];
      const settled = await Promise.allSettled(group);
      expect(settled.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
      expect((settled[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'CORRUPTION' });
      expect((await dst.site.lws.points()).map((p) => p.seq).at(-1)).toBe(13); // nothing past the gap
      await expect(dst.site.lws.append('src', 's', [write(14), marker(15)])).rejects.toMatchObject({ code: 'CORRUPTION' }); // still refused: a later batch queued behind the gap
      expect(await dst.site.lws.open('src', 's', 1, [{ volumeId: 'v', seedSnapshotId: 'snap' }], 'log-a')).toBe(13); // the source resumes
      expect(await dst.site.lws.append('src', 's', [write(14), marker(15), write(16), marker(17)])).toBe(17);
      expect(batch).toHaveBeenCalledTimes(2);
    } finally {
      await dst.site.close();
    }
  });

  it('a record failing its checksum is refused (CORRUPTION) and nothing of its batch is stored', async () => {
    const net = MemoryTransport.create();
    const dst = await targetSite('dst', net);
    try {
      await dst.site.lws.open('src', 's', 1, [{ volumeId: 'v', seedSnapshotId: 'snap' }], 'log-a');
      const xxh = await loadXxh64();
      const data = new Uint8Array(4096).fill(5);
      const good = { kind: 'write' as const, seq: 2, volumeId: 'v', byteOffset: 0, checksum: xxh.hash(data), codec: 0, rawLength: 4096, data };
      const bad = { ...good, seq: 3, checksum: good.checksum ^ 1n };
      const marker = { kind: 'marker' as const, seq: 4, timeMs: 1, volumeIds: ['v'] };
      await expect(dst.site.lws.append('src', 's', [good, bad, marker])).rejects.toMatchObject({ code: 'CORRUPTION' });
      expect(await dst.site.lws.points()).toEqual([]);
      await dst.site.lws.open('src', 's', 1, [{ volumeId: 'v', seedSnapshotId: 'snap' }], 'log-a');
      expect(await dst.site.lws.append('src', 's', [good, { ...bad, checksum: good.checksum }, marker])).toBe(4);
      expect((await dst.site.lws.points()).map((p) => [p.seq, p.valid])).toEqual([[4, false]]); // the seed is not held here
      await expect(dst.site.lws.clone('src', 's', 4, 'x/')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      await dst.site.close();
    }
  });

  it('a lagging target loses its hold at the bound instead of the log growing, and the shipper reports it (re-seed)', async () => {
    const net = MemoryTransport.create();
    const dropped: string[] = [];
    const src = await sourceSite('src', { logBytes: 1 << 20, onHoldDropped: (h) => dropped.push(h) });
    const dst = await targetSite('dst', net);
    try {
      const vol = await src.tree.createVolume({ name: 'a', byteLength: VOLUME_BYTES, blockBytes: 16 * KiB });
      const shipper = src.site.nearSync(dst.remote, { sessionId: 'pd', volumeIds: [vol.id] });
      const at = await shipper.markSeed();
      const [seed] = await src.tree.snapshotGroup([vol.id], { name: 'seed' });
      shipper.setBase(at.seq, new Map([[vol.id, seed!.id]]));
      let m = at;
      for (let i = 0; i < 400 && dropped.length === 0; i++) {
        await vol.write((i % 60) * 4 * KiB, new Uint8Array(4 * KiB).fill(i & 255));
        if (i % 50 === 0) m = await shipper.mark();
      }
      expect(dropped).toEqual([shipper.holderId]);
      const stats = src.tree.writeLogStats()!;
      expect(stats.usedBytes).toBeLessThanOrEqual(stats.capacityBytes);
      expect(await shipper.ship(m)).toEqual({ kind: 'dropped' });
      await shipper.close();
    } finally {
      await dst.site.close();
      await src.close();
    }
  });
});
