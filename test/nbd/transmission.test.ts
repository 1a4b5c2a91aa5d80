// The transmission phase through the raw test client: bounds and refusals (each fails when
// its check is removed), pipelining against a trivially correct model, flush and FUA
// durability, and what close() and NBD_CMD_DISC promise.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BytesModel, ioWorkloadArbitrary, type IoOp } from '../../src/testing/index.js';
import { DISK_BYTES, perTestServer, startServer } from './nbd-fixtures.js';
import { CMD, CMD_FLAG, ERR, RawNbdClient, type Request } from './raw-nbd-client.js';

const MiB = 1024 * 1024;
const seed = process.env.DRKIT_SEED === undefined ? 20261202 : Number(process.env.DRKIT_SEED);

const h = perTestServer();

describe('NBD transmission: refusals', () => {
  it('a request without NBD_REQUEST_MAGIC closes the connection', async () => {
    const c = await h.open('disk');
    c.sendRequest({ type: CMD.read, cookie: 1n, byteLength: 512 }, 0x12560953);
    await c.closed;
    expect(h.errors.map((e) => e.code)).toEqual(['PROTOCOL_ERROR']);
  });

  it('a read over 32 MiB gets NBD_EINVAL and the connection goes on', async () => {
    await (await h.fx.tree.createVolume({ name: 'big', byteLength: 64 * MiB })).close(); // sparse: costs nothing
    const big = await h.open('big');
    expect((await big.request({ type: CMD.read, cookie: 1n, byteOffset: 0, byteLength: 32 * MiB + 1 })).error).toBe(ERR.inval);
    const c = await h.open('disk');
    const ok = await c.request({ type: CMD.read, cookie: 2n, byteOffset: 0, byteLength: 4096 });
    expect([ok.error, ok.cookie]).toEqual([ERR.ok, 2n]);
    expect(ok.data.equals(Buffer.from(h.fx.image.subarray(0, 4096)))).toBe(true);
  });

  it('a write declaring over 32 MiB of payload closes the connection', async () => {
    const c = await h.open('disk');
    c.sendRequest({ type: CMD.write, cookie: 1n, byteOffset: 0, byteLength: 32 * MiB + 1 });
    await c.closed;
    expect(h.errors.map((e) => e.code)).toEqual(['PROTOCOL_ERROR']);
  });

  it('reads and trims past the end get NBD_EINVAL, writes and zeroing NBD_ENOSPC', async () => {
    const c = await h.open('disk');
    const past = { byteOffset: DISK_BYTES - 512, byteLength: 1024 };
    expect((await c.request({ type: CMD.read, cookie: 1n, ...past })).error).toBe(ERR.inval);
    expect((await c.request({ type: CMD.read, cookie: 2n, byteOffset: 2n ** 63n, byteLength: 1 })).error).toBe(ERR.inval);
    expect((await c.request({ type: CMD.trim, cookie: 3n, ...past })).error).toBe(ERR.inval);
    expect((await c.request({ type: CMD.write, cookie: 4n, byteOffset: past.byteOffset, data: new Uint8Array(1024).fill(9) })).error).toBe(ERR.nospc);
    expect((await c.request({ type: CMD.writeZeroes, cookie: 5n, ...past })).error).toBe(ERR.nospc);
    expect(Buffer.from(await h.fx.disk.read(DISK_BYTES - 512, 512)).equals(Buffer.from(h.fx.image.subarray(DISK_BYTES - 512)))).toBe(true);
    // The last byte is in range.
    expect((await c.request({ type: CMD.read, cookie: 6n, byteOffset: DISK_BYTES - 1, byteLength: 1 })).error).toBe(ERR.ok);
  });

  it('writes, trims and zeroing of a snapshot get NBD_EPERM; the snapshot is unchanged', async () => {
    const c = await h.open('disk@s1');
    expect((await c.request({ type: CMD.write, cookie: 1n, byteOffset: 0, data: new Uint8Array(512).fill(1) })).error).toBe(ERR.perm);
    expect((await c.request({ type: CMD.trim, cookie: 2n, byteOffset: 0, byteLength: 4096 })).error).toBe(ERR.perm);
    expect((await c.request({ type: CMD.writeZeroes, cookie: 3n, byteOffset: 0, byteLength: 4096 })).error).toBe(ERR.perm);
    expect((await c.request({ type: CMD.flush, cookie: 4n })).error).toBe(ERR.ok);
    const r = await c.request({ type: CMD.read, cookie: 5n, byteOffset: 0, byteLength: 4096 });
    expect(r.data.equals(Buffer.from(h.fx.image.subarray(0, 4096)))).toBe(true);
  });

  it('a read-only server refuses writes to volumes with NBD_EPERM', async () => {
    const ro = await startServer(h.fx.tree, { readOnly: true });
    try {
      const c = await h.open('disk', ro.server);
      expect((await c.request({ type: CMD.write, cookie: 1n, byteOffset: 0, data: new Uint8Array(512) })).error).toBe(ERR.perm);
      expect(Buffer.from(await h.fx.disk.read(0, 512)).equals(Buffer.from(h.fx.image.subarray(0, 512)))).toBe(true);
    } finally {
      for (const c of h.clients) c.destroy();
      await ro.server.close();
    }
  });

  it('unknown commands and flags a command does not take get NBD_EINVAL', async () => {
    const c = await h.open('disk');
    expect((await c.request({ type: CMD.cache, cookie: 1n, byteOffset: 0, byteLength: 512 })).error).toBe(ERR.inval);
    expect((await c.request({ type: 77, cookie: 2n })).error).toBe(ERR.inval);
    expect((await c.request({ type: CMD.read, cookie: 3n, byteLength: 512, flags: CMD_FLAG.df })).error).toBe(ERR.inval);
    expect((await c.request({ type: CMD.write, cookie: 4n, data: new Uint8Array(512).fill(3), flags: CMD_FLAG.noHole })).error).toBe(ERR.inval);
    expect(Buffer.from(await h.fx.disk.read(0, 512)).equals(Buffer.from(h.fx.image.subarray(0, 512)))).toBe(true);
    expect((await c.request({ type: CMD.writeZeroes, cookie: 5n, byteLength: 512, flags: CMD_FLAG.noHole | CMD_FLAG.fua })).error).toBe(ERR.ok);
  });
});

