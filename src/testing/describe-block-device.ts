/**
 * Conformance suite for the BlockDevice contract (src/adapters/block-device.ts). Run it
 * against every device you ship or write:
 *
 * ```ts
 * import { describeBlockDevice } from 'drkit/testing';
 * describeBlockDevice({ name: 'MyDevice', create: ({ byteLength }) => MyDevice.open({ byteLength }) });
 * ```
 *
 * Offsets and lengths are multiples of the device's `alignmentBytes`; the suite checks
 * capability-dependent calls (discard, resize) against what the device declares.
 */
import { expectCode } from './internal/suite-assertions.js';
import { vitest } from './internal/vitest-api.js';
import fc from 'fast-check';
import type { BlockDevice } from '../adapters/block-device.js';
import { isDrkitError } from '../core/errors.js';
import { BytesModel, ioWorkloadArbitrary, runIoWorkload } from './io-workload.js';

/** Options of {@link describeBlockDevice}. */
export interface BlockDeviceSuiteOptions {
  /** Suite title. */
  name: string;
  /** Returns a fresh, open, zero-filled device of `byteLength` bytes. */
  create: (options: { byteLength: number }) => Promise<BlockDevice>;
  /**
   * Closes `device` and opens a new handle on the same storage, as after a restart.
   * When given, the suite checks that flushed data survives.
   */
  reopen?: (device: BlockDevice) => Promise<BlockDevice>;
  /** Runs once after the suite (e.g. removes temp files). */
  cleanup?: () => Promise<void>;
  /** Length of the devices the suite creates; a multiple of the device alignment. @defaultValue 65536 */
  byteLength?: number;
  /** Seed of the property tests. @defaultValue 0x5eed */
  seed?: number;
  /** Runs of each property test. @defaultValue 20 */
  numRuns?: number;
}

/** Fast byte comparison: vitest's deep equality is slow on large typed arrays. */
function expectBytes(got: Uint8Array | undefined, want: Uint8Array, what = 'bytes'): void {
  vitest().expect(got instanceof Uint8Array, `${what}: not a Uint8Array`).toBe(true);
  const g = got as Uint8Array;
  vitest().expect(g.byteLength, `${what}: length`).toBe(want.byteLength);
  let first = -1;
  for (let i = 0; i < want.byteLength; i++) {
    if (g[i] !== want[i]) {
      first = i;
      break;
    }
  }
  vitest().expect(first, `${what}: first differing byte (want ${want[first]}, got ${g[first]})`).toBe(-1);
}

function isZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.byteLength; i++) if (bytes[i] !== 0) return false;
  return true;
}

