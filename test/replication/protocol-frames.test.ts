import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/adapters/virtual-clock.js';
import { loadXxh64 } from '../../src/core/checksum.js';
import { isDrkitError } from '../../src/core/errors.js';
import {
  FRAME_HEADER_BYTES,
  FRAME_OVERHEAD_BYTES,
  FRAME_TYPE,
  MAX_FRAME_PAYLOAD_BYTES,
  decodeFrame,
  decodeFrameHeader,
  encodeFrame,
} from '../../src/replication/internal/frame-codec.js';
import { FrameReader } from '../../src/replication/internal/frame-reader.js';
import { FrameWriter } from '../../src/replication/internal/frame-writer.js';
import { chunkAt, memoryDuplex, scriptedConnection } from './protocol-helpers.js';

const xxh64 = await loadXxh64();
const clock = new VirtualClock();

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (isDrkitError(err)) return err.code;
    throw err;
  }
  return undefined;
}

function frame(seq: number, payload: Uint8Array, type: number = FRAME_TYPE.EXTENTS_ACK): Uint8Array {
  return encodeFrame(xxh64, { type: type as never, seq, parts: [payload] });
}

async function readAll(chunks: Uint8Array[]): Promise<{ frames: { seq: number; payload: Uint8Array }[]; code?: string }> {
  const reader = new FrameReader(scriptedConnection(chunks), { xxh64, clock });
  const frames: { seq: number; payload: Uint8Array }[] = [];
  try {
    for await (const f of reader) frames.push({ seq: f.seq, payload: f.payload });
    return { frames };
  } catch (err) {
    if (!isDrkitError(err)) throw err;
    return { frames, code: err.code };
  }
}

describe('frame codec', () => {
  it('has the documented header layout', () => {
    const bytes = frame(7, Uint8Array.of(1, 2, 3), FRAME_TYPE.HELLO);
    expect([...bytes.subarray(0, FRAME_HEADER_BYTES)]).toEqual([0x44, 0x4b, 2, 1, 0, 0, 0, 0, 0, 7, 0, 0, 0, 3]);
    expect(bytes.length).toBe(3 + FRAME_OVERHEAD_BYTES);
    expect(new DataView(bytes.buffer).getBigUint64(17)).toBe(xxh64.hash(bytes.subarray(0, 17)));
  });

  it('validates every header field', async () => {
    const good = frame(0, Uint8Array.of(9));
    const mutate = (at: number, value: number) => {
      const b = good.slice();
      b[at] = value;
      return b;
    };
    expect(await codeOf(() => decodeFrame(xxh64, mutate(0, 0x45)))).toBe('PROTOCOL_ERROR');
    expect(await codeOf(() => decodeFrame(xxh64, mutate(2, 1)))).toBe('FORMAT_VERSION'); // v1 is refused
    expect(await codeOf(() => decodeFrame(xxh64, mutate(2, 3)))).toBe('FORMAT_VERSION');
    expect(await codeOf(() => decodeFrame(xxh64, mutate(3, 99)))).toBe('PROTOCOL_ERROR');
    expect(await codeOf(() => decodeFrame(xxh64, mutate(4, 2)))).toBe('PROTOCOL_ERROR'); // an undefined flag
    expect(await codeOf(() => decodeFrame(xxh64, mutate(5, 1)))).toBe('PROTOCOL_ERROR');
    expect(await codeOf(() => decodeFrame(xxh64, mutate(14, 8)))).toBe('PROTOCOL_ERROR'); // payload bit flip: checksum
    expect(await codeOf(() => decodeFrame(xxh64, good, 1))).toBe('PROTOCOL_ERROR'); // sequence
    expect(await codeOf(() => decodeFrame(xxh64, good.subarray(0, good.length - 1)))).toBe('PROTOCOL_ERROR');
    expect(decodeFrame(xxh64, good, 0).payload).toEqual(Uint8Array.of(9));
  });

  it('rejects a length lie before allocating', async () => {
    const header = frame(0, new Uint8Array(0)).subarray(0, FRAME_HEADER_BYTES).slice();
    new DataView(header.buffer).setUint32(10, 0xffff_ffff);
    expect(await codeOf(() => decodeFrameHeader(header))).toBe('PROTOCOL_ERROR');
    new DataView(header.buffer).setUint32(10, MAX_FRAME_PAYLOAD_BYTES);
    expect(decodeFrameHeader(header).payloadByteLength).toBe(MAX_FRAME_PAYLOAD_BYTES);
    // A reader fed only the lying header fails at once, without waiting for 4 GiB.
    new DataView(header.buffer).setUint32(10, 0xffff_ffff);
    const result = await readAll([header]);
    expect(result.code).toBe('PROTOCOL_ERROR');
  });

  it('refuses to encode an oversized payload', async () => {
    expect(await codeOf(() => encodeFrame(xxh64, { type: FRAME_TYPE.EXTENTS, seq: 0, parts: [new Uint8Array(MAX_FRAME_PAYLOAD_BYTES + 1)] }))).toBe('INVALID_ARGUMENT');
  });
});

