// Replication logic end to end without a network: the sender talks to the receiver's
// ReceiverState directly (the ReplicationPort). Properties: a replicated snapshot reads
// bit-identical to its source for arbitrary write histories; incremental transfers ship
// only changed extents; content already at the target costs no extent bytes; groups land
// atomically; corrupted extents are refused and never committed.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadXxh64, equalBytes } from '../../src/index.js';
import { SeededPrng } from '../../src/testing/index.js';
import { DeviceExtentStore, MemoryBlockDevice, MemoryExtentStore, MemoryMetaStore, VirtualClock } from '../../src/adapters/index.js';
import { CODEC_ZSTD, ExtentCodec } from '../../src/dedup/codec.js';
import { CodecPool } from '../../src/dedup/codec-pool.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { ReceiverState } from '../../src/replication/receiver-state.js';
import { replicateSnapshots, type SenderContext } from '../../src/replication/sender.js';
import type { ReplicationPort } from '../../src/replication/replication-port.js';

const KiB = 1024;
const seed = process.env.DRKIT_SEED === undefined ? 4242 : Number(process.env.DRKIT_SEED);

async function site(siteId: string) {
  const meta = await MemoryMetaStore.open();
  const extents = await MemoryExtentStore.open();
  const clock = new VirtualClock(1_000_000);
  const tree = await SnapshotTree.open({ meta, extents, clock });
  const ctx: SenderContext = { tree, siteId, codec: await ExtentCodec.open(), xxh: await loadXxh64(), clock };
  const receiver = await ReceiverState.open(tree, meta, siteId);
  return { siteId, tree, meta, extents, ctx, receiver, clock };
}

async function readAll(tree: SnapshotTree, snapshotId: string): Promise<Uint8Array> {
  const r = tree.openSnapshot(snapshotId);
  try {
    return await r.read(0, r.byteLength);
  } finally {
    await r.close();
  }
}

const writeArb = (byteLength: number) =>
  fc.record({
    byteOffset: fc.nat({ max: byteLength - 1 }),
    len: fc.integer({ min: 1, max: 20 * KiB }),
    fill: fc.oneof(fc.constant(-1), fc.nat({ max: 3 })),
    seed: fc.nat(),
  });

