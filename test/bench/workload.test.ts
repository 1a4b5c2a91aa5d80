// Self-check of the issue 4 standard workload generator (bench/workload.mjs) on 8 MiB.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBlockDevice } from '../../src/adapters/index.js';
import { CODEC_LZ4, ExtentCodec } from '../../src/dedup/index.js';
import { bytesToKey, equalBytes } from '../../src/index.js';
import {
  KIND,
  MIX,
  REGION_BYTES,
  V2_BLOCK_BYTES,
  applyVersion2,
  kindCounts,
  regionPlan,
  version2Writes,
  writeStandardImage,
} from '../../bench/workload.mjs';

const BYTES = 8 * 1024 * 1024;
const SEED = 4;
let dir = '';
let image: Uint8Array;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'drkit-workload-'));
  await writeStandardImage(join(dir, 'a.img'), { byteLength: BYTES, seed: SEED });
  image = new Uint8Array(readFileSync(join(dir, 'a.img')));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const region = (bytes: Uint8Array, i: number) => bytes.subarray(i * REGION_BYTES, (i + 1) * REGION_BYTES);

describe('standard workload, version 1', () => {
  it('has the exact mix of region kinds, and the bytes match the kinds', () => {
    const plan = regionPlan({ byteLength: BYTES, seed: SEED });
    expect(image.byteLength).toBe(BYTES);
    expect(plan.regionCount).toBe(128);
    // Largest-remainder rounding of 128 x (40, 30, 20, 10)%: 51.2, 38.4, 25.6, 12.8.
    expect(plan.counts).toEqual([51, 38, 26, 13]);
    const tally = [0, 0, 0, 0];
    for (const k of plan.kinds) tally[k] = (tally[k] as number) + 1;
    expect(tally).toEqual(plan.counts);
    plan.counts.forEach((c, k) => expect(Math.abs(c - (plan.regionCount * (MIX[k] as number)) / 100)).toBeLessThan(1));
    // 1 GiB: 16,384 regions.
    expect(kindCounts(16_384)).toEqual([6554, 4915, 3277, 1638]);

    // Classify the written bytes and compare with the plan.
    const zero = new Uint8Array(REGION_BYTES);
    const firstSeen = new Map<string, number>();
    for (let i = 0; i < plan.regionCount; i++) {
      const bytes = region(image, i);
      const kind = plan.kinds[i];
      if (kind === KIND.zero) expect(equalBytes(bytes, zero), `region ${i}`).toBe(true);
      else expect(equalBytes(bytes, zero), `region ${i}`).toBe(false);
      if (kind === KIND.copy) {
        const source = plan.copyOf[i] as number;
        expect([KIND.random, KIND.text]).toContain(plan.kinds[source]);
        expect(equalBytes(bytes, region(image, source)), `copy ${i} of ${source}`).toBe(true);
      }
      if (kind === KIND.text) expect(bytes.every((b) => b === 0x0a || (b >= 0x20 && b < 0x7f)), `text region ${i}`).toBe(true);
      if (kind === KIND.random || kind === KIND.text) {
        // Data regions are pairwise distinct: only copies repeat one.
        const key = bytesToKey(bytes);
        expect(firstSeen.has(key), `region ${i} duplicates ${firstSeen.get(key)}`).toBe(false);
        firstSeen.set(key, i);
      }
    }
    expect(plan.copyOf.filter((c) => c >= 0).length).toBe(plan.counts[KIND.copy]);
  });

  it('is deterministic: the same seed gives the same bytes, another seed others', async () => {
    await writeStandardImage(join(dir, 'b.img'), { byteLength: BYTES, seed: SEED });
    await writeStandardImage(join(dir, 'c.img'), { byteLength: BYTES, seed: SEED + 1 });
    expect(equalBytes(new Uint8Array(readFileSync(join(dir, 'b.img'))), image)).toBe(true);
    expect(equalBytes(new Uint8Array(readFileSync(join(dir, 'c.img'))), image)).toBe(false);
  });

  it('text regions compress 2-3x with lz4, random regions not at all', async () => {
    const codec = await ExtentCodec.open({ compression: 'lz4' });
    const plan = regionPlan({ byteLength: BYTES, seed: SEED });
    // Both at the default volume block size (16 KiB) and at the region size (64 KiB).
    for (const pieceBytes of [16 * 1024, REGION_BYTES]) {
      let raw = 0;
      let compressed = 0;
      for (let i = 0; i < plan.regionCount; i++) {
        const bytes = region(image, i);
        for (let at = 0; at < REGION_BYTES; at += pieceBytes) {
          const enc = codec.compress(bytes.subarray(at, at + pieceBytes));
          if (plan.kinds[i] === KIND.random) expect(enc.codec, `random region ${i}`).not.toBe(CODEC_LZ4);
          if (plan.kinds[i] !== KIND.text) continue;
          expect(enc.codec).toBe(CODEC_LZ4);
          raw += pieceBytes;
          compressed += enc.bytes.byteLength;
        }
      }
      const ratio = raw / compressed;
      expect(ratio, `lz4 ratio on ${pieceBytes}-byte pieces`).toBeGreaterThanOrEqual(2);
      expect(ratio, `lz4 ratio on ${pieceBytes}-byte pieces`).toBeLessThanOrEqual(3);
    }
  });

  it('rejects a length that is not a multiple of the region size', () => {
    expect(() => regionPlan({ byteLength: REGION_BYTES + 1 })).toThrow(RangeError);
  });
});