describe('FrameReader', () => {
  it('reassembles frames from any chunking', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 8 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 20 }), async (payloads, cuts) => {
        const stream = Uint8Array.from(payloads.flatMap((p, i) => [...frame(i, p)]));
        const { frames, code } = await readAll(chunkAt(stream, cuts));
        expect(code).toBeUndefined();
        expect(frames.map((f) => f.seq)).toEqual(payloads.map((_, i) => i));
        expect(frames.map((f) => f.payload)).toEqual(payloads);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects a replayed, reordered or dropped frame by its sequence number', async () => {
    const f0 = frame(0, Uint8Array.of(0));
    const f1 = frame(1, Uint8Array.of(1));
    const f2 = frame(2, Uint8Array.of(2));
    expect((await readAll([f0, f1, f1])).code).toBe('PROTOCOL_ERROR'); // replay
    expect((await readAll([f0, f2, f1])).code).toBe('PROTOCOL_ERROR'); // reorder
    expect((await readAll([f1])).code).toBe('PROTOCOL_ERROR'); // first frame lost
    expect((await readAll([f0, f1, f2])).frames.length).toBe(3);
  });

  it('fails on a stream that ends inside a frame, and ends cleanly between frames', async () => {
    const f0 = frame(0, Uint8Array.of(1, 2, 3));
    expect(await readAll([f0.subarray(0, 5)])).toMatchObject({ code: 'PROTOCOL_ERROR' });
    expect(await readAll([f0.subarray(0, f0.length - 1)])).toMatchObject({ code: 'PROTOCOL_ERROR' });
    expect(await readAll([f0])).toMatchObject({ frames: [{ seq: 0 }] });
    expect(await readAll([])).toEqual({ frames: [] });
  });

  it('rejects a non-drkit peer after its first bytes', async () => {
    expect((await readAll([new TextEncoder().encode('GE')])).code).toBe('PROTOCOL_ERROR');
    expect((await readAll([Uint8Array.of(0x44, 0x4b, 9)])).code).toBe('FORMAT_VERSION');
  });

  it('times out an idle peer on the injected clock, and the failure is sticky', async () => {
    const vclock = new VirtualClock();
    const [a, b] = memoryDuplex();
    const reader = new FrameReader(b, { xxh64, clock: vclock, idleTimeoutMs: 5000 });
    await a.write(frame(0, Uint8Array.of(1)));
    expect((await reader.read())?.seq).toBe(0);
    const pending = reader.read();
    let settled = false;
    const outcome = codeOf(pending).finally(() => {
      settled = true;
    });
    await vclock.advance(4999);
    await a.write(frame(1, new Uint8Array(0)).subarray(0, 3)); // a partial frame resets the idle clock
    await vclock.advance(4999);
    expect(settled).toBe(false);
    await vclock.advance(1);
    expect(await outcome).toBe('TIMEOUT');
    expect(await codeOf(reader.read())).toBe('TIMEOUT');
    b.destroy();
  });

  it('refuses concurrent reads', async () => {
    const [, b] = memoryDuplex();
    const reader = new FrameReader(b, { xxh64, clock });
    const first = reader.read();
    expect(await codeOf(reader.read())).toBe('BUSY');
    b.destroy();
    expect(await codeOf(first)).toBe('CONNECTION_LOST');
  });
});

