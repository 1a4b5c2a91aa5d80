import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RawFileBlockDevice } from '../../src/adapters/node.js';
import { WriteBehindBuffer } from '../../src/adapters/internal/write-behind-buffer.js';
import { AlignedArena } from '../../src/adapters/internal/aligned-arena.js';
import { probeReadableLength } from '../../src/adapters/internal/fd-io.js';
import { isDrkitError } from '../../src/core/errors.js';

const dir = fs.mkdtempSync(join(tmpdir(), 'drkit-raw-'));
let n = 0;
const nextPath = (): string => join(dir, `f-${n++}`);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return isDrkitError(err) ? err.code : String(err);
  }
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

describe('RawFileBlockDevice', () => {
  it('creates a sparse file: 64 GiB costs no blocks until written', async () => {
    const path = nextPath();
    const dev = await RawFileBlockDevice.open({ path, create: { byteLength: 64 * 2 ** 30 } });
    expect(dev.byteLength).toBe(64 * 2 ** 30);
    await dev.write(64 * 2 ** 30 - 4096, pattern(4096, 1));
    await dev.flush();
    const st = fs.statSync(path);
    expect(st.size).toBe(64 * 2 ** 30);
    expect(st.blocks * 512).toBeLessThan(1024 * 1024);
    expect(await dev.read(64 * 2 ** 30 - 4096, 4096)).toEqual(pattern(4096, 1));
    await dev.close();
  });

  it('create on an existing path fails with ALREADY_EXISTS unless overwrite', async () => {
    const path = nextPath();
    await (await RawFileBlockDevice.open({ path, create: { byteLength: 4096 } })).close();
    expect(await codeOf(RawFileBlockDevice.open({ path, create: { byteLength: 4096 } }))).toBe('ALREADY_EXISTS');
    const dev = await RawFileBlockDevice.open({ path, create: { byteLength: 8192, overwrite: true } });
    expect(dev.byteLength).toBe(8192);
    await dev.close();
    expect(await codeOf(RawFileBlockDevice.open({ path: join(dir, 'missing') }))).toBe('NOT_FOUND');
    expect(await codeOf(RawFileBlockDevice.open({ path: dir }))).not.toBe('resolved');
  });

  it('create: true opens an existing file as it is or creates an empty one (open-or-create)', async () => {
    const path = nextPath();
    const fresh = await RawFileBlockDevice.open({ path, create: true });
    expect(fresh.byteLength).toBe(0);
    await fresh.resize(8192);
    await fresh.write(4096, new Uint8Array(16).fill(9));
    await fresh.flush();
    await fresh.close();
    const again = await RawFileBlockDevice.open({ path, create: true });
    expect(again.byteLength).toBe(8192);
    expect(await again.read(4096, 16)).toEqual(new Uint8Array(16).fill(9));
    await again.close();
    const sized = await RawFileBlockDevice.open({ path, create: { byteLength: 4096, openExisting: true } });
    expect(sized.byteLength).toBe(8192); // byteLength applies to a new file only
    await sized.close();
    const other = nextPath();
    const made = await RawFileBlockDevice.open({ path: other, create: { byteLength: 4096, openExisting: true } });
    expect(made.byteLength).toBe(4096);
    await made.close();
    expect(await codeOf(RawFileBlockDevice.open({ path, create: { overwrite: true, openExisting: true } }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(RawFileBlockDevice.open({ path, create: true, readOnly: true }))).toBe('INVALID_ARGUMENT');
  });

  it('reopen after flush keeps data written in many merged small writes', async () => {
    const path = nextPath();
    const dev = await RawFileBlockDevice.open({ path, create: { byteLength: 4 * 2 ** 20 } });
    const data = pattern(3 * 2 ** 20 + 777, 2);
    for (let off = 0; off < data.byteLength; off += 4099) {
      await dev.write(off + 5, data.subarray(off, Math.min(off + 4099, data.byteLength)));
    }
    await dev.flush();
    await dev.close();
    const again = await RawFileBlockDevice.open({ path, readOnly: true });
    expect(again.byteLength).toBe(4 * 2 ** 20);
    expect(Buffer.compare(await again.read(5, data.byteLength), data)).toBe(0);
    expect(await codeOf(again.write(0, new Uint8Array(1)))).toBe('NOT_SUPPORTED');
    expect(again.capabilities.discard || again.capabilities.resizable).toBe(false);
    await again.close();
  });

  it('reads see pending writes (read-your-writes before any flush, concurrent callers)', async () => {
    const dev = await RawFileBlockDevice.open({ path: nextPath(), create: { byteLength: 2 ** 20 } });
    const model = new Uint8Array(2 ** 20);
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      const off = (i * 7919) % (2 ** 20 - 9000);
      const data = pattern(1 + ((i * 131) % 9000), i + 1);
      model.set(data, off);
      calls.push(dev.write(off, data)); // not awaited: issued back to back, applied in call order
    }
    await Promise.all(calls);
    expect(Buffer.compare(await dev.read(0, 2 ** 20), model)).toBe(0);
    const parts = await dev.readv([{ byteOffset: 0, byteLength: 1000 }, { byteOffset: 1000, byteLength: 5000 }, { byteOffset: 900000, byteLength: 10 }]);
    expect(Buffer.compare(Buffer.concat(parts.slice(0, 2)), model.subarray(0, 6000))).toBe(0);
    expect(Buffer.compare(parts[2] as Uint8Array, model.subarray(900000, 900010))).toBe(0);
    await dev.close();
  });

  it('fails with SHORT_IO when the file is truncated under it', async () => {
    const path = nextPath();
    const dev = await RawFileBlockDevice.open({ path, create: { byteLength: 65536 } });
    await dev.write(0, pattern(65536, 3));
    await dev.flush();
    fs.truncateSync(path, 10000);
    expect(await codeOf(dev.read(8192, 4096))).toBe('SHORT_IO');
    expect(await dev.read(0, 4096)).toEqual(pattern(4096, 3));
    await dev.close();
  });

  it('probes the length of what a descriptor reads, for block special files', async () => {
    for (const byteLength of [0, 1, 2, 3, 4095, 12345, 1 << 20]) {
      const path = nextPath();
      fs.writeFileSync(path, new Uint8Array(byteLength));
      const fd = fs.openSync(path, 'r');
      try {
        expect(await probeReadableLength(fd)).toBe(byteLength);
      } finally {
        fs.closeSync(fd);
      }
    }
  });
});

describe('RawFileBlockDevice.readv', () => {
  it('reads requests with small gaps as one span, overlays pending writes, never shares bytes between overlapping requests', async () => {
    const byteLength = 4 * 1024 * 1024;
    const dev = await RawFileBlockDevice.open({ path: nextPath(), create: { byteLength } });
    const model = pattern(byteLength, 5);
    await dev.write(0, model);
    await dev.flush();
    const late = pattern(1000, 6); // pending in the write-behind buffer while we read
    model.set(late, 20_000);
    await dev.write(20_000, late);
    // Extents of 9 KiB in 12 KiB units (a store's padding), one far away, one overlapping the first.
    const reads = [0, 12288, 24576, 36864].map((byteOffset) => ({ byteOffset, byteLength: 9216 }));
    reads.push({ byteOffset: 3 * 1024 * 1024, byteLength: 5000 }, { byteOffset: 100, byteLength: 200 }, { byteOffset: 50_000, byteLength: 0 });
    const got = await dev.readv(reads);
    reads.forEach((r, i) => expect(Buffer.compare(got[i]!, model.subarray(r.byteOffset, r.byteOffset + r.byteLength)), `read ${i}`).toBe(0));
    expect(new Set(got.slice(0, 4).map((g) => g.buffer)).size).toBe(1); // one span
    expect(got[4]!.buffer).not.toBe(got[0]!.buffer); // 3 MiB away: its own read
    expect(got[5]!.buffer).not.toBe(got[0]!.buffer); // overlaps: its own bytes
    // Out of offset order (an extent store's batch after an incremental): still one span, results in request order.
    const shuffled = [36864, 0, 24576, 12288].map((byteOffset) => ({ byteOffset, byteLength: 9216 }));
    const again = await dev.readv(shuffled);
    shuffled.forEach((r, i) => expect(Buffer.compare(again[i]!, model.subarray(r.byteOffset, r.byteOffset + r.byteLength)), `shuffled read ${i}`).toBe(0));
    expect(new Set(again.map((g) => g.buffer)).size).toBe(1);
    await dev.close();
  });
});

describe('RawFileBlockDevice (direct)', () => {
  it('declares direct I/O and writes whole 4 KiB units through O_DIRECT, the rest buffered, one file either way', async () => {
    const path = nextPath();
    const byteLength = 3 * 1024 * 1024 + 4096 + 100; // a partial trailing unit
    const dev = await RawFileBlockDevice.open({ path, create: { byteLength }, direct: true });
    expect(dev.capabilities.directIo).toBe(true);
    expect(dev.capabilities.directIoAlignmentBytes).toBe(4096);
    expect(dev.capabilities.alignmentBytes).toBe(1);
    const model = new Uint8Array(byteLength);
    const put = async (byteOffset: number, data: Uint8Array): Promise<void> => {
      model.set(data, byteOffset);
      await dev.write(byteOffset, data);
    };
    // A streamed image: 16 KiB blocks in order.
    for (let b = 0; b < 192; b++) await put(b * 16384, pattern(16384, b + 1));
    await dev.flush();
    const streamed = dev.writtenBytes;
    expect(streamed.directBytes).toBe(192 * 16384);
    expect(streamed.bufferedBytes).toBe(0);
    // The partial tail, an unaligned write over direct-written data, an aligned one over that.
    await put(byteLength - 4196, pattern(4196, 7));
    await put(5000, pattern(3000, 8));
    await put(4096, pattern(8192, 9));
    await dev.flush();
    expect(dev.writtenBytes.bufferedBytes).toBeGreaterThanOrEqual(4196);
    expect(dev.writtenBytes.directBytes).toBeGreaterThan(streamed.directBytes);
    expect(Buffer.compare(await dev.read(0, byteLength), model)).toBe(0);
    await dev.close();
    // What the file holds, read by another descriptor after close.
    expect(Buffer.compare(fs.readFileSync(path), model)).toBe(0);
  });

  it('a buffered device declares no direct I/O and writes nothing through O_DIRECT', async () => {
    const dev = await RawFileBlockDevice.open({ path: nextPath(), create: { byteLength: 65536 } });
    expect(dev.capabilities.directIo).toBe(false);
    expect(dev.capabilities.directIoAlignmentBytes).toBe(1);
    await dev.write(0, pattern(65536, 3));
    await dev.flush();
    expect(dev.writtenBytes).toEqual({ directBytes: 0, bufferedBytes: 65536 });
    await dev.close();
  });

  it('refuses bad options with coded errors', async () => {
    expect(await codeOf(RawFileBlockDevice.open({ path: nextPath(), create: { byteLength: 4096 }, direct: 'yes' as unknown as boolean }))).toBe('INVALID_ARGUMENT');
    const path = nextPath();
    fs.writeFileSync(path, new Uint8Array(4096));
    expect(await codeOf(RawFileBlockDevice.open({ path, readOnly: true, direct: true }))).toBe('INVALID_ARGUMENT');
  });
});

describe('WriteBehindBuffer', () => {
  const limits = { maxPendingBytes: 64 * 1024, maxInFlight: 4, runMaxBytes: 16 * 1024 };

  it('merges adjacent writes into few sink calls and respects the run bound', async () => {
    const calls: number[] = [];
    const wb = new WriteBehindBuffer(async (chunks) => {
      calls.push(chunks.reduce((s, c) => s + c.byteLength, 0));
    }, limits);
    for (let i = 0; i < 64; i++) await wb.write(i * 1024, new Uint8Array(1024).fill(i));
    await wb.drain();
    expect(calls.reduce((a, b) => a + b, 0)).toBe(64 * 1024);
    expect(calls.length).toBeLessThanOrEqual(8);
    expect(Math.max(...calls)).toBeLessThanOrEqual(16 * 1024);
    expect(wb.pendingBytes).toBe(0);
  });

  it('keeps overlapping writes in order even with out-of-order sink completion (seeded)', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      let x = seed;
      const rnd = (): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
      const disk = new Uint8Array(8192);
      const model = new Uint8Array(8192);
      const wb = new WriteBehindBuffer(async (chunks, off) => {
        await new Promise((r) => setTimeout(r, Math.floor(rnd() * 3)));
        let pos = off;
        for (const c of chunks) {
          disk.set(c, pos);
          pos += c.byteLength;
        }
      }, { maxPendingBytes: 4096, maxInFlight: 4, runMaxBytes: 1024 });
      for (let i = 0; i < 300; i++) {
        const off = Math.floor(rnd() * 7000);
        const data = new Uint8Array(1 + Math.floor(rnd() * 1000)).fill(i & 0xff);
        model.set(data, off);
        await wb.write(off, data);
        if (i % 37 === 0) {
          const probe = disk.slice(0, 8192);
          WriteBehindBuffer.overlay(wb.overlapping(0, 8192), 0, probe);
          expect(Buffer.compare(probe, model), `seed ${seed} read-your-writes at op ${i}`).toBe(0);
        }
      }
      await wb.drain();
      expect(Buffer.compare(disk, model), `seed ${seed}`).toBe(0);
    }
  });

  /** A buffer over an in-memory disk whose sink records its calls and can be held; `put` also updates the model. */
  function arenaBuffer(arena: AlignedArena, maxInFlight: number) {
    const disk = new Uint8Array(256 * 1024);
    const model = new Uint8Array(256 * 1024);
    const calls: { byteOffset: number; aligned: boolean; chunks: Uint8Array[] }[] = [];
    const gate = { held: Promise.resolve(), release: () => undefined as void };
    const wb = new WriteBehindBuffer(async (chunks, byteOffset, aligned) => {
      calls.push({ byteOffset, aligned, chunks: [...chunks] });
      await gate.held;
      let pos = byteOffset;
      for (const c of chunks) {
        disk.set(c, pos);
        pos += c.byteLength;
      }
    }, { maxPendingBytes: 256 * 1024, maxInFlight, runMaxBytes: 16 * 1024, arena });
    return {
      wb,
      disk,
      model,
      calls,
      hold: () => void (gate.held = new Promise<void>((r) => (gate.release = r))),
      release: () => gate.release(),
      put: async (byteOffset: number, data: Uint8Array): Promise<void> => {
        model.set(data, byteOffset);
        await wb.write(byteOffset, data);
      },
    };
  }

  it('with an arena: marks aligned runs, aligns new chunks in memory, stages on the heap when the arena is full', async () => {
    const arena = new AlignedArena(16 * 1024, 2);
    const { wb, disk, model, calls, hold, release, put } = arenaBuffer(arena, 8);
    await put(0, pattern(8192, 1)); // aligned offset and length
    await put(8192, pattern(8192, 2)); // widens the run: one aligned 16 KiB chunk
    await wb.drain();
    expect(calls.map((c) => [c.byteOffset, c.aligned, c.chunks.length])).toEqual([[0, true, 1]]);
    await put(20000, pattern(100, 3)); // unaligned: buffered
    await put(32768, pattern(4096, 4)); // a new chunk: starts aligned in the slab despite the 100 bytes before it
    await wb.drain();
    expect(calls.slice(1).map((c) => [c.byteOffset, c.aligned])).toEqual([[20000, false], [32768, true]]);
    expect(arena.holdsAligned(calls[2]!.chunks[0]!)).toBe(true);
    // Hold the sink: five slabs' worth in flight, the arena has two, the rest stage on the heap.
    hold();
    calls.length = 0;
    for (let i = 0; i < 5; i++) await put(65536 + i * 16384, pattern(16384, 10 + i));
    await new Promise((r) => setImmediate(r));
    release();
    await wb.drain();
    expect(calls.filter((c) => c.aligned).length).toBe(2);
    expect(calls.filter((c) => !c.aligned).length).toBe(3);
    expect(Buffer.compare(disk, model)).toBe(0);
    // Arena slabs came back: the next aligned stream stages in the arena again.
    calls.length = 0;
    await put(196608, pattern(16384, 20));
    await wb.drain();
    expect(calls.map((c) => c.aligned)).toEqual([true]);
  });

  it('with an arena: a run that continues into the next slab (adjacent in the same memory) keeps that slab from reuse', async () => {
    const { wb, disk, model, hold, release, put } = arenaBuffer(new AlignedArena(16 * 1024, 4), 1);
    hold();
    await put(0, pattern(8192, 1)); // first slab [0, 8K)
    await put(65536, pattern(8192, 2)); // first slab [8K, 16K): a second run
    await put(65536 + 8192, pattern(4096, 3)); // continues that run, staged at the start of the second slab
    await put(131072, pattern(16384, 4)); // a third slab: the second is retired
    await put(163840, pattern(16384, 5)); // a slab from the arena: must not be the second
    await put(196608, pattern(16384, 6));
    release();
    await wb.drain();
    expect(Buffer.compare(disk, model)).toBe(0);
  });

  it('poisons itself on a failed background write: later writes and drains reject', async () => {
    let fail = false;
    const wb = new WriteBehindBuffer(async () => {
      if (fail) throw Object.assign(new Error('disk on fire'), { code: 'EIO' });
    }, limits);
    await wb.write(0, new Uint8Array(10));
    await wb.drain();
    fail = true;
    await wb.write(100, new Uint8Array(10)); // accepted: the failure is not known yet
    const drained = await wb.drain().then(() => 'resolved', (err: unknown) => err);
    expect(isDrkitError(drained, 'IO_ERROR') && !drained.transient).toBe(true);
    expect(await codeOf(wb.write(0, new Uint8Array(1)))).toBe('IO_ERROR');
    expect(await codeOf(wb.drain())).toBe('IO_ERROR');
  });
});
