import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CODEC_LZ4,
  CODEC_RAW,
  CODEC_ZSTD,
  CodecPool,
  ExtentCodec,
  MAX_CODEC_RAW_BYTES,
  MAX_POOL_BATCH_BYTES,
  sha256Fingerprinter,
  type EncodedExtent,
} from '../../src/dedup/index.js';
import { equalBytes, isDrkitError } from '../../src/index.js';

const root = resolve(__dirname, '../..');

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

function textBytes(byteLength: number, seed: number): Uint8Array {
  const words = ['pool', 'worker', 'batch', 'extent', 'codec', 'lz4', 'the', 'a', 'of', 'site'];
  const r = randomBytes(byteLength, seed);
  const out = new Uint8Array(byteLength);
  let p = 0;
  for (let i = 0; p < byteLength; i++) {
    const w = `${words[(r[i] as number) % words.length]} `;
    for (let c = 0; c < w.length && p < byteLength; c++) out[p++] = w.charCodeAt(c);
  }
  return out;
}

/** A seeded mixed batch: random, text, empty, tiny; views into one shared buffer too. */
function mixedBatch(seed: number, count: number): Uint8Array[] {
  const r = randomBytes(count * 2, seed);
  const shared = textBytes(64 * 1024, seed + 1);
  return Array.from({ length: count }, (_, i) => {
    const kind = (r[2 * i] as number) % 5;
    const byteLength = ((r[2 * i + 1] as number) * 97) % 20_000;
    if (kind === 0) return randomBytes(byteLength, seed * 1000 + i);
    if (kind === 1) return textBytes(byteLength, seed * 1000 + i);
    if (kind === 2) return new Uint8Array(0);
    if (kind === 3) return shared.subarray(i % 1000, (i % 1000) + Math.min(byteLength, 60_000));
    return new Uint8Array([i & 0xff]);
  });
}

function sameEncoding(a: readonly EncodedExtent[], b: readonly EncodedExtent[], info: string): void {
  expect(a.length, info).toBe(b.length);
  a.forEach((x, i) => {
    expect(x.codec, `${info} extent ${i}`).toBe(b[i]?.codec);
    expect(equalBytes(x.bytes, (b[i] as EncodedExtent).bytes), `${info} extent ${i}`).toBe(true);
  });
}

let codec: ExtentCodec;
let pool: CodecPool;
let inThread: CodecPool;
beforeAll(async () => {
  codec = await ExtentCodec.open({ compression: 'lz4' });
  pool = await CodecPool.open({ workerCount: 2, compression: 'lz4' });
  inThread = await CodecPool.open({ workerCount: 0, compression: 'lz4' });
});
afterAll(async () => {
  await pool.close();
  await inThread.close();
});

describe('CodecPool with zstd (codec 2, the default)', () => {
  it('compresses and decompresses exactly as the in-thread zstd codec, and rejects corrupt zstd with CORRUPTION (seeded batches)', async () => {
    const zstd = await ExtentCodec.open();
    expect(zstd.compression).toBe(CODEC_ZSTD);
    const zPool = await CodecPool.open({ workerCount: 1 });
    const zInThread = await CodecPool.open({ workerCount: 0 });
    try {
      for (const seed of [11, 12, 13]) {
        const batch = [...mixedBatch(seed, 40), textBytes(MAX_CODEC_RAW_BYTES, seed)];
        const expected = batch.map((b) => zstd.compress(b));
        const [viaPool, viaThread] = await Promise.all([zPool.compressBatch(batch), zInThread.compressBatch(batch)]);
        sameEncoding(viaPool, expected, `seed ${seed} pool`);
        sameEncoding(viaThread, expected, `seed ${seed} in-thread`);
        expect(viaPool.some((e) => e.codec === CODEC_ZSTD) && viaPool.some((e) => e.codec === CODEC_RAW), `seed ${seed}`).toBe(true);
        const encoded = viaPool.map((e, i) => ({ ...e, rawLength: (batch[i] as Uint8Array).byteLength }));
        for (const p of [zPool, zInThread]) {
          const decoded = await p.decompressBatch(encoded);
          decoded.forEach((d, i) => expect(equalBytes(d, batch[i] as Uint8Array), `seed ${seed} decode ${i}`).toBe(true));
        }
        const z = encoded.findIndex((e) => e.codec === CODEC_ZSTD);
        const truncated = encoded.map((e, i) => (i === z ? { ...e, bytes: e.bytes.subarray(0, e.bytes.byteLength - 3) } : e));
        const longer = encoded.map((e, i) => (i === z ? { ...e, rawLength: e.rawLength - 1 } : e));
        for (const p of [zPool, zInThread]) {
          await expect(p.decompressBatch(truncated), `seed ${seed}`).rejects.toMatchObject({ code: 'CORRUPTION', data: { index: z } });
          await expect(p.decompressBatch(longer), `seed ${seed}`).rejects.toMatchObject({ code: 'CORRUPTION', data: { index: z } });
        }
      }
    } finally {
      await zPool.close();
      await zInThread.close();
    }
  });
});

