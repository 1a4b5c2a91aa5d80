// FrameReader.recycle (issue #13 item 5): a large frame's buffer is reused only when its
// consumer hands it back, and never while a kept view still reads it; the device restore's
// receiver keeps nothing that aliases a frame it was given.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/adapters/virtual-clock.js';
import { MemoryBlockDevice } from '../../src/adapters/index.js';
import { loadXxh64 } from '../../src/core/checksum.js';
import { equalBytes } from '../../src/core/bytes.js';
import { CODEC_RAW, ExtentCodec, sha256Fingerprinter } from '../../src/dedup/index.js';
import { FRAME_TYPE, encodeFrame } from '../../src/replication/internal/frame-codec.js';
import { FrameReader, RECYCLE_MIN_FRAME_BYTES } from '../../src/replication/internal/frame-reader.js';
import { DeviceReceiver, MAX_FREE_SLABS, SLAB_BYTES } from '../../src/replication/internal/device-receiver.js';
import { memoryRestoreCheckpoints } from '../../src/replication/index.js';
import { chunkAt, scriptedConnection } from './protocol-helpers.js';

const xxh64 = await loadXxh64();
const clock = new VirtualClock();

/** Payload `i` of `n` bytes: every byte depends on i, so a frame overwritten by another is visible. */
function payloadOf(i: number, n: number): Uint8Array {
  const p = new Uint8Array(n);
  for (let k = 0; k < n; k++) p[k] = (i * 131 + k * 7) & 0xff;
  return p;
}

function stream(sizes: readonly number[]): Uint8Array {
  const frames = sizes.map((n, seq) => encodeFrame(xxh64, { type: FRAME_TYPE.EXTENTS as never, seq, parts: [payloadOf(seq, n)] }));
  const all = new Uint8Array(frames.reduce((s, f) => s + f.length, 0));
  let at = 0;
  for (const f of frames) {
    all.set(f, at);
    at += f.length;
  }
  return all;
}

describe('FrameReader.recycle', () => {
  it('reuses a handed-back buffer, never one whose payload a caller kept (model-based)', async () => {
    const size = fc.oneof(fc.integer({ min: 0, max: 2048 }), fc.integer({ min: RECYCLE_MIN_FRAME_BYTES, max: RECYCLE_MIN_FRAME_BYTES * 3 }));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(size, fc.boolean()), { minLength: 1, maxLength: 14 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), async (script, cuts) => {
        const reader = new FrameReader(scriptedConnection(chunkAt(stream(script.map(([n]) => n)), cuts)), { xxh64, clock });
        const kept: { seq: number; payload: Uint8Array }[] = [];
        let recycled = 0;
        let reused = 0;
        const handedBack = new Set<ArrayBufferLike>();
        for (const [seq, [n, give]] of script.entries()) {
          const f = (await reader.read())!;
          expect(equalBytes(f.payload, payloadOf(seq, n))).toBe(true);
          if (handedBack.has(f.payload.buffer)) reused++;
          if (give && reader.recycle(f)) {
            recycled++;
            handedBack.add(f.payload.buffer);
          } else kept.push({ seq, payload: f.payload });
        }
        expect(await reader.read()).toBeUndefined();
        // Every payload not handed back still reads as it arrived: no later frame wrote over it.
        for (const k of kept) expect(equalBytes(k.payload, payloadOf(k.seq, k.payload.length))).toBe(true);
        expect(reused).toBeLessThanOrEqual(recycled);
      }),
      { numRuns: 60, verbose: 1 },
    );
  });

  it('takes only the last frame read, and only a large one; the next large frame that fits reuses it', async () => {
    const big = RECYCLE_MIN_FRAME_BYTES * 2;
    const reader = new FrameReader(scriptedConnection([stream([big, big, 100, big - 10, big * 2])]), { xxh64, clock });
    const first = (await reader.read())!;
    const second = (await reader.read())!;
    expect(reader.recycle(first)).toBe(false); // not the last frame read: stays the caller's
    expect(reader.recycle(second)).toBe(true);
    expect(reader.recycle(second)).toBe(false); // once
    const small = (await reader.read())!;
    expect(small.payload.buffer).not.toBe(second.payload.buffer);
    expect(reader.recycle(small)).toBe(false); // small frames are fresh allocations
    const fits = (await reader.read())!;
    expect(fits.payload.buffer).toBe(second.payload.buffer);
    expect(equalBytes(fits.payload, payloadOf(3, big - 10))).toBe(true);
    expect(equalBytes(first.payload, payloadOf(0, big))).toBe(true);
    expect(reader.recycle(fits)).toBe(true);
    const larger = (await reader.read())!;
    expect(larger.payload.buffer).not.toBe(fits.payload.buffer); // did not fit: fresh
    expect(equalBytes(larger.payload, payloadOf(4, big * 2))).toBe(true);
  });
});

