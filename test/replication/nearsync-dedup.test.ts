// NearSync whole-block records deduplicated by fingerprint (issue #11 item 2): a whole-block
// write ships as references to blocks the target holds, holes for zeros and data only for
// the rest; the target checks data against its fingerprint, never acknowledges a reference
// it cannot resolve, and copies referenced blocks into the journal at receipt, so a snapshot
// deleted and reclaimed afterwards takes nothing a kept LWS needs.
import { randomBytes } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { MemoryTransport } from '../../src/adapters/index.js';
import { sha256Fingerprinter } from '../../src/dedup/index.js';
import { expectSameBytes } from '../../src/testing/internal/extent-fixtures.js';
import { sourceSite, targetSite } from './nearsync-helpers.js';

const KiB = 1024;
const BLOCK = 16 * KiB;
const VOLUME_BYTES = 2048 * KiB;

/** A source and target, a one-volume session seeded and replicated, and a volume `other` replicated too (not in the group). */
async function seeded(otherContent: Uint8Array) {
  const net = MemoryTransport.create();
  const src = await sourceSite('src');
  const dst = await targetSite('dst', net);
  const vol = await src.tree.createVolume({ name: 'a', byteLength: VOLUME_BYTES, blockBytes: BLOCK });
  const other = await src.tree.createVolume({ name: 'other', byteLength: VOLUME_BYTES, blockBytes: BLOCK });
  await other.write(0, otherContent);
  const [otherSnap] = await src.tree.snapshotGroup([other.id], { name: 'other-1' });
  await src.site.replicate([otherSnap!.id], dst.remote);
  const shipper = src.site.nearSync(dst.remote, { sessionId: 'pd', volumeIds: [vol.id] });
  const at = await shipper.markSeed();
  const [seed] = await src.tree.snapshotGroup([vol.id], { name: 'seed' });
  shipper.setBase(at.seq, new Map([[vol.id, seed!.id]]));
  await src.site.replicate([seed!.id], dst.remote);
  const replicaOf = (sourceSnapshotId: string) => dst.tree.listSnapshots().find((s) => s.userMetadata['drkit.origin.snapshotId'] === sourceSnapshotId || s.name === 'other-1')!;
  return {
    src, dst, vol, shipper, otherReplica: replicaOf(otherSnap!.id),
    async close() {
      await shipper.close();
      await dst.site.close();
      await src.close();
    },
  };
}

async function expectClone(dst: Awaited<ReturnType<typeof seeded>>['dst'], seq: number, volumeId: string, expected: Uint8Array) {
  const clone = await dst.site.lws.clone('src', 'pd', seq, `at-${seq}-${Math.random()}/`);
  try {
    expectSameBytes(await clone.volumes.get(volumeId)!.read(0, expected.length), expected);
  } finally {
    for (const v of clone.volumes.values()) await v.close();
    for (const v of clone.volumes.values()) await dst.tree.deleteVolume(v.id, { reclaim: true }); // its extents would answer later queries
  }
}