describe('NBD transmission: data', () => {
  it('write, trim and write-zeroes read back through NBD and the volume', async () => {
    const c = await h.open('disk');
    const data = new Uint8Array(10_000).map((_, i) => (i * 7) & 0xff);
    expect((await c.request({ type: CMD.write, cookie: 1n, byteOffset: 1234, data })).error).toBe(ERR.ok);
    expect((await c.request({ type: CMD.trim, cookie: 2n, byteOffset: 100_000, byteLength: 20_000 })).error).toBe(ERR.ok);
    expect((await c.request({ type: CMD.writeZeroes, cookie: 3n, byteOffset: 200_001, byteLength: 5 })).error).toBe(ERR.ok);
    const model = new BytesModel(DISK_BYTES);
    model.bytes.set(h.fx.image);
    model.bytes.set(data, 1234);
    model.bytes.fill(0, 100_000, 120_000);
    model.bytes.fill(0, 200_001, 200_006);
    const all = await c.request({ type: CMD.read, cookie: 4n, byteOffset: 0, byteLength: DISK_BYTES });
    expect(all.data.equals(Buffer.from(model.bytes))).toBe(true);
    expect(Buffer.from(await h.fx.disk.read(0, DISK_BYTES)).equals(Buffer.from(model.bytes))).toBe(true);
    expect(h.server.stats()).toMatchObject({ bytesWritten: 10_000, bytesRead: DISK_BYTES, requests: 4, errors: 0 });
  });

  it('pipelined requests give the results of sequential execution (model-based)', async () => {
    await fc.assert(
      fc.asyncProperty(ioWorkloadArbitrary({ byteLength: 64 * 1024, maxIoBytes: 12_000, maxOps: 60 }), async (ops) => {
        const vol = await h.fx.tree.createVolume({ name: `pipe-${Math.random()}`, byteLength: 64 * 1024, blockBytes: 4096 });
        await vol.close();
        const c = await h.open(vol.id);
        const model = new BytesModel(64 * 1024);
        const expected = new Map<bigint, Buffer>();
        const lengths = new Map<bigint, number>();
        // Every request goes out before any reply is read: the server has them all in flight.
        ops.forEach((op: IoOp, i) => {
          const cookie = BigInt(i + 1);
          c.sendRequest(requestOf(op, cookie));
          if (op.kind === 'read') {
            expected.set(cookie, Buffer.from(model.bytes.subarray(op.byteOffset, op.byteOffset + op.byteLength)));
            lengths.set(cookie, op.byteLength);
          } else model.apply(op);
        });
        for (let i = 0; i < ops.length; i++) {
          const r = await c.readReply((cookie) => lengths.get(cookie) ?? 0);
          expect(r.error).toBe(ERR.ok);
          if (expected.has(r.cookie)) expect(r.data.equals(expected.get(r.cookie)!)).toBe(true);
        }
        const snap = await h.fx.tree.snapshot(vol.id, { name: 'after' });
        const reader = h.fx.tree.openSnapshot(snap.id);
        expect(Buffer.from(await reader.read(0, 64 * 1024)).equals(Buffer.from(model.bytes))).toBe(true);
        await reader.close();
        c.destroy();
      }),
      { seed, numRuns: 40, verbose: 1 },
    );
  });

  it('FLUSH and FUA writes make a durable commit before the reply', async () => {
    const c = await h.open('disk');
    expect((await c.request({ type: CMD.write, cookie: 1n, byteOffset: 0, data: new Uint8Array(512).fill(1) })).error).toBe(ERR.ok);
    const before = h.fx.durableCommits();
    expect((await c.request({ type: CMD.flush, cookie: 2n })).error).toBe(ERR.ok);
    expect(h.fx.durableCommits()).toBe(before + 1);
    expect((await c.request({ type: CMD.write, cookie: 3n, byteOffset: 0, data: new Uint8Array(512).fill(2), flags: CMD_FLAG.fua })).error).toBe(ERR.ok);
    expect(h.fx.durableCommits()).toBe(before + 2);
    expect((await c.request({ type: CMD.write, cookie: 4n, byteOffset: 0, data: new Uint8Array(512).fill(3) })).error).toBe(ERR.ok);
    expect(h.fx.durableCommits()).toBe(before + 2);
  });
});

