// CodecPool.prepareBatch (issue #13): one pass per extent on a worker gives what a writer
// needs to store it compressed at rest: zero or not, SHA-256, the compressed form when it
// pays. Checked against the in-thread ExtentCodec and Fingerprinter on seeded batches,
// for a worker and for the in-thread mode, so the two cannot drift apart.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CODEC_RAW, CodecPool, ExtentCodec, sha256Fingerprinter, type PreparedExtent } from '../../src/dedup/index.js';
import { equalBytes, isDrkitError } from '../../src/index.js';

function seeded(byteLength: number, seed: number, text: boolean): Uint8Array {
  const out = new Uint8Array(byteLength);
  let x = seed >>> 0 || 1;
  const words = ['extent', 'block', 'the', 'snapshot', 'of', 'a', 'site', 'zero'];
  let p = 0;
  while (p < byteLength) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    if (!text) out[p++] = x & 0xff;
    else for (const c of `${words[x % words.length]} `) if (p < byteLength) out[p++] = c.charCodeAt(0);
  }
  return out;
}

/** 0 zero, 1 random, 2 text, 3 random with a zero head (compresses a little, not enough), 4 one non-zero byte at the end. */
function extentOf(kind: number, byteLength: number, seed: number): Uint8Array {
  if (kind === 0) return new Uint8Array(byteLength);
  if (kind === 1) return seeded(byteLength, seed, false);
  if (kind === 2) return seeded(byteLength, seed, true);
  if (kind === 3) return seeded(byteLength, seed, false).fill(0, 0, byteLength >>> 4);
  const z = new Uint8Array(byteLength);
  if (byteLength > 0) z[byteLength - 1] = 1;
  return z;
}

function expectPrepared(codec: ExtentCodec, data: Uint8Array, p: PreparedExtent): void {
  if (data.every((b) => b === 0)) {
    expect(p).toEqual({ zero: true });
    return;
  }
  expect(p.zero).toBe(false);
  expect(equalBytes(p.fingerprint!, sha256Fingerprinter.fingerprint(data))).toBe(true);
  const mine = codec.compress(data);
  if (mine.codec === CODEC_RAW) expect(p.stored).toBeUndefined();
  else {
    expect(p.stored!.codec).toBe(mine.codec);
    expect(p.stored!.bytes.byteLength).toBeLessThanOrEqual(codec.maxOutputBytes(data));
    expect(equalBytes(codec.decompress(p.stored!.codec, p.stored!.bytes, data.byteLength), data)).toBe(true);
  }
}

describe.each([1, 0])('CodecPool.prepareBatch with %i workers', (workerCount) => {
  let pool: CodecPool;
  let codec: ExtentCodec;
  beforeAll(async () => {
    pool = await CodecPool.open({ workerCount });
    codec = await ExtentCodec.open();
  });
  afterAll(() => pool.close());

  it('answers zero, fingerprint and the compressed form exactly as the in-thread codec decides (property, fixed seed)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 1, max: 2 ** 30 })), { minLength: 1, maxLength: 40 }), async (specs) => {
        const batch = specs.map(([kind, n, seed]) => extentOf(kind, n, seed));
        const prepared = await pool.prepareBatch(batch);
        expect(prepared).toHaveLength(batch.length);
        batch.forEach((data, i) => expectPrepared(codec, data, prepared[i]!));
      }),
      { seed: 2026, numRuns: 25 },
    );
  });

  it('does not depend on the caller keeping its buffers: they may be reused once the call returns', async () => {
    const data = extentOf(2, 16384, 7);
    const copy = data.slice();
    const pending = pool.prepareBatch([data]);
    data.fill(0xff);
    const [p] = await pending;
    expect(equalBytes(p!.fingerprint!, sha256Fingerprinter.fingerprint(copy))).toBe(true);
  });

  it('rejects a malformed batch with INVALID_ARGUMENT', async () => {
    const err = await pool.prepareBatch(['x' as unknown as Uint8Array]).catch((e: unknown) => e);
    expect(isDrkitError(err) && err.code).toBe('INVALID_ARGUMENT');
  });
});
