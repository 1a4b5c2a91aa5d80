// Issue #13 item 5: decoding into a caller's buffer (ExtentCodec.decompressInto) and
// fingerprinting extents in place in a SharedArrayBuffer (CodecPool.fingerprintShared):
// the device restore's slabs are reused, so neither may allocate per extent or detach them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CODEC_LZ4, CODEC_RAW, CODEC_ZSTD, CodecPool, ExtentCodec, sha256Fingerprinter } from '../../src/dedup/index.js';
import { equalBytes, isDrkitError } from '../../src/index.js';

function bytesOf(n: number, seed: number, text: boolean): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = text ? 97 + (x % 4) : x & 0xff;
  }
  return out;
}

async function codeOf(fn: () => unknown): Promise<string | undefined> {
  try {
    await fn();
  } catch (err) {
    if (isDrkitError(err)) return err.code;
    throw err;
  }
  return undefined;
}

let pool: CodecPool;
let inThread: CodecPool;
beforeAll(async () => {
  pool = await CodecPool.open({ workerCount: 1 });
  inThread = await CodecPool.open({ workerCount: 0 });
});
afterAll(async () => {
  await pool.close();
  await inThread.close();
});

describe('ExtentCodec.decompressInto', () => {
  it('decodes zstd, lz4 and raw extents into the given view, with the checks of decompress', async () => {
    for (const compression of ['zstd', 'lz4'] as const) {
      const codec = await ExtentCodec.open({ compression });
      for (const [i, raw] of [bytesOf(16384, 3, true), bytesOf(16384, 4, false), new Uint8Array(0)].entries()) {
        const enc = codec.compress(raw);
        const target = new Uint8Array(raw.length + 10).fill(0xee);
        codec.decompressInto(enc.codec, enc.bytes, raw.length, target.subarray(5, 5 + raw.length));
        expect(equalBytes(target.subarray(5, 5 + raw.length), raw), `${compression} ${i}`).toBe(true);
        expect(target[4]).toBe(0xee); // nothing outside the view
        expect(target[5 + raw.length]).toBe(0xee);
        if (i === 0) expect(enc.codec).toBe(compression === 'zstd' ? CODEC_ZSTD : CODEC_LZ4);
      }
      const enc = codec.compress(bytesOf(16384, 5, true));
      expect(await codeOf(() => codec.decompressInto(enc.codec, enc.bytes, 16384, new Uint8Array(16383)))).toBe('INVALID_ARGUMENT');
      const damaged = enc.bytes.slice(0, enc.bytes.length - 3);
      expect(await codeOf(() => codec.decompressInto(enc.codec, damaged, 16384, new Uint8Array(16384)))).toBe('CORRUPTION');
      expect(await codeOf(() => codec.decompressInto(CODEC_RAW, new Uint8Array(10), 11, new Uint8Array(11)))).toBe('CORRUPTION');
    }
  });
});

describe('CodecPool.fingerprintShared', () => {
  it('fingerprints extents in place, in a worker and in-thread, leaving the buffer usable', async () => {
    const lengths = Uint32Array.from([16384, 0, 1, 70000, 4096]);
    const buffer = new SharedArrayBuffer(lengths.reduce((s, n) => s + n, 0) + 100);
    const view = new Uint8Array(buffer);
    view.set(bytesOf(view.length, 9, false));
    const expected: Uint8Array[] = [];
    let at = 0;
    for (const n of lengths) {
      expected.push(sha256Fingerprinter.fingerprint(view.subarray(at, at + n)));
      at += n;
    }
    for (const p of [pool, inThread]) {
      const got = await p.fingerprintShared(buffer, lengths);
      expect(got.length).toBe(lengths.length);
      got.forEach((d, i) => expect(equalBytes(d, expected[i]!), `workers ${p.workerCount} extent ${i}`).toBe(true));
      expect(buffer.byteLength).toBe(view.length); // shared, not transferred
      view[0] = view[0]! ^ 1;
      const again = await p.fingerprintShared(buffer, lengths);
      expect(equalBytes(again[0]!, expected[0]!)).toBe(false); // read where it lies, not a stale copy
      view[0] = view[0]! ^ 1;
    }
    expect(await codeOf(() => pool.fingerprintShared(new SharedArrayBuffer(10), Uint32Array.from([11])))).toBe('INVALID_ARGUMENT');
  });
});
