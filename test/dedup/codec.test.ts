import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { CODEC_LZ4, CODEC_RAW, CODEC_ZSTD, ExtentCodec, MAX_CODEC_RAW_BYTES, type CodecId } from '../../src/dedup/index.js';
import { zstdCompressBound } from '../../src/dedup/codec.js';
import { equalBytes, isDrkitError } from '../../src/index.js';

/** xorshift32 bytes: deterministic incompressible data. */
function randomBytes(byteLength: number, seed: number): Uint8Array {
  const out = new Uint8Array(byteLength);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < byteLength; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Text-like bytes: words from a small vocabulary (lz4 compresses them ~2x). */
function textBytes(byteLength: number, seed: number): Uint8Array {
  const words = ['the', 'snapshot', 'of', 'a', 'volume', 'replicates', 'to', 'site', 'extent', 'and', 'fingerprint', 'is'];
  const r = randomBytes(byteLength, seed);
  const out = new Uint8Array(byteLength);
  let p = 0;
  for (let i = 0; p < byteLength; i++) {
    const w = `${words[(r[i % byteLength] as number) % words.length]} `;
    for (let c = 0; c < w.length && p < byteLength; c++) out[p++] = w.charCodeAt(c);
  }
  return out;
}

function expectCode(fn: () => unknown, code: string, seedInfo = ''): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(isDrkitError(caught), `expected a DrkitError ${code} ${seedInfo}, got ${String(caught)}`).toBe(true);
  expect((caught as { code: string }).code, seedInfo).toBe(code);
}

let codec: ExtentCodec;
beforeAll(async () => {
  codec = await ExtentCodec.open({ compression: 'lz4' });
});

describe('ExtentCodec round trip', () => {
  it('decodes what it encodes (property, fixed seed)', () => {
    const data = fc.oneof(
      fc.uint8Array({ maxLength: 70_000 }),
      // Compressible: a short random pattern repeated, so codec 1 is exercised too.
      fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.integer({ min: 1, max: 70_000 })).map(([pattern, n]) => {
        const out = new Uint8Array(n);
        for (let i = 0; i < n; i++) out[i] = pattern[i % pattern.length] as number;
        return out;
      }),
    );
    fc.assert(
      fc.property(data, (bytes) => {
        const copy = bytes.slice();
        const enc = codec.compress(bytes);
        expect(enc.bytes.byteLength).toBeLessThanOrEqual(bytes.byteLength);
        if (enc.codec === CODEC_LZ4) expect(enc.bytes.byteLength).toBeLessThanOrEqual(bytes.byteLength * 0.9);
        expect(equalBytes(codec.decompress(enc.codec, enc.bytes, bytes.byteLength), copy)).toBe(true);
        expect(equalBytes(bytes, copy)).toBe(true); // the input is not modified
      }),
      { seed: 0x5eed, numRuns: 200 },
    );
  });

  it('handles empty, 1-byte and 4 MiB extents', () => {
    for (const bytes of [new Uint8Array(0), new Uint8Array([42]), textBytes(MAX_CODEC_RAW_BYTES, 3), randomBytes(MAX_CODEC_RAW_BYTES, 4)]) {
      const enc = codec.compress(bytes);
      expect(equalBytes(codec.decompress(enc.codec, enc.bytes, bytes.byteLength), bytes)).toBe(true);
    }
    expect(codec.compress(new Uint8Array(0)).codec).toBe(CODEC_RAW);
    expect(codec.compress(new Uint8Array([42])).codec).toBe(CODEC_RAW);
    expect(codec.compress(textBytes(MAX_CODEC_RAW_BYTES, 3)).codec).toBe(CODEC_LZ4);
  });

  it('passes random data through raw, as the input itself', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const bytes = randomBytes(16 * 1024, seed);
      const enc = codec.compress(bytes);
      expect(enc.codec, `seed ${seed}`).toBe(CODEC_RAW);
      expect(enc.bytes).toBe(bytes);
    }
  });

  it('compresses text-like data', () => {
    const bytes = textBytes(16 * 1024, 9);
    const enc = codec.compress(bytes);
    expect(enc.codec).toBe(CODEC_LZ4);
    expect(enc.bytes.byteLength).toBeLessThan(bytes.byteLength / 2);
  });

  it('honours maxCompressedFraction and validates it', async () => {
    const bytes = textBytes(16 * 1024, 9);
    const ratio = codec.compress(bytes).bytes.byteLength / bytes.byteLength;
    const strict = await ExtentCodec.open({ compression: 'lz4', maxCompressedFraction: ratio * 0.99 });
    expect(strict.compress(bytes).codec).toBe(CODEC_RAW);
    const loose = await ExtentCodec.open({ compression: 'lz4', maxCompressedFraction: 1 });
    expect(loose.compress(bytes).codec).toBe(CODEC_LZ4);
    for (const bad of [0, -0.5, 1.5, Number.NaN]) {
      await expect(ExtentCodec.open({ maxCompressedFraction: bad })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
  });

  it('rejects oversized and non-byte input', () => {
    expectCode(() => codec.compress(new Uint8Array(MAX_CODEC_RAW_BYTES + 1)), 'INVALID_ARGUMENT');
    expectCode(() => codec.compress('text' as unknown as Uint8Array), 'INVALID_ARGUMENT');
    expectCode(() => codec.decompress(7 as CodecId, new Uint8Array(1), 1), 'INVALID_ARGUMENT');
    expectCode(() => codec.decompress(CODEC_RAW, new Uint8Array(1), -1), 'INVALID_ARGUMENT');
  });
});

