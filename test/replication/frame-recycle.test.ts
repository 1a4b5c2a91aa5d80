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