describe('CodecPool', () => {
  it('compresses, decompresses and fingerprints exactly as the in-thread codec (seeded batches)', async () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const batch = mixedBatch(seed, 40);
      const originals = batch.map((b) => b.slice());
      const expected = batch.map((b) => codec.compress(b));
      const [viaPool, viaThread] = await Promise.all([pool.compressBatch(batch), inThread.compressBatch(batch)]);
      sameEncoding(viaPool, expected, `seed ${seed} pool`);
      sameEncoding(viaThread, expected, `seed ${seed} in-thread`);
      expect(viaPool.some((e) => e.codec === CODEC_LZ4) && viaPool.some((e) => e.codec === CODEC_RAW), `seed ${seed}`).toBe(true);
      // The caller's buffers are untouched (the pool copies, it does not detach them).
      batch.forEach((b, i) => expect(equalBytes(b, originals[i] as Uint8Array), `seed ${seed} input ${i}`).toBe(true));

      const encoded = viaPool.map((e, i) => ({ ...e, rawLength: (batch[i] as Uint8Array).byteLength }));
      const decoded = await pool.decompressBatch(encoded);
      decoded.forEach((d, i) => expect(equalBytes(d, batch[i] as Uint8Array), `seed ${seed} decode ${i}`).toBe(true));
      const decodedInThread = await inThread.decompressBatch(encoded);
      decodedInThread.forEach((d, i) => expect(equalBytes(d, batch[i] as Uint8Array), `seed ${seed} decode ${i}`).toBe(true));

      const fingerprints = await pool.fingerprintBatch(batch);
      fingerprints.forEach((f, i) => expect(equalBytes(f, sha256Fingerprinter.fingerprint(batch[i] as Uint8Array)), `seed ${seed} fp ${i}`).toBe(true));
    }
  });

  it('handles empty batches and 4 MiB extents', async () => {
    expect(await pool.compressBatch([])).toEqual([]);
    expect(await pool.fingerprintBatch([])).toEqual([]);
    const big = [textBytes(MAX_CODEC_RAW_BYTES, 7), randomBytes(MAX_CODEC_RAW_BYTES, 8)];
    const enc = await pool.compressBatch(big);
    sameEncoding(enc, big.map((b) => codec.compress(b)), '4 MiB');
    const dec = await pool.decompressBatch(enc.map((e, i) => ({ ...e, rawLength: (big[i] as Uint8Array).byteLength })));
    dec.forEach((d, i) => expect(equalBytes(d, big[i] as Uint8Array)).toBe(true));
  });

  it('reports corrupt extents with CORRUPTION and the index, in both modes, and keeps working', async () => {
    const batch = [textBytes(8192, 1), textBytes(8192, 2), textBytes(8192, 3)];
    const enc = (await pool.compressBatch(batch)).map((e, i) => ({ ...e, rawLength: (batch[i] as Uint8Array).byteLength }));
    const truncated = enc.map((e, i) => (i === 1 ? { ...e, bytes: e.bytes.subarray(0, e.bytes.byteLength - 5) } : e));
    const lying = enc.map((e, i) => (i === 2 ? { ...e, rawLength: e.rawLength + 1 } : e));
    const rawWrongLength = [{ codec: CODEC_RAW, bytes: new Uint8Array(3), rawLength: 4 }] as const;
    for (const p of [pool, inThread]) {
      await expect(p.decompressBatch(truncated)).rejects.toMatchObject({ code: 'CORRUPTION' });
      await expect(p.decompressBatch(lying)).rejects.toMatchObject({ code: 'CORRUPTION' });
      await expect(p.decompressBatch(rawWrongLength)).rejects.toMatchObject({ code: 'CORRUPTION' });
      await expect(p.decompressBatch([{ codec: CODEC_LZ4, bytes: new Uint8Array(8), rawLength: MAX_CODEC_RAW_BYTES + 1 }])).rejects.toMatchObject({
        code: 'CORRUPTION',
      });
    }
    await expect(pool.decompressBatch(truncated)).rejects.toMatchObject({ data: { index: 1 } });
    await expect(inThread.decompressBatch(truncated)).rejects.toMatchObject({ data: { index: 1 } });
    await expect(inThread.decompressBatch(lying)).rejects.toMatchObject({ data: { index: 2 } });
    const ok = await pool.decompressBatch(enc);
    ok.forEach((d, i) => expect(equalBytes(d, batch[i] as Uint8Array)).toBe(true));
  });

  it('validates batches: oversized extents and batches are INVALID_ARGUMENT', async () => {
    await expect(pool.compressBatch([new Uint8Array(MAX_CODEC_RAW_BYTES + 1)])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const tooMuch = Array.from({ length: MAX_POOL_BATCH_BYTES / MAX_CODEC_RAW_BYTES + 1 }, () => new Uint8Array(MAX_CODEC_RAW_BYTES));
    await expect(pool.compressBatch(tooMuch)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(inThread.fingerprintBatch(tooMuch)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(pool.compressBatch(['x' as unknown as Uint8Array])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(CodecPool.open({ workerCount: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(CodecPool.open({ maxPendingBatches: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('bounds pending batches with BUSY and frees the slots when they settle', async () => {
    const small = await CodecPool.open({ workerCount: 1, maxPendingBatches: 2 });
    try {
      const batch = [textBytes(256 * 1024, 5)];
      const a = small.compressBatch(batch);
      const b = small.compressBatch(batch);
      await expect(small.compressBatch(batch)).rejects.toMatchObject({ code: 'BUSY', transient: true });
      await Promise.all([a, b]);
      await expect(small.compressBatch(batch)).resolves.toHaveLength(1);
    } finally {
      await small.close();
    }
  });

  it('aborts: a signal already aborted rejects at once, a queued batch rejects when aborted', async () => {
    const small = await CodecPool.open({ workerCount: 1, maxPendingBatches: 4 });
    try {
      const batch = [textBytes(1024 * 1024, 6)];
      await expect(small.compressBatch(batch, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
      const running = small.compressBatch(batch);
      const ac = new AbortController();
      const queued = small.compressBatch(batch, { signal: ac.signal });
      ac.abort();
      await expect(queued).rejects.toMatchObject({ code: 'ABORTED' });
      await expect(running).resolves.toHaveLength(1);
    } finally {
      await small.close();
    }
  });

  it('close() rejects work in flight with CLOSED, refuses new work, is idempotent and leaves no worker running', async () => {
    const threadsBefore = process.getActiveResourcesInfo().length;
    const p = await CodecPool.open({ workerCount: 2 });
    const inflight = [p.compressBatch([textBytes(1024 * 1024, 1)]), p.compressBatch([textBytes(1024 * 1024, 2)]), p.fingerprintBatch([textBytes(1024, 3)])];
    const settled = inflight.map((call) =>
      call.then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    await p.close();
    for (const err of await Promise.all(settled)) expect(isDrkitError(err, 'CLOSED'), String(err)).toBe(true);
    await expect(p.compressBatch([new Uint8Array(1)])).rejects.toMatchObject({ code: 'CLOSED' });
    await p.close();
    expect(process.getActiveResourcesInfo().length).toBeLessThanOrEqual(threadsBefore);
  });

  it('pools that are used, or idle, and never closed do not keep the process alive', async () => {
    // The real pool, bundled from the sources with esbuild (tsup's engine) into a folder
    // under node_modules so that the child resolves lz4-napi and zstd-napi (the default
    // codec) as a user's install would.
    const { buildSync } = await import('esbuild');
    const dir = mkdtempSync(join(root, 'node_modules', '.cache-drkit-pool-'));
    try {
      buildSync({
        entryPoints: [join(root, 'src/dedup/index.ts')],
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        external: ['lz4-napi', 'zstd-napi', 'zstd-napi/binding.js', 'xxhash-wasm'],
        outfile: join(dir, 'dedup.mjs'),
        logLevel: 'silent',
      });
      writeFileSync(
        join(dir, 'child.mjs'),
        `import { CodecPool } from './dedup.mjs';
// Three workers and two batches: at least one worker never gets work and stays idle.
const pool = await CodecPool.open({ workerCount: 3 });
const idle = await CodecPool.open({ workerCount: 1 });
const text = new TextEncoder().encode('the pool the worker the batch '.repeat(2000));
const [a, b] = await Promise.all([pool.compressBatch([text, text]), pool.fingerprintBatch([text])]);
console.log(JSON.stringify({ codec: a[0].codec, byteLength: a[0].bytes.byteLength, fingerprintBytes: b[0].byteLength }));
// No close(): the process must still exit on its own.`,
      );
      const childSource = readFileSync(join(dir, 'child.mjs'), 'utf8').replace('./dedup.mjs', pathToFileURL(join(dir, 'dedup.mjs')).href);
      const outputs = [
        execFileSync(process.execPath, [join(dir, 'child.mjs')], { encoding: 'utf8', timeout: 20_000 }),
        // Workers inherit --input-type=module, which turns their eval'd source into ESM.
        execFileSync(process.execPath, ['--input-type=module', '-e', childSource], { encoding: 'utf8', timeout: 20_000, cwd: dir }),
      ];
      for (const out of outputs) {
        const reply = JSON.parse(out.trim()) as { codec: number; byteLength: number; fingerprintBytes: number };
        expect(reply).toMatchObject({ codec: CODEC_ZSTD, fingerprintBytes: 32 });
        expect(reply.byteLength).toBeLessThan(30 * 2000);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