describe('ExtentCodec decompression of hostile input', () => {
  const raw = textBytes(16 * 1024, 11);
  const enc = (() => {
    // Opened lazily inside tests; computed on first use.
    let cached: Uint8Array | undefined;
    return () => (cached ??= codec.compress(raw).bytes);
  })();

  it('every truncation is CORRUPTION', () => {
    const full = enc();
    for (let n = 0; n < full.byteLength; n += 7) {
      expectCode(() => codec.decompress(CODEC_LZ4, full.subarray(0, n), raw.byteLength), 'CORRUPTION', `truncated to ${n}`);
    }
  });

  it('a rawLength that lies is CORRUPTION', () => {
    const full = enc();
    for (const rawLength of [raw.byteLength - 1, raw.byteLength + 1, 0, 1, MAX_CODEC_RAW_BYTES, MAX_CODEC_RAW_BYTES + 1, 2 ** 32 - 1]) {
      expectCode(() => codec.decompress(CODEC_LZ4, full, rawLength), 'CORRUPTION', `rawLength ${rawLength}`);
    }
    expectCode(() => codec.decompress(CODEC_RAW, raw, raw.byteLength + 1), 'CORRUPTION');
    expectCode(() => codec.decompress(CODEC_RAW, raw, raw.byteLength - 1), 'CORRUPTION');
    expectCode(() => codec.decompress(CODEC_RAW, new Uint8Array(0), MAX_CODEC_RAW_BYTES + 1), 'CORRUPTION');
  });

  it('a prefix and rawLength that agree but lie about the stream is CORRUPTION', () => {
    const full = enc().slice();
    for (const declared of [raw.byteLength + 1, raw.byteLength - 1, raw.byteLength * 2]) {
      new DataView(full.buffer).setUint32(0, declared, true);
      expectCode(() => codec.decompress(CODEC_LZ4, full, declared), 'CORRUPTION', `declared ${declared}`);
    }
  });

  it('mutated and random payloads decode to rawLength bytes or fail with CORRUPTION, never anything else', () => {
    const full = enc();
    fc.assert(
      fc.property(
        fc.oneof(
          // A byte of the stream (after the prefix) replaced.
          fc.tuple(fc.integer({ min: 4, max: full.byteLength - 1 }), fc.integer({ min: 0, max: 255 })).map(([at, v]) => {
            const m = full.slice();
            m[at] = v;
            return m;
          }),
          // Random garbage behind a prefix that matches rawLength.
          fc.uint8Array({ minLength: 1, maxLength: 2048 }).map((body) => {
            const m = new Uint8Array(4 + body.byteLength);
            new DataView(m.buffer).setUint32(0, raw.byteLength, true);
            m.set(body, 4);
            return m;
          }),
        ),
        (payload) => {
          let out: Uint8Array | undefined;
          try {
            out = codec.decompress(CODEC_LZ4, payload, raw.byteLength);
          } catch (err) {
            expect(isDrkitError(err, 'CORRUPTION'), String(err)).toBe(true);
            return;
          }
          expect(out.byteLength).toBe(raw.byteLength);
        },
      ),
      { seed: 0xbad, numRuns: 2000 },
    );
  });
});