function bytesFor(w: { len: number; fill: number; seed: number }, max: number): Uint8Array {
  const out = new Uint8Array(Math.min(w.len, max));
  if (w.fill >= 0) return out.fill(w.fill);
  let x = w.seed || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

describe('replication (in process)', () => {
  it(`replicated snapshots read bit-identical, incrementals included (seed ${seed})`, async () => {
    const byteLength = 64 * 4 * KiB;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(writeArb(byteLength), { maxLength: 8 }), { minLength: 1, maxLength: 4 }), async (rounds) => {
        const a = await site('A');
        const b = await site('B');
        const vol = await a.tree.createVolume({ name: 'v', byteLength, blockBytes: 4 * KiB });
        for (const writes of rounds) {
          for (const w of writes) await vol.write(w.byteOffset, bytesFor(w, byteLength - w.byteOffset));
          const snap = await a.tree.snapshot(vol.id, { name: 'r', userMetadata: { app: 'db' } });
          const result = await replicateSnapshots(a.ctx, b.receiver, 'B', [snap.id]);
          const remoteId = result.remoteSnapshotIds[0]!;
          expect(equalBytes(await readAll(b.tree, remoteId), await readAll(a.tree, snap.id))).toBe(true);
          const remote = b.tree.getSnapshot(remoteId);
          expect(remote.createdMs).toBe(snap.createdMs);
          expect(remote.userMetadata.app).toBe('db');
        }
        expect(b.tree.listVolumes()).toEqual([]); // no staging volume left behind
        expect((await b.tree.verify({ readData: true })).problems).toEqual([]);
      }),
      { seed, numRuns: 40 },
    );
  });

  it('incremental cost is proportional to the change, and known content costs no extent bytes', async () => {
    const a = await site('A');
    const b = await site('B');
    const byteLength = 1024 * 16 * KiB;
    const vol = await a.tree.createVolume({ name: 'v', byteLength });
    const data = new Uint8Array(byteLength);
    for (let i = 0; i < data.length; i += 4) new DataView(data.buffer).setUint32(i, i * 2654435761);
    await vol.write(0, data);
    const s1 = await a.tree.snapshot(vol.id, { name: 's1' });
    const full = await replicateSnapshots(a.ctx, b.receiver, 'B', [s1.id]);
    expect(full.baseSnapshotIds).toEqual([undefined]);
    expect(full.progress.sentExtentBytes).toBe(byteLength);

    // 1% of the blocks change.
    for (let blk = 0; blk < 1024; blk += 100) await vol.write(blk * 16 * KiB, new Uint8Array(16 * KiB).fill(blk & 0xff));
    const s2 = await a.tree.snapshot(vol.id, { name: 's2' });
    const inc = await replicateSnapshots(a.ctx, b.receiver, 'B', [s2.id]);
    expect(inc.baseSnapshotIds).toEqual([s1.id]);
    expect(inc.progress.totalBytes).toBe(11 * 16 * KiB);
    expect(inc.progress.sentExtentBytes).toBeLessThanOrEqual(11 * 16 * KiB);

    // A clone with content the target already holds ships no extent bytes.
    const clone = await a.tree.clone(s1.id, { name: 'c' });
    await clone.write(0, data.subarray(16 * KiB, 32 * KiB)); // a block B already has
    const s3 = await a.tree.snapshot(clone.id, { name: 's3' });
    const dedup = await replicateSnapshots(a.ctx, b.receiver, 'B', [s3.id]);
    expect(dedup.progress.sentExtentBytes).toBe(0);
    expect(equalBytes(await readAll(b.tree, dedup.remoteSnapshotIds[0]!), await readAll(a.tree, s3.id))).toBe(true);

    // Replicating the same snapshot again is a no-op that returns the same remote id.
    const again = await replicateSnapshots(a.ctx, b.receiver, 'B', [s2.id]);
    expect(again.remoteSnapshotIds).toEqual(inc.remoteSnapshotIds);
    expect(again.progress.sentExtentBytes).toBe(0);
  });

  it('replicates a consistency group atomically and keeps the group together', async () => {
    const a = await site('A');
    const b = await site('B');
    const app = await a.tree.createVolume({ name: 'app', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    const db = await a.tree.createVolume({ name: 'db', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    await app.write(0, new Uint8Array(8 * KiB).fill(1));
    await db.write(0, new Uint8Array(8 * KiB).fill(2));
    const group = await a.tree.snapshotGroup([app.id, db.id], { name: 'cg' });
    // The commit fails once: nothing of the group may appear.
    let failCommit = true;
    const flaky: ReplicationPort = {
      list: (k) => b.receiver.list(k),
      begin: (r) => b.receiver.begin(r),
      have: (f) => b.receiver.have(f),
      extents: (e) => b.receiver.extents(e),
      blocks: (s, c, bl) => b.receiver.blocks(s, c, bl),
      commit: async (ids) => {
        if (failCommit) {
          failCommit = false;
          throw new Error('link dropped before commit');
        }
        return b.receiver.commit(ids);
      },
    };
    await expect(replicateSnapshots(a.ctx, flaky, 'B', group.map((s) => s.id))).rejects.toThrow(/link dropped/);
    expect(b.tree.listSnapshots()).toEqual([]);
    const ok = await replicateSnapshots(a.ctx, flaky, 'B', group.map((s) => s.id));
    const remote = ok.remoteSnapshotIds.map((id) => b.tree.getSnapshot(id));
    expect(new Set(remote.map((s) => s.groupId)).size).toBe(1);
    expect(remote[0]!.groupId).toBeDefined();
    expect(await readAll(b.tree, remote[1]!.id)).toEqual(await readAll(a.tree, group[1]!.id));
  });

  it('compresses on a codec pool (zstd on a worker); a pool at its bound (BUSY) costs parallelism, never the transfer', async () => {
    const a = await site('A');
    const b = await site('B');
    // One pending batch for four pipelined batches: most compressBatch calls meet BUSY.
    const pool = await CodecPool.open({ workerCount: 1, maxPendingBatches: 1 });
    let busy = 0;
    const counted: CodecPool = Object.assign(Object.create(pool) as CodecPool, {
      compressBatch: async (raws: Uint8Array[], o?: { signal?: AbortSignal }) => {
        try {
          return await pool.compressBatch(raws, o);
        } catch (err) {
          if ((err as { code?: string }).code === 'BUSY') busy++;
          throw err;
        }
      },
    });
    const codecs = new Set<number>();
    const port: ReplicationPort = {
      list: (k) => b.receiver.list(k),
      begin: (r) => b.receiver.begin(r),
      have: (f) => b.receiver.have(f),
      extents: (e) => {
        for (const x of e) codecs.add(x.codec);
        return b.receiver.extents(e);
      },
      blocks: (id, c, bl) => b.receiver.blocks(id, c, bl),
      commit: (ids) => b.receiver.commit(ids),
    };
    try {
      const byteLength = 8 * 256 * 4 * KiB; // 8 batches of 256 blocks
      const vol = await a.tree.createVolume({ name: 'v', byteLength, blockBytes: 4 * KiB });
      const text = new TextEncoder().encode('drkit replicates extents compressed on a worker thread. '.repeat(80));
      for (let off = 0; off < byteLength; off += 4 * KiB) {
        const block = text.slice(0, 4 * KiB);
        new DataView(block.buffer).setUint32(0, off);
        await vol.write(off, block);
      }
      const snap = await a.tree.snapshot(vol.id, { name: 's' });
      const result = await replicateSnapshots({ ...a.ctx, codecPool: counted }, port, 'B', [snap.id]);
      expect(equalBytes(await readAll(b.tree, result.remoteSnapshotIds[0]!), await readAll(a.tree, snap.id))).toBe(true);
      expect([...codecs]).toEqual([CODEC_ZSTD]);
      expect(busy).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
  });

  it('refuses corrupted extents and never commits them', async () => {
    const a = await site('A');
    const b = await site('B');
    const vol = await a.tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    await vol.write(0, new Uint8Array(16 * KiB).map((_, i) => i & 0xff));
    const s = await a.tree.snapshot(vol.id, { name: 's' });
    const tampering: ReplicationPort = {
      ...bind(b.receiver),
      extents: (extents) =>
        b.receiver.extents(extents.map((e, i) => (i === 0 ? { ...e, data: e.data.map((x, j) => (j === 5 ? x ^ 1 : x)) } : e))),
    };
    await expect(replicateSnapshots(a.ctx, tampering, 'B', [s.id])).rejects.toMatchObject({ code: 'CORRUPTION' });
    expect(b.tree.listSnapshots()).toEqual([]);
    // A clean retry resumes and completes.
    const ok = await replicateSnapshots(a.ctx, b.receiver, 'B', [s.id]);
    expect(await readAll(b.tree, ok.remoteSnapshotIds[0]!)).toEqual(await readAll(a.tree, s.id));
  });
});

function bind(r: ReceiverState): ReplicationPort {
  return {
    list: (k) => r.list(k),
    begin: (q) => r.begin(q),
    have: (f) => r.have(f),
    extents: (e) => r.extents(e),
    blocks: (s, c, b) => r.blocks(s, c, b),
    commit: (ids) => r.commit(ids),
  };
}

describe('checksum on the wire', () => {
  it('an extent whose checksum was tampered with is refused and nothing of its batch lands', async () => {
    const a = await site('A');
    const b = await site('B');
    const vol = await a.tree.createVolume({ name: 'v', byteLength: 64 * KiB, blockBytes: 4 * KiB });
    await vol.write(0, new Uint8Array(16 * KiB).map((_, i) => (i * 7) & 0xff));
    const s = await a.tree.snapshot(vol.id, { name: 's' });
    const before = (await b.extents.stats()).extentCount;
    const lying: ReplicationPort = { ...bind(b.receiver), extents: (ex) => b.receiver.extents(ex.map((e, i) => (i === ex.length - 1 ? { ...e, checksum: e.checksum ^ 1n } : e))) };
    await expect(replicateSnapshots(a.ctx, lying, 'B', [s.id])).rejects.toMatchObject({ code: 'CORRUPTION' });
    expect((await b.extents.stats()).extentCount).toBe(before);
    expect(b.tree.listSnapshots()).toEqual([]);
  });
});

describe('block maps in launch order (issue #13)', () => {
  it('a batch whose extents land last still has its map sent before the later batches', async () => {
    const a = await site('A');
    const b = await site('B');
    const blockBytes = 4 * KiB;
    const vol = await a.tree.createVolume({ name: 'v', byteLength: 1024 * blockBytes, blockBytes });
    for (let i = 0; i < 1024; i++) await vol.write(i * blockBytes, new Uint8Array(blockBytes).fill((i % 250) + 1).map((v, j) => (j < 4 ? (i >> (8 * j)) & 0xff : v)));
    const snap = await a.tree.snapshot(vol.id, { name: 's' });
    let extentCalls = 0;
    const cursors: number[] = [];
    const port: ReplicationPort = {
      list: (k) => b.receiver.list(k),
      begin: (r) => b.receiver.begin(r),
      have: (f) => b.receiver.have(f),
      // The first batch's extents are the slowest to land.
      extents: async (e) => {
        if (extentCalls++ === 0) await new Promise((r) => setTimeout(r, 100));
        return b.receiver.extents(e);
      },
      blocks: (id, cursorAfter, blocks) => {
        cursors.push(cursorAfter);
        return b.receiver.blocks(id, cursorAfter, blocks);
      },
      commit: (ids) => b.receiver.commit(ids),
    };
    await replicateSnapshots(a.ctx, port, 'B', [snap.id]);
    expect(cursors.length).toBeGreaterThan(1);
    expect(cursors).toEqual([...cursors].sort((x, y) => x - y));
    await vol.close();
  });
});

describe('sender in-flight bound (issue #13)', () => {
  it('never has more extent bytes awaiting the receiver than inFlightExtentBytes, and does overlap calls up to it', async () => {
    const a = await site('A');
    const b = await site('B');
    const blockBytes = 4 * KiB;
    // 2048 incompressible blocks: 8 batches of 256, each one extents call of ~1 MiB.
    const vol = await a.tree.createVolume({ name: 'v', byteLength: 2048 * blockBytes, blockBytes });
    await vol.write(0, new SeededPrng(seed).fill(new Uint8Array(2048 * blockBytes)));
    const snap = await a.tree.snapshot(vol.id, { name: 's' });
    const boundBytes = 2.5 * 1024 * KiB; // two calls fit, a third does not
    const ctx: SenderContext = { ...a.ctx, inFlightExtentBytes: boundBytes };
    const held: { byteLength: number; release: () => void }[] = [];
    let heldBytes = 0;
    let peakHeldBytes = 0;
    const port: ReplicationPort = {
      ...bind(b.receiver),
      // Every call waits for the pump below, which answers the oldest only once the sender has gone quiet.
      extents: async (e) => {
        const byteLength = e.reduce((n, x) => n + x.data.byteLength, 0);
        heldBytes += byteLength;
        peakHeldBytes = Math.max(peakHeldBytes, heldBytes);
        await new Promise<void>((release) => held.push({ byteLength, release }));
        heldBytes -= byteLength;
        return b.receiver.extents(e);
      },
    };
    let done = false;
    const replicated = replicateSnapshots(ctx, port, 'B', [snap.id]).finally(() => (done = true));
    const quiet = async () => {
      for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    };
    let maxWaiting = 0;
    while (!done) {
      await quiet();
      maxWaiting = Math.max(maxWaiting, held.length);
      held.shift()?.release();
    }
    const result = await replicated;
    expect(peakHeldBytes).toBeLessThanOrEqual(boundBytes);
    expect(maxWaiting).toBe(2); // the bound, not the four pipelined batches, is what stopped the sender
    expect(result.progress.sentExtentBytes).toBe(2048 * blockBytes);
    expect(equalBytes(await readAll(b.tree, result.remoteSnapshotIds[0]!), await readAll(a.tree, snap.id))).toBe(true);
    await vol.close();
  });
});

describe('compression arenas (a port that releases extent data)', () => {
  it(`reuses its arenas and read buffer across extents calls, never before a call is answered (seed ${seed})`, async () => {
    // Site A on a DeviceExtentStore, which reads stored extents into the sender's reused read buffer.
    const metaA = await MemoryMetaStore.open();
    const storeA = await DeviceExtentStore.open({ device: await MemoryBlockDevice.create({ byteLength: 64 * 1024 * KiB }), meta: metaA });
    const clockA = new VirtualClock(1_000_000);
    const treeA = await SnapshotTree.open({ meta: metaA, extents: storeA, clock: clockA });
    const a = { tree: treeA, ctx: { tree: treeA, siteId: 'A', codec: await ExtentCodec.open(), xxh: await loadXxh64(), clock: clockA } satisfies SenderContext };
    const b = await site('B');
    // 64 KiB blocks, each distinct: a batch of 256 is ~9 MiB encoded, so one batch takes
    // several 4 MiB calls, its arena is reused, and extents move to the arena's start.
    const byteLength = 32 * 1024 * KiB;
    const blockBytes = 64 * KiB;
    const vol = await a.tree.createVolume({ name: 'v', byteLength, blockBytes });
    const prng = new SeededPrng(seed);
    const words = new TextEncoder().encode('an arena holds the compressed extents of one call until it is answered. ');
    for (let off = 0; off < byteLength; off += blockBytes) {
      const block = new Uint8Array(blockBytes);
      // A quarter random (raw), the rest half random half text (compressed to ~55%: in the arena).
      const randomUpTo = prng.below(4) === 0 ? block.length : block.length / 2;
      for (let i = 0; i < block.length; i++) block[i] = i < randomUpTo ? prng.below(256) : words[(i + off / 1024) % words.length]!;
      new DataView(block.buffer).setUint32(0, off);
      await vol.write(off, block);
    }
    const snap = await a.tree.snapshot(vol.id, { name: 's' });
    const buffers = new Set<ArrayBufferLike>();
    let calls = 0;
    const port: ReplicationPort = {
      ...bind(b.receiver),
      releasesExtentData: true,
      // Copies late, as a connection may (its frame is encoded before the call resolves):
      // bytes overwritten before the answer would land corrupted and fail the comparison.
      extents: async (extents) => {
        calls++;
        for (const e of extents) if (e.codec !== 0) buffers.add(e.data.buffer);
        await new Promise((r) => setTimeout(r, 1));
        return b.receiver.extents(extents.map((e) => ({ ...e, data: e.data.slice() })));
      },
    };
    const result = await replicateSnapshots(a.ctx, port, 'B', [snap.id]);
    expect(equalBytes(await readAll(b.tree, result.remoteSnapshotIds[0]!), await readAll(a.tree, snap.id))).toBe(true);
    expect(calls).toBeGreaterThan(2);
    // Compressed extents of all calls live in at most the pipeline's arenas.
    expect(buffers.size).toBeGreaterThan(0);
    expect(buffers.size).toBeLessThanOrEqual(4);
  });
});
