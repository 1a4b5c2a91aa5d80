import { describe, expect, it } from 'vitest';
import { MemoryBlockDevice } from '../../src/adapters/index.js';
import { FaultyBlockDevice } from '../../src/testing/index.js';
import { isDrkitError } from '../../src/core/errors.js';

const DEVICE_BYTES = 64 * 1024;
const SEEDS = Array.from({ length: 40 }, (_, i) => i + 1);

function fill(byteLength: number, value: number): Uint8Array {
  return new Uint8Array(byteLength).fill(value);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return isDrkitError(err) ? err.code : String(err);
  }
}

/** A durable base, then unflushed writes of distinct fill values; returns what was written. */
async function scenario(seed: number, options: Partial<ConstructorParameters<typeof FaultyBlockDevice>[1]> = {}) {
  const inner = await MemoryBlockDevice.create({ byteLength: DEVICE_BYTES });
  const dev = new FaultyBlockDevice(inner, { seed, ownsInner: false, ...options });
  await dev.write(0, fill(DEVICE_BYTES, 1));
  await dev.flush();
  const unflushed = [
    { byteOffset: 1000, data: fill(3000, 2) },
    { byteOffset: 8192, data: fill(4096, 3) },
    { byteOffset: 20000, data: fill(5000, 4) },
    { byteOffset: 40960, data: fill(8192, 5) },
  ];
  for (const w of unflushed) await dev.write(w.byteOffset, w.data);
  const outcome = await dev.crash();
  return { inner, dev, unflushed, outcome, image: await inner.read(0, DEVICE_BYTES) };
}