describe('ExtentCodec with zstd (codec 2, the default)', () => {
  let zstd: ExtentCodec;
  beforeAll(async () => {
    zstd = await ExtentCodec.open();
  });

  it('is the default codec, and validates its options', async () => {
    expect(zstd.compression).toBe(CODEC_ZSTD);
    expect((await ExtentCodec.open({ compression: 'lz4' })).compression).toBe(CODEC_LZ4);
    for (const zstdLevel of [20, -8, 1.5]) await expect(ExtentCodec.open({ zstdLevel })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(ExtentCodec.open({ compression: 'gzip' as 'zstd' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('round-trips text-like and random data (property, fixed seed), and saves more than lz4 on text', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 70_000 }), fc.integer(), fc.boolean(), (n, seed, text) => {
        const bytes = text ? textBytes(n, seed) : randomBytes(n, seed);
        const enc = zstd.compress(bytes);
        if (enc.codec === CODEC_ZSTD) expect(enc.bytes.byteLength).toBeLessThanOrEqual(bytes.byteLength * 0.9);
        expect(equalBytes(zstd.decompress(enc.codec, enc.bytes, bytes.byteLength), bytes)).toBe(true);
      }),
      { seed: 0x2d57, numRuns: 100 },
    );
    const text = textBytes(16 * 1024, 9);
    expect(zstd.compress(text).bytes.byteLength).toBeLessThan(codec.compress(text).bytes.byteLength);
  });

  it('every truncation, a lying rawLength and a flipped header byte are CORRUPTION', () => {
    const raw = textBytes(16 * 1024, 12);
    const full = zstd.compress(raw).bytes;
    for (let n = 0; n < full.byteLength; n += 5) {
      expectCode(() => zstd.decompress(CODEC_ZSTD, full.subarray(0, n), raw.byteLength), 'CORRUPTION', `truncated to ${n}`);
    }
    for (const rawLength of [raw.byteLength - 1, raw.byteLength + 1, 0, MAX_CODEC_RAW_BYTES + 1]) {
      expectCode(() => zstd.decompress(CODEC_ZSTD, full, rawLength), 'CORRUPTION', `rawLength ${rawLength}`);
    }
    const bad = full.slice();
    bad[0]! ^= 0xff; // the frame's magic number
    expectCode(() => zstd.decompress(CODEC_ZSTD, bad, raw.byteLength), 'CORRUPTION');
  });
});

describe('ExtentCodec.compressInto (bulk encoding into the caller\'s buffer)', () => {
  let zstd: ExtentCodec;
  let lz4: ExtentCodec;
  beforeAll(async () => {
    zstd = await ExtentCodec.open();
    lz4 = await ExtentCodec.open({ compression: 'lz4' });
  });

  it('writes what compress() returns at the start of out, for both codecs (property, fixed seed)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 * 1024 }), fc.integer({ min: 1, max: 2 ** 31 }), fc.boolean(), (byteLength, seed, text) => {
        const data = text ? textBytes(byteLength, seed) : randomBytes(byteLength, seed);
        for (const codec of [zstd, lz4]) {
          const out = new Uint8Array(codec.maxOutputBytes(data) + 7).fill(0xee);
          const r = codec.compressInto(data, out);
          const whole = codec.compress(data);
          expect(r.codec).toBe(whole.codec);
          if (r.codec === CODEC_RAW) expect(r.byteLength).toBe(0);
          else {
            expect(r.byteLength).toBeLessThanOrEqual(codec.maxOutputBytes(data));
            expect(equalBytes(codec.decompress(r.codec, out.subarray(0, r.byteLength), byteLength), data)).toBe(true);
            expect(out[out.byteLength - 1]).toBe(0xee); // nothing written past what fits
          }
        }
      }),
      { seed: 1312, numRuns: 60 },
    );
  });

  it('answers raw when the output would not fit in out, and never writes past it', () => {
    const data = textBytes(16384, 9);
    const needs = zstd.compressInto(data, new Uint8Array(zstd.maxOutputBytes(data))).byteLength;
    expect(needs).toBeGreaterThan(0);
    for (const codec of [zstd, lz4]) {
      const backing = new Uint8Array(needs + 16).fill(0xaa);
      const out = backing.subarray(0, 8);
      expect(codec.compressInto(data, out)).toEqual({ codec: CODEC_RAW, byteLength: 0 });
      expect(backing.subarray(8).every((b) => b === 0xaa)).toBe(true);
    }
    expect(zstd.compressInto(new Uint8Array(0), new Uint8Array(64))).toEqual({ codec: CODEC_RAW, byteLength: 0 });
  });

  it('with room for zstd\'s worst case, keeps only outputs within the limit', () => {
    // Random data, and data that compresses a little but not to 90%: both raw, though
    // zstd had room to write them.
    const slightly = randomBytes(16384, 5);
    slightly.fill(0, 0, 1200);
    for (const data of [randomBytes(16384, 3), slightly]) {
      const out = new Uint8Array(zstdCompressBound(data.byteLength) + 64);
      expect(zstd.compressInto(data, out)).toEqual({ codec: CODEC_RAW, byteLength: 0 });
      expect(zstd.compress(data).codec).toBe(CODEC_RAW);
    }
    expect(zstdCompressBound(16384)).toBe(16384 + 64 + 56);
  });

  it('keeps random data raw (zstd gives up early) and rejects bad arguments', () => {
    const data = randomBytes(16384, 3);
    expect(zstd.compressInto(data, new Uint8Array(zstd.maxOutputBytes(data))).codec).toBe(CODEC_RAW);
    expectCode(() => zstd.compressInto(new Uint8Array(MAX_CODEC_RAW_BYTES + 1), new Uint8Array(16)), 'INVALID_ARGUMENT');
    expectCode(() => zstd.compressInto(data, 'x' as unknown as Uint8Array), 'INVALID_ARGUMENT');
  });
});
