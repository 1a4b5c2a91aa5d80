import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RawFileBlockDevice } from '../../src/adapters/node.js';
import { WriteBehindBuffer } from '../../src/adapters/internal/write-behind-buffer.js';
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