describe('FaultyBlockDevice crash model', () => {
  it('a crash changes only unflushed ranges, each kept whole, dropped, or torn at a 512 B boundary', async () => {
    for (const seed of SEEDS) {
      const { unflushed, outcome, image } = await scenario(seed);
      const covered = new Uint8Array(DEVICE_BYTES);
      let tornSeen = 0;
      for (const w of unflushed) {
        const got = image.subarray(w.byteOffset, w.byteOffset + w.data.byteLength);
        covered.fill(1, w.byteOffset, w.byteOffset + w.data.byteLength);
        const value = w.data[0] as number;
        const newBytes = got.findIndex((b) => b !== value);
        const prefix = newBytes === -1 ? got.byteLength : newBytes;
        // After the prefix of new bytes, everything must be the durable old value.
        expect(got.subarray(prefix).every((b) => b === 1), `seed ${seed}: bytes after prefix are old`).toBe(true);
        if (prefix !== 0 && prefix !== got.byteLength) {
          tornSeen++;
          expect((w.byteOffset + prefix) % 512, `seed ${seed}: tear at sector boundary`).toBe(0);
          expect(outcome.torn, `seed ${seed}`).toEqual({ byteOffset: w.byteOffset, byteLength: w.data.byteLength, appliedBytes: prefix });
        }
      }
      expect(tornSeen, `seed ${seed}`).toBeLessThanOrEqual(1);
      const changed = image.findIndex((b, i) => !covered[i] && b !== 1);
      expect(changed, `seed ${seed}: first durable byte changed`).toBe(-1);
      expect(outcome.unflushedWrites).toBe(4);
      expect(outcome.keptWrites + outcome.droppedWrites).toBe(4);
    }
  });

  it('keepProbability 0 drops everything; 1 without tearing keeps everything', async () => {
    const dropAll = await scenario(7, { keepProbability: 0 });
    expect(dropAll.image.every((b) => b === 1)).toBe(true);
    const keepAll = await scenario(7, { keepProbability: 1, tornWriteProbability: 0 });
    for (const w of keepAll.unflushed) {
      expect(keepAll.image.subarray(w.byteOffset, w.byteOffset + w.data.byteLength)).toEqual(w.data);
    }
  });

  it('tears the last kept write at a seeded 512 B boundary, never an atomic one', async () => {
    const prefixes = new Set<number>();
    for (const seed of SEEDS) {
      const { outcome, image } = await scenario(seed, { keepProbability: 1, tornWriteProbability: 1 });
      expect(outcome.torn?.byteOffset).toBe(40960);
      const applied = outcome.torn?.appliedBytes as number;
      expect(applied % 512).toBe(0);
      expect(applied > 0 && applied < 8192).toBe(true);
      expect(image.subarray(40960, 40960 + applied).every((b) => b === 5)).toBe(true);
      expect(image.subarray(40960 + applied, 40960 + 8192).every((b) => b === 1)).toBe(true);
      prefixes.add(applied);
    }
    expect(prefixes.size, 'seeds pick different tear points').toBeGreaterThan(3);
    // A write inside one sector cannot tear.
    const inner = await MemoryBlockDevice.create({ byteLength: 4096 });
    const dev = new FaultyBlockDevice(inner, { seed: 3, keepProbability: 1, tornWriteProbability: 1 });
    await dev.write(600, fill(400, 9));
    expect((await dev.crash()).torn).toBeUndefined();
    expect((await inner.read(600, 400)).every((b) => b === 9)).toBe(true);
  });

  it('the same seed reproduces the same crash image; different seeds differ', async () => {
    const images = new Set<string>();
    for (const seed of SEEDS.slice(0, 10)) {
      const a = await scenario(seed);
      const b = await scenario(seed);
      expect(b.outcome).toEqual(a.outcome);
      expect(Buffer.compare(b.image, a.image), `seed ${seed}`).toBe(0);
      images.add(Buffer.from(a.image).toString('base64'));
    }
    expect(images.size).toBeGreaterThan(3);
  });

  it('after a crash every call rejects with CRASHED; a new wrapper over the inner device works', async () => {
    const { inner, dev } = await scenario(11);
    expect(dev.crashed).toBe(true);
    expect(await codeOf(dev.read(0, 1))).toBe('CRASHED');
    expect(await codeOf(dev.write(0, fill(1, 0)))).toBe('CRASHED');
    expect(await codeOf(dev.flush())).toBe('CRASHED');
    await dev.close();
    const again = new FaultyBlockDevice(inner, { seed: 12 });
    expect(await again.read(0, 1)).toEqual(fill(1, 1));
    expect(dev.stats.crashes).toBe(1);
  });

  it('crashAfterWrites(n) fires during the nth write, which may or may not land', async () => {
    const inner = await MemoryBlockDevice.create({ byteLength: 4096 });
    const dev = new FaultyBlockDevice(inner, { seed: 5, keepProbability: 1, tornWriteProbability: 0 });
    dev.crashAfterWrites(3);
    await dev.write(0, fill(512, 1));
    await dev.flush();
    await dev.write(512, fill(512, 2));
    expect(await codeOf(dev.write(1024, fill(512, 3)))).toBe('CRASHED');
    expect(dev.crashed).toBe(true);
    // keepProbability 1: the crashing write is an unflushed candidate and was kept.
    expect(await inner.read(0, 1536)).toEqual(new Uint8Array([...fill(512, 1), ...fill(512, 2), ...fill(512, 3)]));
  });

  it('crashAtRandom(1) crashes the next write; crashAtRandom(0) never does', async () => {
    const dev = new FaultyBlockDevice(await MemoryBlockDevice.create({ byteLength: 4096 }), { seed: 5 });
    dev.crashAtRandom(0);
    for (let i = 0; i < 20; i++) await dev.write(i * 8, fill(8, i));
    dev.crashAtRandom(1);
    expect(await codeOf(dev.writev([{ byteOffset: 0, data: fill(8, 1) }]))).toBe('CRASHED');
  });
});