describe('standard workload, version 2', () => {
  it('overwrites exactly 5% of the 4 KiB blocks, distinct and scattered, deterministically', async () => {
    const v2 = version2Writes({ byteLength: BYTES, seed: SEED });
    const blockCount = BYTES / V2_BLOCK_BYTES;
    expect(v2.blockCount).toBe(blockCount);
    expect(v2.blockIndices.length).toBe(Math.round(blockCount * 0.05)); // 102 of 2048
    expect(v2.changedBytes).toBe(v2.blockIndices.length * V2_BLOCK_BYTES);
    for (let i = 1; i < v2.blockIndices.length; i++) expect(v2.blockIndices[i] as number).toBeGreaterThan(v2.blockIndices[i - 1] as number);
    expect(v2.blockIndices[v2.blockIndices.length - 1] as number).toBeLessThan(blockCount);
    // Scattered: every eighth of the image gets some writes, none gets more than twice its share.
    const perEighth = new Array(8).fill(0) as number[];
    for (const b of v2.blockIndices) perEighth[Math.floor((b * 8) / blockCount)] = (perEighth[Math.floor((b * 8) / blockCount)] as number) + 1;
    for (const n of perEighth) {
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThan((2 * v2.blockIndices.length) / 8);
    }
    expect(version2Writes({ byteLength: BYTES, seed: SEED }).blockIndices).toEqual(v2.blockIndices);
    expect(version2Writes({ byteLength: BYTES, seed: SEED + 1 }).blockIndices).not.toEqual(v2.blockIndices);

    // Applied to a device holding version 1: exactly those blocks differ afterwards.
    const device = await MemoryBlockDevice.create({ byteLength: BYTES });
    await device.write(0, image);
    const applied = await applyVersion2(device, { seed: SEED });
    expect(applied).toEqual({ changedBytes: v2.changedBytes, blockCount: v2.blockIndices.length });
    const after = await device.read(0, BYTES);
    const changed = new Set(v2.blockIndices);
    let differing = 0;
    for (let b = 0; b < blockCount; b++) {
      const same = equalBytes(after.subarray(b * V2_BLOCK_BYTES, (b + 1) * V2_BLOCK_BYTES), image.subarray(b * V2_BLOCK_BYTES, (b + 1) * V2_BLOCK_BYTES));
      expect(same, `block ${b}`).toBe(!changed.has(b));
      if (!same) differing++;
    }
    expect(differing / blockCount).toBeCloseTo(0.05, 2);
    await device.close();
  });
});
