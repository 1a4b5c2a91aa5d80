import { describe, expect, it } from 'vitest';
import { MemoryBlockDevice, guardBlockDevice, type BlockDevice } from '../../src/adapters/index.js';
import { isDrkitError } from '../../src/core/errors.js';

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  return undefined;
}

/** A user device built on memory whose methods we can sabotage one by one. */
async function userDevice(overrides: Partial<BlockDevice> = {}): Promise<BlockDevice & { closes: number; peak: number }> {
  const mem = await MemoryBlockDevice.create({ byteLength: 4096 });
  let active = 0;
  const dev = {
    closes: 0,
    peak: 0,
    get byteLength() {
      return mem.byteLength;
    },
    capabilities: { durableFlush: false, discard: true, resizable: true, alignmentBytes: 1, atomicWriteBytes: 512, maxConcurrency: 3 },
    async read(o: number, n: number) {
      active++;
      dev.peak = Math.max(dev.peak, active);
      await new Promise((r) => setTimeout(r, 2));
      active--;
      return mem.read(o, n);
    },
    readv: (r: Parameters<BlockDevice['readv']>[0]) => mem.readv(r),
    write: (o: number, d: Uint8Array) => mem.write(o, d),
    writev: (w: Parameters<BlockDevice['writev']>[0]) => mem.writev(w),
    discard: (o: number, n: number) => mem.discard(o, n),
    flush: () => mem.flush(),
    resize: (n: number) => mem.resize(n),
    async close() {
      dev.closes++;
      await mem.close();
    },
    ...overrides,
  };
  return dev;
}

describe('guardBlockDevice', () => {
  it('bounds concurrency to the smaller of the option and the capability', async () => {
    const inner = await userDevice();
    const d = guardBlockDevice(inner);
    await Promise.all(Array.from({ length: 12 }, (_, i) => d.read(i, 1)));
    expect(inner.peak).toBe(3);
    const inner2 = await userDevice();
    const d2 = guardBlockDevice(inner2, { maxConcurrency: 1 });
    await Promise.all(Array.from({ length: 6 }, (_, i) => d2.read(i, 1)));
    expect(inner2.peak).toBe(1);
  });

  it('rejects short reads with SHORT_IO', async () => {
    const d = guardBlockDevice(await userDevice({ read: async (_o: number, n: number) => new Uint8Array(Math.max(0, n - 1)) }));
    const err = await errorOf(d.read(0, 10));
    expect(isDrkitError(err, 'SHORT_IO')).toBe(true);
    const dv = guardBlockDevice(await userDevice({ readv: async () => [new Uint8Array(1)] }));
    expect(isDrkitError(await errorOf(dv.readv([{ byteOffset: 0, byteLength: 1 }, { byteOffset: 1, byteLength: 1 }])), 'SHORT_IO')).toBe(true);
  });

  it('maps foreign errors to IO_ERROR keeping the cause, including synchronous throws', async () => {
    const boom = new Error('controller reset');
    const d = guardBlockDevice(
      await userDevice({
        write: () => {
          throw boom;
        },
        flush: async () => Promise.reject(boom),
      }),
    );
    const err = await errorOf(d.write(0, new Uint8Array(1)));
    expect(isDrkitError(err, 'IO_ERROR') && err.cause === boom).toBe(true);
    expect(isDrkitError(await errorOf(d.flush()), 'IO_ERROR')).toBe(true);
  });

  it('closes the inner device once, and rejects malformed capabilities up front', async () => {
    const inner = await userDevice();
    const d = guardBlockDevice(inner);
    await Promise.all([d.close(), d.close()]);
    await d.close();
    expect(inner.closes).toBe(1);
    const bad = await userDevice();
    (bad as { capabilities: unknown }).capabilities = { ...bad.capabilities, maxConcurrency: 0 };
    expect(() => guardBlockDevice(bad)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('an abort removes a queued call', async () => {
    const d = guardBlockDevice(await userDevice(), { maxConcurrency: 1 });
    const ac = new AbortController();
    const first = d.read(0, 1);
    const queued = d.read(1, 1, { signal: ac.signal });
    ac.abort();
    expect(isDrkitError(await errorOf(queued), 'ABORTED')).toBe(true);
    await first;
  });
});