describe('FaultyBlockDevice bit flips and injected faults', () => {
  it('flipBits flips exactly the reported durable bits', async () => {
    const inner = await MemoryBlockDevice.create({ byteLength: 8192 });
    const dev = new FaultyBlockDevice(inner, { seed: 21, ownsInner: false });
    await dev.write(0, fill(8192, 0xa5));
    await dev.flush();
    const bits = await dev.flipBits({ count: 5, byteOffset: 1024, byteLength: 2048 });
    expect(bits).toHaveLength(5);
    const want = fill(8192, 0xa5);
    for (const bit of bits) {
      const byte = Math.floor(bit / 8);
      expect(byte >= 1024 && byte < 3072).toBe(true);
      want[byte] = (want[byte] as number) ^ (1 << bit % 8);
    }
    expect(await inner.read(0, 8192)).toEqual(want);
    expect(await dev.read(0, 8192)).toEqual(want);
    expect(dev.stats.bitsFlipped).toBe(5);
    const again = new FaultyBlockDevice(inner, { seed: 21 });
    expect(await again.flipBits({ count: 5, byteOffset: 1024, byteLength: 2048 })).toEqual(bits);
  });

  it('read flips change returned data by one bit and leave the device alone', async () => {
    const inner = await MemoryBlockDevice.create({ byteLength: 4096 });
    const dev = new FaultyBlockDevice(inner, { seed: 8, readBitFlipProbability: 1 });
    await dev.write(0, fill(4096, 0x3c));
    await dev.flush();
    for (let i = 0; i < 10; i++) {
      const got = await dev.read(0, 4096);
      let flippedBits = 0;
      for (const b of got) flippedBits += popcount(b ^ 0x3c);
      expect(flippedBits).toBe(1);
    }
    expect((await inner.read(0, 4096)).every((b) => b === 0x3c)).toBe(true);
    expect(dev.stats.readBitFlips).toBe(10);
  });

  it('injects transient INJECTED_FAULT on the nth call and by seeded probability, changing nothing', async () => {
    const inner = await MemoryBlockDevice.create({ byteLength: 4096 });
    const dev = new FaultyBlockDevice(inner, { seed: 9, faults: { write: { nthCall: 2 } } });
    await dev.write(0, fill(16, 1));
    let failure: unknown;
    await dev.write(16, fill(16, 2)).catch((err: unknown) => (failure = err));
    expect(isDrkitError(failure, 'INJECTED_FAULT') && failure.transient).toBe(true);
    expect(await dev.read(16, 16)).toEqual(fill(16, 0));
    await dev.write(16, fill(16, 2)); // the rule fired once
    dev.injectFault('flush', { nthCall: 1 });
    expect(await codeOf(dev.flush())).toBe('INJECTED_FAULT');
    expect((await inner.read(0, 32)).every((b) => b === 0), 'failed flush applied nothing').toBe(true);
    await dev.flush();
    dev.injectFault('read', { probability: 0.5 });
    const outcomes: string[] = [];
    for (let i = 0; i < 40; i++) outcomes.push(await codeOf(dev.read(0, 1)));
    const failed = outcomes.filter((c) => c === 'INJECTED_FAULT').length;
    expect(failed > 5 && failed < 35, `failed ${failed} of 40`).toBe(true);
    expect(dev.stats.faultsInjected).toBe(2 + failed);
    // Same seed, same calls: same fault pattern.
    const twin = new FaultyBlockDevice(await MemoryBlockDevice.create({ byteLength: 4096 }), { seed: 9, faults: { write: { nthCall: 2 } } });
    await twin.write(0, fill(16, 1));
    await twin.write(16, fill(16, 2)).catch(() => undefined);
    await twin.write(16, fill(16, 2));
    twin.injectFault('flush', { nthCall: 1 });
    await twin.flush().catch(() => undefined);
    await twin.flush();
    twin.injectFault('read', { probability: 0.5 });
    const twinOutcomes: string[] = [];
    for (let i = 0; i < 40; i++) twinOutcomes.push(await codeOf(twin.read(0, 1)));
    expect(twinOutcomes).toEqual(outcomes);
  });
});

function popcount(v: number): number {
  let n = 0;
  for (let x = v; x; x >>= 1) n += x & 1;
  return n;
}