async function openReceiver(blocks: number, blockBytes: number) {
  const device = await MemoryBlockDevice.create({ byteLength: blocks * blockBytes });
  const receiver = new DeviceReceiver({
    device,
    codec: await ExtentCodec.open(),
    fingerprinter: sha256Fingerprinter,
    checkpoints: memoryRestoreCheckpoints(),
    checkpointBytes: 1 << 30,
    deviceZeroed: false,
    onBlocks: () => undefined,
  });
  await receiver.begin({
    sessionId: 's',
    volumeKey: 'v',
    originSiteId: 'A',
    originSnapshotId: 'snap',
    originVolumeId: 'vol',
    byteLength: blocks * blockBytes,
    blockBytes,
    snapshot: { name: 'v1', createdMs: 0, consistency: 'crash', userMetadata: {} },
  });
  return { device, receiver };
}

describe('DeviceReceiver and recycled frames', () => {
  it('keeps no view into the extents it was given: overwriting them after extents() changes nothing written', async () => {
    const BLOCK = 4096;
    const { device, receiver } = await openReceiver(4, BLOCK);
    expect(receiver.keepsNoFrameViews).toBe(true);
    // One "frame" holding two raw extents and their fingerprints, as the wire decoder views them.
    const contents = [payloadOf(1, BLOCK), payloadOf(2, BLOCK)];
    const frame = new Uint8Array(2 * (32 + BLOCK));
    const extents = contents.map((c, i) => {
      const at = i * (32 + BLOCK);
      frame.set(sha256Fingerprinter.fingerprint(c), at);
      frame.set(c, at + 32);
      return { fingerprint: frame.subarray(at, at + 32), checksum: xxh64.hash(c), codec: CODEC_RAW, rawLength: BLOCK, data: frame.subarray(at + 32, at + 32 + BLOCK) };
    });
    await receiver.extents(extents);
    frame.fill(0x5a); // the reader reuses the frame's buffer for the next frame
    const blocks = [
      { blockIndex: 0, fingerprint: sha256Fingerprinter.fingerprint(contents[0]!) },
      { blockIndex: 2, fingerprint: sha256Fingerprinter.fingerprint(contents[1]!) },
    ];
    await receiver.blocks('s', 4, blocks);
    await receiver.commit(['s']);
    expect(equalBytes(await device.read(0, BLOCK), contents[0]!)).toBe(true);
    expect(equalBytes(await device.read(2 * BLOCK, BLOCK), contents[1]!)).toBe(true);
    expect((await device.read(BLOCK, BLOCK)).every((x) => x === 0)).toBe(true);
  });
});

describe('DeviceReceiver slabs', () => {
  it('decodes into a bounded set of reused slabs, whatever the volume size, and writes every block right', async () => {
    const BLOCK = 16384;
    const PER_BATCH = 64; // 1 MiB of extents per batch
    const BATCHES = 48; // 48 MiB of extents through the receiver
    const AHEAD = 4; // batches of extents sent before their block maps, as the sender pipelines them
    const { device, receiver } = await openReceiver(PER_BATCH * BATCHES, BLOCK);
    const codec = await ExtentCodec.open();
    const contentOf = (b: number) => (b % 3 === 0 ? payloadOf(b, BLOCK) : payloadOf(b % 251, BLOCK).map((x, i) => (i < 8 ? (b >> (i * 4)) & 0xff : x)));
    const wireBatch = (k: number) =>
      Array.from({ length: PER_BATCH }, (_, j) => {
        const c = contentOf(k * PER_BATCH + j);
        const enc = codec.compress(c);
        return { fingerprint: sha256Fingerprinter.fingerprint(c), checksum: xxh64.hash(c), codec: enc.codec, rawLength: BLOCK, data: enc.bytes };
      });
    const blockMap = (k: number) => Array.from({ length: PER_BATCH }, (_, j) => ({ blockIndex: k * PER_BATCH + j, fingerprint: sha256Fingerprinter.fingerprint(contentOf(k * PER_BATCH + j)) }));
    for (let k = 0; k < BATCHES + AHEAD; k++) {
      if (k < BATCHES) await receiver.extents(wireBatch(k));
      const mapped = k - AHEAD;
      if (mapped >= 0) await receiver.blocks('s', (mapped + 1) * PER_BATCH, blockMap(mapped));
      expect(receiver.slabs.free).toBeLessThanOrEqual(MAX_FREE_SLABS);
    }
    await receiver.commit(['s']);
    // Live at most: AHEAD + 1 batches of extents in slabs, plus one batch being verified; never slabs per batch.
    expect(receiver.slabs.allocated * SLAB_BYTES).toBeLessThanOrEqual((AHEAD + 2) * PER_BATCH * BLOCK);
    expect(receiver.slabs.allocated * SLAB_BYTES).toBeLessThan((BATCHES * PER_BATCH * BLOCK) / 4);
    for (let b = 0; b < PER_BATCH * BATCHES; b++) expect(equalBytes(await device.read(b * BLOCK, BLOCK), contentOf(b)), `block ${b}`).toBe(true);
  });
});