function pattern(byteLength: number, seed: number): Uint8Array {
  const out = new Uint8Array(byteLength);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < byteLength; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * Registers a vitest `describe` block that checks `create`'s devices against the
 * BlockDevice contract: zero fill, read/write round trips against a byte-array model,
 * overlapping writes, vectored calls, range, argument, closed and aborted errors,
 * discard, resize, flush, capabilities, and (with `reopen`) persistence of flushed data.
 */
export function describeBlockDevice(options: BlockDeviceSuiteOptions): void {
  const byteLength = options.byteLength ?? 65536;
  const seed = options.seed ?? 0x5eed;
  const numRuns = options.numRuns ?? 20;
  const open: BlockDevice[] = [];

  async function fresh(length = byteLength): Promise<BlockDevice> {
    const device = await options.create({ byteLength: length });
    open.push(device);
    return device;
  }

  vitest().describe(`BlockDevice conformance: ${options.name}`, () => {
    vitest().afterEach(async () => {
      for (const d of open.splice(0)) await d.close().catch(() => undefined);
    });
    vitest().afterAll(async () => {
      await options.cleanup?.();
    });

    vitest().it('declares frozen, well-formed capabilities and the asked length', async () => {
      const d = await fresh();
      const c = d.capabilities;
      vitest().expect(Object.isFrozen(c)).toBe(true);
      for (const flag of ['durableFlush', 'discard', 'resizable'] as const) vitest().expect(typeof c[flag]).toBe('boolean');
      for (const n of ['alignmentBytes', 'atomicWriteBytes', 'maxConcurrency'] as const) {
        vitest().expect(Number.isSafeInteger(c[n]) && c[n] > 0, `${n} = ${c[n]}`).toBe(true);
      }
      vitest().expect(byteLength % c.alignmentBytes).toBe(0);
      vitest().expect(d.byteLength).toBe(byteLength);
    });

    vitest().it('reads zeros from a fresh device', async () => {
      const d = await fresh();
      vitest().expect(isZero(await d.read(0, byteLength))).toBe(true);
    });

    vitest().it(`matches a byte-array model on random workloads (seed ${seed})`, async () => {
      const probe = await fresh();
      const { alignmentBytes, discard } = probe.capabilities;
      await fc.assert(
        fc.asyncProperty(ioWorkloadArbitrary({ byteLength, alignmentBytes, discard, maxOps: 30, maxIoBytes: 8192 }), async (ops) => {
          const d = await fresh();
          const mismatch = await runIoWorkload(d, ops, new BytesModel(byteLength));
          vitest().expect(mismatch).toBeUndefined();
          const model = new BytesModel(byteLength);
          for (const op of ops) model.apply(op);
          expectBytes(await d.read(0, byteLength), model.bytes);
          await d.close();
        }),
        { seed, numRuns },
      );
    });

    vitest().it('keeps the later bytes of partially overlapping writes', async () => {
      const d = await fresh();
      const a = d.capabilities.alignmentBytes;
      const first = pattern(8 * a, 1);
      const second = pattern(4 * a, 2);
      await d.write(2 * a, first);
      await d.write(6 * a, second); // overlaps the tail of `first` and runs past it
      const want = new Uint8Array(12 * a);
      want.set(first, 2 * a);
      want.set(second, 6 * a);
      expectBytes(await d.read(0, 12 * a), want);
      await d.write(a, pattern(2 * a, 3)); // overlaps the head
      want.set(pattern(2 * a, 3), a);
      expectBytes(await d.read(0, 12 * a), want);
    });

    vitest().it(`writev and readv equal the same sequential calls (seed ${seed})`, async () => {
      const probe = await fresh();
      const a = probe.capabilities.alignmentBytes;
      const units = byteLength / a;
      const extent = fc
        .integer({ min: 0, max: units - 1 })
        .chain((u) => fc.integer({ min: 1, max: Math.min(16, units - u) }).map((n) => ({ byteOffset: u * a, byteLength: n * a })));
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(extent, fc.integer({ min: 1, max: 1e6 })), { maxLength: 12 }), fc.array(extent, { maxLength: 12 }), async (writes, reads) => {
          const vectored = await fresh();
          const sequential = await fresh();
          const batch = writes.map(([e, s]) => ({ byteOffset: e.byteOffset, data: pattern(e.byteLength, s) }));
          await vectored.writev(batch);
          for (const w of batch) await sequential.write(w.byteOffset, w.data);
          const got = await vectored.readv(reads);
          vitest().expect(got.length).toBe(reads.length);
          for (let i = 0; i < reads.length; i++) {
            const r = reads[i] as { byteOffset: number; byteLength: number };
            expectBytes(got[i], await sequential.read(r.byteOffset, r.byteLength));
          }
          await vectored.close();
          await sequential.close();
        }),
        { seed: seed + 1, numRuns },
      );
    });

    vitest().it(`readv into the caller's buffers equals readv, and fills the views it returns (seed ${seed})`, async () => {
      const d = await fresh();
      const a = d.capabilities.alignmentBytes;
      const unit = Math.max(a, 512);
      const data = pattern(Math.min(byteLength, 8 * unit), seed);
      await d.write(0, data);
      await d.flush(); // read from the medium, not from a write-behind buffer
      // Adjacent reads and reads with gaps, out of order, into views of one shared buffer, as a bulk reader does.
      const reads = [0, 1, 5, 3].filter((u) => (u + 1) * unit <= data.byteLength).map((u) => ({ byteOffset: u * unit, byteLength: unit }));
      const shared = new Uint8Array(reads.length * unit).fill(0xa5);
      const got = await d.readv(reads.map((r, i) => ({ ...r, into: shared.subarray(i * unit, (i + 1) * unit) })));
      const plain = await d.readv(reads);
      for (let i = 0; i < reads.length; i++) {
        expectBytes(got[i], plain[i]!);
        const view = shared.subarray(i * unit, (i + 1) * unit);
        if (got[i] === view || (got[i]!.buffer === shared.buffer && got[i]!.byteOffset === view.byteOffset)) expectBytes(view, plain[i]!);
      }
      await vitest().expect(d.readv([{ byteOffset: 0, byteLength: unit, into: new Uint8Array(unit + 1) }])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await d.close();
    });

    vitest().it('rejects I/O past the end with OUT_OF_RANGE', async () => {
      const d = await fresh();
      const a = d.capabilities.alignmentBytes;
      await expectCode(d.read(byteLength, a), 'OUT_OF_RANGE', 'read at end');
      await expectCode(d.read(byteLength - a, 2 * a), 'OUT_OF_RANGE', 'read across end');
      await expectCode(d.write(byteLength, new Uint8Array(a)), 'OUT_OF_RANGE', 'write at end');
      await expectCode(d.write(byteLength - a, new Uint8Array(2 * a)), 'OUT_OF_RANGE', 'write across end');
      await expectCode(d.readv([{ byteOffset: 0, byteLength: a }, { byteOffset: byteLength, byteLength: a }]), 'OUT_OF_RANGE', 'readv');
      await expectCode(d.writev([{ byteOffset: byteLength, data: new Uint8Array(a) }]), 'OUT_OF_RANGE', 'writev');
      if (d.capabilities.discard) await expectCode(d.discard(byteLength - a, 2 * a), 'OUT_OF_RANGE', 'discard');
      // A rejected writev changes nothing.
      await expectCode(d.writev([{ byteOffset: 0, data: new Uint8Array(a).fill(9) }, { byteOffset: byteLength, data: new Uint8Array(a) }]), 'OUT_OF_RANGE');
      vitest().expect(isZero(await d.read(0, a))).toBe(true);
    });

    vitest().it('rejects malformed arguments with INVALID_ARGUMENT', async () => {
      const d = await fresh();
      const a = d.capabilities.alignmentBytes;
      await expectCode(d.read(-a, a), 'INVALID_ARGUMENT', 'negative offset');
      await expectCode(d.read(0, -a), 'INVALID_ARGUMENT', 'negative length');
      await expectCode(d.read(0.5, a), 'INVALID_ARGUMENT', 'fractional offset');
      await expectCode(d.read(0, Number.NaN), 'INVALID_ARGUMENT', 'NaN length');
      await expectCode(d.write(-a, new Uint8Array(a)), 'INVALID_ARGUMENT', 'negative write offset');
      await expectCode(d.write(1.5, new Uint8Array(a)), 'INVALID_ARGUMENT', 'fractional write offset');
      await expectCode(d.write(0, 'bytes' as unknown as Uint8Array), 'INVALID_ARGUMENT', 'non-bytes data');
      await expectCode(d.readv('nope' as unknown as []), 'INVALID_ARGUMENT', 'readv non-array');
      await expectCode(d.writev([{ byteOffset: -1, data: new Uint8Array(a) }]), 'INVALID_ARGUMENT', 'writev negative');
      if (d.capabilities.discard) await expectCode(d.discard(-a, a), 'INVALID_ARGUMENT', 'discard negative');
      if (d.capabilities.resizable) await expectCode(d.resize(-a), 'INVALID_ARGUMENT', 'resize negative');
      if (a > 1) {
        await expectCode(d.read(1, a), 'INVALID_ARGUMENT', 'misaligned offset');
        await expectCode(d.write(0, new Uint8Array(a + 1)), 'INVALID_ARGUMENT', 'misaligned length');
      }
    });

    vitest().it('rejects every call after close with NOT_OPEN, and close is idempotent', async () => {
      const d = await fresh();
      const a = d.capabilities.alignmentBytes;
      await d.close();
      await d.close();
      await expectCode(d.read(0, a), 'NOT_OPEN', 'read');
      await expectCode(d.readv([{ byteOffset: 0, byteLength: a }]), 'NOT_OPEN', 'readv');
      await expectCode(d.write(0, new Uint8Array(a)), 'NOT_OPEN', 'write');
      await expectCode(d.writev([{ byteOffset: 0, data: new Uint8Array(a) }]), 'NOT_OPEN', 'writev');
      await expectCode(d.discard(0, a), 'NOT_OPEN', 'discard');
      await expectCode(d.flush(), 'NOT_OPEN', 'flush');
      await expectCode(d.resize(byteLength), 'NOT_OPEN', 'resize');
      await Promise.all([d.close(), d.close()]);
    });

    vitest().it('rejects calls with an aborted signal with ABORTED', async () => {
      const d = await fresh();
      const a = d.capabilities.alignmentBytes;
      const ac = new AbortController();
      ac.abort();
      const signal = ac.signal;
      await expectCode(d.read(0, a, { signal }), 'ABORTED', 'read');
      await expectCode(d.readv([{ byteOffset: 0, byteLength: a }], { signal }), 'ABORTED', 'readv');
      await expectCode(d.write(0, new Uint8Array(a).fill(1), { signal }), 'ABORTED', 'write');
      await expectCode(d.writev([{ byteOffset: 0, data: new Uint8Array(a).fill(1) }], { signal }), 'ABORTED', 'writev');
      await expectCode(d.flush({ signal }), 'ABORTED', 'flush');
      if (d.capabilities.discard) await expectCode(d.discard(0, a, { signal }), 'ABORTED', 'discard');
      if (d.capabilities.resizable) await expectCode(d.resize(byteLength + a, { signal }), 'ABORTED', 'resize');
      vitest().expect(isZero(await d.read(0, a)), 'aborted writes must not land').toBe(true);
      vitest().expect(d.byteLength).toBe(byteLength);
    });

    vitest().it('discard zeroes the range, or fails with NOT_SUPPORTED when not declared', async () => {
      const d = await fresh();
      const a = d.capabilities.alignmentBytes;
      if (!d.capabilities.discard) {
        await expectCode(d.discard(0, a), 'NOT_SUPPORTED');
        return;
      }
      const data = pattern(8 * a, 4);
      await d.write(0, data);
      await d.discard(2 * a, 3 * a);
      const want = data.slice();
      want.fill(0, 2 * a, 5 * a);
      expectBytes(await d.read(0, 8 * a), want);
      await d.discard(0, byteLength);
      vitest().expect(isZero(await d.read(0, byteLength))).toBe(true);
    });

    vitest().it('resize grows with zeros and shrinks, or fails with NOT_SUPPORTED when not declared', async () => {
      const d = await fresh();
      const a = d.capabilities.alignmentBytes;
      if (!d.capabilities.resizable) {
        await expectCode(d.resize(byteLength + a), 'NOT_SUPPORTED');
        return;
      }
      const tail = pattern(2 * a, 5);
      await d.write(byteLength - 2 * a, tail);
      await d.resize(byteLength + 4 * a);
      vitest().expect(d.byteLength).toBe(byteLength + 4 * a);
      expectBytes(await d.read(byteLength - 2 * a, 2 * a), tail);
      vitest().expect(isZero(await d.read(byteLength, 4 * a))).toBe(true);
      await d.resize(byteLength - a);
      vitest().expect(d.byteLength).toBe(byteLength - a);
      await expectCode(d.read(byteLength - a, a), 'OUT_OF_RANGE', 'read past shrunk end');
      await d.resize(byteLength);
      expectBytes(await d.read(byteLength - 2 * a, a), tail.subarray(0, a));
      vitest().expect(isZero(await d.read(byteLength - a, a)), 'shrunk-away bytes must read as zero').toBe(true);
    });

    vitest().it('flush resolves, also with nothing to flush and when called concurrently', async () => {
      const d = await fresh();
      await d.flush();
      await d.write(0, pattern(d.capabilities.alignmentBytes * 4, 6));
      await Promise.all([d.flush(), d.flush()]);
      expectBytes(await d.read(0, d.capabilities.alignmentBytes * 4), pattern(d.capabilities.alignmentBytes * 4, 6));
    });

    if (options.reopen) {
      const reopen = options.reopen;
      vitest().it('keeps flushed data across close and reopen', async () => {
        const d = await fresh();
        const a = d.capabilities.alignmentBytes;
        const data = pattern(16 * a, 7);
        await d.write(3 * a, data);
        await d.write(byteLength - a, pattern(a, 8));
        await d.flush();
        const again = await reopen(d);
        open.push(again);
        vitest().expect(again.byteLength).toBe(byteLength);
        expectBytes(await again.read(3 * a, 16 * a), data);
        expectBytes(await again.read(byteLength - a, a), pattern(a, 8));
        vitest().expect(isZero(await again.read(0, 3 * a))).toBe(true);
      });
    }
  });
}