describe('NearSync whole-block deduplication', () => {
  it('rewriting content the target holds ships ~fingerprints only; the LWS restores after the snapshot holding it is deleted and reclaimed', async () => {
    const content = randomBytes(1024 * KiB); // 64 incompressible blocks
    const s = await seeded(content);
    try {
      const model = new Uint8Array(VOLUME_BYTES);
      await s.vol.write(512 * KiB, content); // the target holds every block (in `other`'s replica)
      model.set(content, 512 * KiB);
      const zeros = new Uint8Array(256 * KiB);
      await s.vol.write(0, zeros); // holes
      const m = await s.shipper.mark();
      const wireBefore = s.shipper.wireBytes;
      expect(await s.shipper.ship(m)).toMatchObject({ kind: 'shipped', durableSeq: m.seq });
      const wire = s.shipper.wireBytes - wireBefore;
      expect(s.shipper.dedupedBlocks).toBe(64 + 16);
      expect(wire).toBeLessThan((content.length + zeros.length) / 100); // 32-byte fingerprints for 16 KiB blocks, plus headers
      // The target drops the only snapshot holding those extents, and reclaims them.
      const fps = Array.from({ length: 64 }, (_, i) => sha256Fingerprinter.fingerprint(content.subarray(i * BLOCK, (i + 1) * BLOCK)));
      expect((await s.dst.tree.haveExtents(fps)).every(Boolean)).toBe(true);
      await s.dst.tree.deleteSnapshot(s.otherReplica.id, { reclaim: true });
      await s.dst.tree.collectGarbage();
      expect((await s.dst.tree.haveExtents(fps)).some(Boolean)).toBe(false);
      await expectClone(s.dst, m.seq, s.vol.id, model);
      // Rewriting the same content now ships its data again (the target lacks it), once per batch.
      await s.vol.write(1024 * KiB, content);
      await s.vol.write(1536 * KiB, content.subarray(0, 256 * KiB));
      model.set(content, 1024 * KiB);
      model.set(content.subarray(0, 256 * KiB), 1536 * KiB);
      const m2 = await s.shipper.mark();
      const before2 = s.shipper.wireBytes;
      const deduped2 = s.shipper.dedupedBlocks;
      expect(await s.shipper.ship(m2)).toMatchObject({ kind: 'shipped', durableSeq: m2.seq });
      expect(s.shipper.wireBytes - before2).toBeGreaterThan(content.length);
      expect(s.shipper.wireBytes - before2).toBeLessThan(content.length * 1.05);
      expect(s.shipper.dedupedBlocks - deduped2).toBe(16); // the second write's blocks name the first's data
      await expectClone(s.dst, m2.seq, s.vol.id, model);
    } finally {
      await s.close();
    }
  });

  it('a reference the target cannot resolve is never acknowledged: the batch is refused, and the next ship sends the data', async () => {
    const content = randomBytes(256 * KiB);
    const s = await seeded(new Uint8Array(BLOCK).fill(1));
    try {
      await s.vol.write(0, content);
      const m = await s.shipper.mark();
      const have = vi.spyOn(s.dst.site.lws, 'have').mockImplementation(async (_site, _session, fps) => fps.map(() => true)); // a stale answer
      await expect(s.shipper.ship(m)).rejects.toMatchObject({ code: 'EXTENT_NOT_FOUND' });
      expect(s.dst.site.lws.sessions()[0]!.durableSeq).toBeLessThan(m.seq);
      expect((await s.dst.site.lws.points()).map((p) => p.seq)).not.toContain(m.seq);
      have.mockRestore();
      expect(await s.shipper.ship(m)).toMatchObject({ kind: 'shipped', durableSeq: m.seq });
      const model = new Uint8Array(VOLUME_BYTES);
      model.set(content, 0);
      await expectClone(s.dst, m.seq, s.vol.id, model);
    } finally {
      await s.close();
    }
  });

  it('data sent for a fingerprint is checked against it (CORRUPTION, nothing stored); a reference to an extent not held here is refused (EXTENT_NOT_FOUND)', async () => {
    const net = MemoryTransport.create();
    const dst = await targetSite('dst', net);
    try {
      await dst.site.lws.open('src', 's', 1, [{ volumeId: 'v', seedSnapshotId: 'snap' }], 'log-a');
      const block = randomBytes(BLOCK);
      const fingerprint = sha256Fingerprinter.fingerprint(block);
      const record = (seq: number, blocks: unknown[]) => ({ kind: 'blocks' as const, seq, volumeId: 'v', byteOffset: 0, blockBytes: BLOCK, digestBytes: 32, blocks: blocks as never });
      const marker = { kind: 'marker' as const, seq: 4, timeMs: 1, volumeIds: ['v'] };
      const tampered = Uint8Array.from(block);
      tampered[100]! ^= 1;
      await expect(dst.site.lws.append('src', 's', [record(2, [{ kind: 'data', fingerprint, codec: 0, data: tampered }]), marker])).rejects.toMatchObject({ code: 'CORRUPTION' });
      expect(await dst.site.lws.points()).toEqual([]);
      await dst.site.lws.open('src', 's', 1, [{ volumeId: 'v', seedSnapshotId: 'snap' }], 'log-a');
      const missing = sha256Fingerprinter.fingerprint(randomBytes(BLOCK));
      await expect(dst.site.lws.append('src', 's', [record(2, [{ kind: 'ref', fingerprint: missing }]), marker])).rejects.toMatchObject({ code: 'EXTENT_NOT_FOUND' });
      expect(await dst.site.lws.points()).toEqual([]);
      expect(dst.site.lws.sessions()[0]!.durableSeq).toBe(1);
      await dst.site.lws.open('src', 's', 1, [{ volumeId: 'v', seedSnapshotId: 'snap' }], 'log-a');
      // A reference to an extent of another size (a 4 KiB block named as a 16 KiB one) is refused too.
      const small = randomBytes(4 * KiB);
      const smallFp = sha256Fingerprinter.fingerprint(small);
      await dst.tree.putExtents([{ fingerprint: smallFp, data: small }]);
      await dst.site.lws.open('src', 's', 1, [{ volumeId: 'v', seedSnapshotId: 'snap' }], 'log-a');
      await expect(dst.site.lws.append('src', 's', [record(2, [{ kind: 'ref', fingerprint: smallFp }]), marker])).rejects.toMatchObject({ code: 'CORRUPTION' });
      await dst.site.lws.open('src', 's', 1, [{ volumeId: 'v', seedSnapshotId: 'snap' }], 'log-a');
      // The same batch made right: data, a reference to it, a hole.
      expect(await dst.site.lws.append('src', 's', [record(2, [{ kind: 'data', fingerprint, codec: 0, data: block }, { kind: 'ref', fingerprint }, { kind: 'hole' }]), marker])).toBe(4);
    } finally {
      await dst.site.close();
    }
  });
});