describe('FrameWriter', () => {
  it('numbers frames in call order, one write per frame, even without awaiting', async () => {
    const [a, b] = memoryDuplex();
    const writer = new FrameWriter(a, { xxh64 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => writer.write(FRAME_TYPE.EXTENTS_ACK, [Uint8Array.of(i)])));
    expect(a.written.length).toBe(20);
    await a.close();
    const reader = new FrameReader(b, { xxh64, clock });
    const payloads: number[] = [];
    for await (const f of reader) payloads.push(f.payload[0]!);
    expect(payloads).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('does not consume a sequence number for a rejected frame, and a failed write is sticky', async () => {
    const [a, b] = memoryDuplex();
    const writer = new FrameWriter(a, { xxh64 });
    expect(await codeOf(writer.write(FRAME_TYPE.EXTENTS, [new Uint8Array(MAX_FRAME_PAYLOAD_BYTES + 1)]))).toBe('INVALID_ARGUMENT');
    expect(writer.nextSeq).toBe(0);
    await writer.write(FRAME_TYPE.WELCOME, []);
    b.destroy();
    expect(await codeOf(writer.write(FRAME_TYPE.WELCOME, []))).toBe('CONNECTION_LOST');
    expect(await codeOf(writer.write(FRAME_TYPE.WELCOME, []))).toBe('CONNECTION_LOST');
  });
});

describe('FrameWriter buffer reuse', () => {
  /** A connection that keeps each frame by reference until a later tick, checking that nobody rewrote it before its write resolved. */
  function holdingConnection() {
    const frames: Uint8Array[] = [];
    const overwritten: number[] = [];
    const buffers = new Set<ArrayBufferLike>();
    return {
      frames,
      overwritten,
      buffers,
      connection: {
        peer: { address: 'holding' },
        async write(bytes: Uint8Array) {
          const atCall = bytes.slice();
          buffers.add(bytes.buffer);
          await new Promise((resolve) => setTimeout(resolve, 1));
          if (!equal(bytes, atCall)) overwritten.push(frames.length);
          frames.push(atCall);
        },
        read: () => (async function* () {})(),
        close: async () => undefined,
        destroy: () => undefined,
      },
    };
  }
  const equal = (x: Uint8Array, y: Uint8Array) => x.length === y.length && x.every((v, i) => v === y[i]);

  it('encodes bulk frames into recycled buffers, never one a write still holds, byte-identical to fresh encodings (seeded)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 300_000 }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 4 }),
        async (sizes, concurrency) => {
          const h = holdingConnection();
          const writer = new FrameWriter(h.connection, { xxh64 });
          const payloads = sizes.map((n, i) => new Uint8Array(n).fill((i * 37 + 1) & 0xff));
          // Writes issued `concurrency` at a time without awaiting each other: frames are
          // encoded while earlier ones are still held by the connection.
          for (let i = 0; i < payloads.length; i += concurrency) {
            await Promise.all(payloads.slice(i, i + concurrency).map((p) => writer.write(FRAME_TYPE.EXTENTS, [p.subarray(0, p.length >> 1), p.subarray(p.length >> 1)])));
          }
          expect(h.overwritten).toEqual([]);
          h.frames.forEach((f, i) => expect(equal(f, encodeFrame(xxh64, { type: FRAME_TYPE.EXTENTS, seq: i, parts: [payloads[i]!] }))).toBe(true));
          const bulk = sizes.filter((n) => n + FRAME_OVERHEAD_BYTES >= 64 * 1024).length;
          // Sequential bulk writes reuse: fewer distinct buffers than bulk frames (bounded by the spares plus those in flight).
          if (concurrency === 1 && bulk >= 4) expect(h.buffers.size).toBeLessThan(payloads.length);
        },
      ),
      { seed: 1302, numRuns: 40 },
    );
  });

  it('encodeFrame into a buffer equals a fresh encoding; a buffer too small is INVALID_ARGUMENT and consumes no MAC counter', async () => {
    const { FrameMac } = await import('../../src/replication/internal/frame-mac.js');
    const key = new Uint8Array(32).fill(7);
    const [m1, m2] = [new FrameMac(key), new FrameMac(key)];
    const parts = [new Uint8Array(1000).fill(3), new Uint8Array(5).fill(9)];
    const fresh = encodeFrame(xxh64, { type: FRAME_TYPE.EXTENTS, seq: 5, parts }, m1);
    const into = new Uint8Array(fresh.length + 100).fill(0xee);
    expect(await codeOf(() => encodeFrame(xxh64, { type: FRAME_TYPE.EXTENTS, seq: 5, parts }, m2, new Uint8Array(fresh.length - 1)))).toBe('INVALID_ARGUMENT');
    expect(m2.frameCount).toBe(0);
    const reused = encodeFrame(xxh64, { type: FRAME_TYPE.EXTENTS, seq: 5, parts }, m2, into);
    expect(reused.buffer).toBe(into.buffer);
    expect(equal(reused, fresh)).toBe(true);
  });
});