describe('DeviceReceiver read-backs', () => {
  // A sender's view of the restore: per batch a have-query of its distinct fingerprints,
  // the missing extents, and AHEAD batches later its block map. Content comes from a small
  // pool, so a block often repeats an extent written batches earlier: the receiver answers
  // "have" and must read it back (one readv per have-query, into reused slabs), verified.
  it('writes what the model says, reads back each batch in one readv into reused slabs, and a damaged read-back is CORRUPTION with none of its batch written', async () => {
    const BLOCK = 4096;
    const PER_BATCH = 16;
    const AHEAD = 3;
    const codec = await ExtentCodec.open();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.oneof(fc.constant(-1), fc.nat({ max: 40 })), { minLength: PER_BATCH, maxLength: PER_BATCH }), { minLength: 4, maxLength: 40 }),
        fc.option(fc.nat(), { nil: undefined }),
        async (batches, damageSeed) => {
          const blocks = batches.length * PER_BATCH;
          const { device, receiver } = await openReceiver(blocks, BLOCK);
          const contentOf = (c: number) => payloadOf(c + 1, BLOCK);
          const fpOf = (c: number) => sha256Fingerprinter.fingerprint(contentOf(c));
          const reads = { read: 0, readv: 0, haves: 0 };
          const readv = device.readv.bind(device);
          let damageAt = damageSeed; // counts read-backs down to the damaged one
          device.read = async () => {
            reads.read++;
            throw new Error('read-backs go through readv');
          };
          device.readv = async (rs, o) => {
            reads.readv++;
            const out = await readv(rs, o);
            for (const bytes of out) if (damageAt !== undefined && damageAt-- === 0) bytes[5]! ^= 0x01;
            return out;
          };
          const sent = new Set<number>();
          let failedBatch: number | undefined;
          try {
            for (let k = 0; k < batches.length + AHEAD; k++) {
              if (k < batches.length) {
                const distinct = [...new Set(batches[k]!.filter((c) => c >= 0))];
                reads.haves++;
                const have = await receiver.have(distinct.map(fpOf));
                const missing = distinct.filter((c, i) => !have[i]);
                for (const c of missing) expect(sent.has(c) && damageSeed === undefined, `extent ${c} resent though written`).toBe(false);
                missing.forEach((c) => sent.add(c));
                await receiver.extents(
                  missing.map((c) => {
                    const enc = codec.compress(contentOf(c));
                    return { fingerprint: fpOf(c), checksum: xxh64.hash(contentOf(c)), codec: enc.codec, rawLength: BLOCK, data: enc.bytes };
                  }),
                );
              }
              const mapped = k - AHEAD;
              if (mapped >= 0) {
                failedBatch = mapped;
                const map = batches[mapped]!.map((c, j) => ({ blockIndex: mapped * PER_BATCH + j, fingerprint: c >= 0 ? fpOf(c) : undefined }));
                await receiver.blocks('s', (mapped + 1) * PER_BATCH, map);
                failedBatch = undefined;
              }
            }
            await receiver.commit(['s']);
          } catch (err) {
            expect((err as { code?: string }).code).toBe('CORRUPTION');
            expect(damageSeed).not.toBeUndefined();
          }
          expect(reads.read).toBe(0);
          expect(reads.readv).toBeLessThanOrEqual(reads.haves);
          // Every slab goes back to the free list once its extents are written (no leak), and
          // slabs are reused: at most those of the pipeline (extents waiting for their maps, up
          // to 2 x AHEAD + 1 batches with the have-queries that claim them, read-backs of
          // AHEAD + 1 batches) plus one per distinct content, whose recurring extent can keep
          // its slab pending batch after batch.
          if (damageSeed === undefined) {
            await new Promise((resolve) => setTimeout(resolve, 1));
            expect(receiver.slabs.free).toBe(receiver.slabs.allocated);
          }
          expect(receiver.slabs.allocated).toBeLessThanOrEqual(3 * AHEAD + 2 + new Set(batches.flat()).size);
          // The model: every batch before the failed one is as mapped; the failed one is untouched (zeros).
          const lastGood = failedBatch ?? batches.length;
          device.read = MemoryBlockDevice.prototype.read.bind(device);
          for (let k = 0; k < batches.length; k++) {
            for (let j = 0; j < PER_BATCH; j++) {
              const got = await device.read((k * PER_BATCH + j) * BLOCK, BLOCK);
              const c = batches[k]![j]!;
              if (k < lastGood) expect(equalBytes(got, c >= 0 ? contentOf(c) : new Uint8Array(BLOCK)), `block ${k * PER_BATCH + j}`).toBe(true);
              else if (k === failedBatch) expect(got.every((x) => x === 0), `block ${k * PER_BATCH + j} of the failed batch`).toBe(true);
            }
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