describe('NBD transmission: ending', () => {
  it('NBD_CMD_DISC: replies to earlier requests go out, unflushed writes are committed, the server closes', async () => {
    const c = await h.open('disk');
    const before = h.fx.durableCommits();
    c.sendRequest({ type: CMD.write, cookie: 1n, byteOffset: 4096, data: new Uint8Array(8192).fill(0xab) });
    c.sendRequest({ type: CMD.read, cookie: 2n, byteOffset: 4096, byteLength: 16 });
    c.sendRequest({ type: CMD.disc, cookie: 3n });
    const replies = [await c.readReply((k) => (k === 2n ? 16 : 0)), await c.readReply((k) => (k === 2n ? 16 : 0))];
    expect(replies.map((r) => [r.cookie, r.error])).toEqual([[1n, 0], [2n, 0]]);
    expect(replies[1]!.data.every((b) => b === 0xab)).toBe(true);
    await c.closed;
    await expect.poll(() => h.server.stats().connectionsActive).toBe(0);
    expect(h.fx.durableCommits()).toBe(before + 1);
    expect(h.errors).toEqual([]);
  });

  it('a client that hangs up without flushing still has its acknowledged writes committed', async () => {
    const c = await h.open('disk');
    const before = h.fx.durableCommits();
    expect((await c.request({ type: CMD.write, cookie: 1n, byteOffset: 8192, data: new Uint8Array(4096).fill(0x77) })).error).toBe(ERR.ok);
    c.destroy();
    await expect.poll(() => h.server.stats().connectionsActive).toBe(0);
    expect(h.fx.durableCommits()).toBe(before + 1);
    expect(h.errors).toEqual([]);
  });

  it('close() lets requests in flight finish, flushes what was written, closes connections and releases exports', async () => {
    const c = await h.open('disk');
    const before = h.fx.durableCommits();
    const data = new Uint8Array(256 * 1024).fill(0x5a);
    c.sendRequest({ type: CMD.write, cookie: 1n, byteOffset: 0, data });
    // Wait until the server has the request, then close at once.
    await expect.poll(() => h.server.stats().requests).toBe(1);
    await h.server.close();
    const r = await c.readReply();
    expect([r.cookie, r.error]).toEqual([1n, ERR.ok]);
    await c.closed;
    expect(h.fx.durableCommits()).toBe(before + 1);
    expect(Buffer.from(await h.fx.disk.read(0, data.length)).equals(Buffer.from(data))).toBe(true);
    expect(h.server.stats().connectionsActive).toBe(0);
    // Export handles are released: the snapshot it pinned (none here) and the volume can go.
    await h.fx.disk.close();
    await h.fx.tree.deleteVolume(h.fx.disk.id);
    await expect(RawNbdClient.connect(h.server.address)).rejects.toThrow();
  });

  it('close() delivers whole replies still queued for a slow reader', async () => {
    await (await h.fx.tree.createVolume({ name: 'big', byteLength: 64 * MiB })).close();
    const c = await h.open('big');
    c.socket.pause(); // the reply (32 MiB) cannot fit in the kernel's socket buffers
    c.sendRequest({ type: CMD.read, cookie: 9n, byteOffset: 0, byteLength: 32 * MiB });
    await expect.poll(() => h.server.stats().bytesRead).toBe(32 * MiB);
    const closed = h.server.close();
    c.socket.resume();
    const r = await c.readReply(() => 32 * MiB);
    expect([r.cookie, r.error, r.data.length]).toEqual([9n, ERR.ok, 32 * MiB]);
    await closed;
  });

  it('close() ends a connection whose client stopped reading, once the drain deadline passes', async () => {
    await (await h.fx.tree.createVolume({ name: 'big', byteLength: 64 * MiB })).close();
    const c = await h.open('big');
    c.socket.pause();
    // 64 MiB of replies: well past the 32 MiB the server queues before it stops reading requests
    // (the kernel holds a few MiB more).
    for (let i = 0; i < 64; i++) c.sendRequest({ type: CMD.read, cookie: BigInt(i), byteOffset: i * MiB, byteLength: MiB });
    await expect.poll(() => h.server.stats().bytesRead, { timeout: 10_000 }).toBeGreaterThan(32 * MiB);
    const t0 = Date.now();
    await h.server.close();
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(h.server.stats().connectionsActive).toBe(0);
  }, 40_000);

  it('a snapshot exported over NBD stays pinned until the connection ends', async () => {
    const c = await h.open('disk@s1');
    await expect(h.fx.tree.deleteSnapshot('snap-1')).rejects.toMatchObject({ code: 'BUSY' });
    c.sendRequest({ type: CMD.disc, cookie: 1n });
    await c.closed;
    await expect.poll(() => h.server.stats().connectionsActive).toBe(0);
    await h.fx.tree.deleteSnapshot('snap-1');
  });
});

function requestOf(op: IoOp, cookie: bigint): Request {
  switch (op.kind) {
    case 'write':
      return { type: CMD.write, cookie, byteOffset: op.byteOffset, data: op.data };
    case 'read':
      return { type: CMD.read, cookie, byteOffset: op.byteOffset, byteLength: op.byteLength };
    case 'discard':
      return { type: CMD.trim, cookie, byteOffset: op.byteOffset, byteLength: op.byteLength };
    case 'flush':
      return { type: CMD.flush, cookie };
  }
}


