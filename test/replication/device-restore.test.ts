// Site.restoreToDevice (issue #13): a snapshot of a remote site restored straight into a
// BlockDevice — in order, verified, resumable, with progress and cancellation.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryBlockDevice, MemoryTransport, type BlockDevice } from '../../src/adapters/index.js';
import { RawFileBlockDevice } from '../../src/adapters/node.js';
import { memoryRestoreCheckpoints, type RestoreProgress } from '../../src/replication/index.js';
import type { SnapshotTree } from '../../src/snapshot/index.js';
import { equalBytes } from '../../src/core/bytes.js';
import { errorOf, memorySite, snapshotBytes } from './site-helpers.js';

const PSK = new Uint8Array(32).fill(7);
const BLOCK = 16 * 1024;
/** 1400 blocks: over five sender batches (256 blocks), so duplicates in the last one follow blocks already written (the pipeline holds 4). */
const BLOCKS = 1400;

function xorshiftBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A volume mixing random, text-like, zero (never written) and duplicated blocks; snapshotted. */
async function mixedSnapshot(tree: SnapshotTree): Promise<string> {
  const vol = await tree.createVolume({ name: 'disk', byteLength: BLOCKS * BLOCK, blockBytes: BLOCK });
  const text = new TextEncoder().encode('restore the volume from the remote site, block by block; '.repeat(300)).subarray(0, BLOCK);
  for (let b = 0; b < BLOCKS; b++) {
    const kind = b % 5;
    if (kind === 0) await vol.write(b * BLOCK, xorshiftBytes(BLOCK, b + 1));
    else if (kind === 1) await vol.write(b * BLOCK, text.map((c, i) => (i === 0 ? b & 0xff : c)));
    else if (kind === 2 && b > 1300) await vol.write(b * BLOCK, xorshiftBytes(BLOCK, (b % 40) - 2 + 1)); // a copy of random block (b % 40) - 2
    // kind 3, 4: never written (zeros)
  }
  await vol.flush();
  const s = await tree.snapshot(vol.id, { name: 'v1' });
  await vol.close();
  return s.id;
}

async function garbageDevice(): Promise<MemoryBlockDevice> {
  const d = await MemoryBlockDevice.create({ byteLength: BLOCKS * BLOCK });
  await d.write(0, new Uint8Array(BLOCKS * BLOCK).fill(0xa5));
  return d;
}

async function setup() {
  const net = MemoryTransport.create();
  const a = await memorySite('A', net, PSK);
  const b = await memorySite('B', net, PSK);
  const snapshotId = await mixedSnapshot(a.tree);
  return { a, b, snapshotId, expected: await snapshotBytes(a.tree, snapshotId) };
}

describe('Site.restoreToDevice', () => {
  it('writes the snapshot into the device over garbage, verified, with progress in phases and the device flushed', async () => {
    const { a, b, snapshotId, expected } = await setup();
    const device = await garbageDevice();
    let flushes = 0;
    const flush = device.flush.bind(device);
    device.flush = async (o) => {
      flushes++;
      return flush(o);
    };
    const seen: RestoreProgress[] = [];
    const result = await b.site.restoreToDevice(a.remote, snapshotId, device, { onProgress: (p) => seen.push(p) });
    expect(equalBytes(await device.read(0, BLOCKS * BLOCK), expected)).toBe(true);
    expect(flushes).toBeGreaterThan(0);
    expect(result.originSnapshotId).toBe(snapshotId);
    expect(seen[0]!.phase).toBe('connect');
    expect(seen.at(-1)).toMatchObject({ phase: 'done', logicalBytes: BLOCKS * BLOCK, totalBytes: BLOCKS * BLOCK, resumedFromBytes: 0 });
    const done = seen.at(-1)!;
    // Zeros are not sent, duplicates not twice, text compressed; frames are counted on top of extents.
    expect(done.extentBytes).toBeLessThan(0.7 * BLOCKS * BLOCK);
    expect(done.wireBytes).toBeGreaterThan(0);
    expect(done.wireBytes).toBeLessThan(done.extentBytes);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.logicalBytes).toBeGreaterThanOrEqual(seen[i - 1]!.logicalBytes);
    // The site itself gained nothing: no extent store, no snapshot in between.
    expect(b.site.listSnapshots()).toEqual([]);
    await a.site.close();
    await b.site.close();
  });

  it('resumes after a cancellation: what was written and checkpointed is not fetched again', async () => {
    const { a, b, snapshotId, expected } = await setup();
    const device = await garbageDevice();
    const checkpoints = memoryRestoreCheckpoints();
    const controller = new AbortController();
    const first = b.site.restoreToDevice(a.remote, snapshotId, device, {
      checkpoints,
      checkpointBytes: 2 * BLOCK,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'transfer' && p.logicalBytes >= 256 * BLOCK) controller.abort();
      },
    });
    const slowBlocks = device.writev.bind(device);
    device.writev = async (w, o) => {
      await new Promise((r) => setTimeout(r, 5)); // leave the abort time to land mid-transfer
      return slowBlocks(w, o);
    };
    expect((await errorOf(first)).code).toBe('ABORTED');
    const saved = await checkpoints.load();
    expect(saved!.cursorBlock).toBeGreaterThan(0);
    expect(saved!.cursorBlock).toBeLessThan(BLOCKS);
    device.writev = slowBlocks;
    const fullRun = await b.site.restoreToDevice(a.remote, snapshotId, await garbageDevice());
    const second = await b.site.restoreToDevice(a.remote, snapshotId, device, { checkpoints });
    expect(second.progress.resumedFromBytes).toBe(saved!.cursorBlock * BLOCK);
    expect(second.progress.extentBytes).toBeLessThan(fullRun.progress.extentBytes);
    expect(equalBytes(await device.read(0, BLOCKS * BLOCK), expected)).toBe(true);
    expect(await checkpoints.load()).toBeUndefined();
    await a.site.close();
    await b.site.close();
  });

  it('checkpoints beside the transfer: writes go on during a flush, and a saved cursor never claims a block written after its flush began', async () => {
    const { a, b, snapshotId, expected } = await setup();
    const device = await garbageDevice();
    const written = new Set<number>();
    let writesDuringFlush = 0;
    let flushing = 0;
    /** Blocks written when the last completed flush began: what a checkpoint may claim. */
    let durable = new Set<number>();
    const writev = device.writev.bind(device);
    device.writev = async (w, o) => {
      await writev(w, o);
      if (flushing > 0) writesDuringFlush++;
      for (const x of w) for (let at = x.byteOffset; at < x.byteOffset + x.data.byteLength; at += BLOCK) written.add(at / BLOCK);
    };
    const flush = device.flush.bind(device);
    device.flush = async (o) => {
      const covered = new Set(written);
      flushing++;
      await new Promise((r) => setTimeout(r, 20)); // a slow disk
      await flush(o);
      flushing--;
      durable = covered;
    };
    const inner = memoryRestoreCheckpoints();
    const claims: number[] = [];
    const checkpoints = {
      ...inner,
      save: async (c: Parameters<typeof inner.save>[0]) => {
        for (let blk = 0; blk < c.cursorBlock; blk++) {
          // Blocks the snapshot does not map are skipped only with deviceZeroed; here every block below the cursor was written.
          if (!durable.has(blk)) throw new Error(`checkpoint claims block ${blk}, not flushed`);
        }
        claims.push(c.cursorBlock);
        return inner.save(c);
      },
    };
    await b.site.restoreToDevice(a.remote, snapshotId, device, { checkpoints, checkpointBytes: 64 * BLOCK, retries: 0 });
    expect(equalBytes(await device.read(0, BLOCKS * BLOCK), expected)).toBe(true);
    expect(claims.filter((c) => c > 0).length).toBeGreaterThan(2);
    expect(writesDuringFlush).toBeGreaterThan(0);
    expect(await checkpoints.load()).toBeUndefined(); // cleared at commit, after the last save
    await a.site.close();
    await b.site.close();
  });

  it('a checkpoint that fails fails the restore', async () => {
    const { a, b, snapshotId } = await setup();
    const inner = memoryRestoreCheckpoints();
    let saves = 0;
    const checkpoints = {
      ...inner,
      save: async (c: Parameters<typeof inner.save>[0]) => {
        if (++saves > 1) throw new Error('checkpoint disk full');
        return inner.save(c);
      },
    };
    const err = await errorOf(b.site.restoreToDevice(a.remote, snapshotId, await garbageDevice(), { checkpoints, checkpointBytes: 64 * BLOCK, retries: 0 }));
    // The receiver's failure ends the connection; the cause says why.
    expect(String((err.cause as Error | undefined)?.message)).toMatch(/checkpoint disk full/);
    await a.site.close();
    await b.site.close();
  });

  it('restores into a raw file opened with O_DIRECT, every mapped block written direct', async () => {
    const { a, b, snapshotId, expected } = await setup();
    const dir = mkdtempSync(join(tmpdir(), 'drkit-restore-direct-'));
    try {
      const path = join(dir, 'disk.img');
      const device = await RawFileBlockDevice.open({ path, create: { byteLength: BLOCKS * BLOCK }, direct: true });
      await b.site.restoreToDevice(a.remote, snapshotId, device, { deviceZeroed: true, checkpointBytes: 128 * BLOCK });
      expect(device.writtenBytes.bufferedBytes).toBe(0);
      expect(device.writtenBytes.directBytes).toBeGreaterThan(0);
      await device.close();
      expect(equalBytes(new Uint8Array(readFileSync(path)), expected)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await a.site.close();
    await b.site.close();
  });

  it('an aborted signal before the call rejects ABORTED and touches nothing', async () => {
    const { a, b, snapshotId } = await setup();
    const device = await garbageDevice();
    const err = await errorOf(b.site.restoreToDevice(a.remote, snapshotId, device, { signal: AbortSignal.abort() }));
    expect(err.code).toBe('ABORTED');
    expect((await device.read(0, 16)).every((x) => x === 0xa5)).toBe(true);
    await a.site.close();
    await b.site.close();
  });

  it('refuses an extent whose content does not match its fingerprint: CORRUPTION, and no block of it is written', async () => {
    const { a, b, snapshotId } = await setup();
    // A lying sender: its store hands out damaged bytes (re-checksummed, so only the fingerprint can tell).
    const read = a.tree.readStoredExtents.bind(a.tree);
    a.tree.readStoredExtents = async (fps, o) =>
      (await read(fps, o)).map((s) => {
        const bytes = s.codec === 0 ? s.bytes.slice() : s.bytes;
        if (s.codec === 0) bytes[7]! ^= 0x01;
        return { codec: s.codec, bytes, rawLength: s.rawLength };
      });
    const device = await garbageDevice();
    const err = await errorOf(b.site.restoreToDevice(a.remote, snapshotId, device, { retries: 0 }));
    expect(err.code).toBe('CORRUPTION');
    expect((await device.read(0, BLOCK)).every((x) => x === 0xa5)).toBe(true);
    await a.site.close();
    await b.site.close();
  });

  it('verifies a duplicate read back from the device: damage there is CORRUPTION', async () => {
    const { a, b, snapshotId } = await setup();
    const device: BlockDevice = await garbageDevice();
    // Read-backs of a batch go out in one readv: damage what it returns (and read, for good measure).
    const readBack = device.read.bind(device);
    const readBacks = device.readv.bind(device);
    let damaged = 0;
    device.read = async (offset, n, o) => {
      const bytes = await readBack(offset, n, o);
      bytes[3]! ^= 0x10;
      damaged++;
      return bytes;
    };
    device.readv = async (reads, o) => {
      const out = await readBacks(reads, o);
      for (const bytes of out) bytes[3]! ^= 0x10;
      damaged += out.length;
      return out;
    };
    const err = await errorOf(b.site.restoreToDevice(a.remote, snapshotId, device, { retries: 0 }));
    expect(err.code).toBe('CORRUPTION');
    expect(err.message).toMatch(/read back/);
    expect(damaged).toBeGreaterThan(0);
    await a.site.close();
    await b.site.close();
  });

  it('refuses a device smaller than the snapshot that cannot grow', async () => {
    const { a, b, snapshotId } = await setup();
    const small = await MemoryBlockDevice.create({ byteLength: BLOCK });
    Object.defineProperty(small, 'capabilities', { value: { ...small.capabilities, resizable: false } });
    const err = await errorOf(b.site.restoreToDevice(a.remote, snapshotId, small, { retries: 0 }));
    expect(err.code).toBe('INVALID_ARGUMENT');
    await a.site.close();
    await b.site.close();
  });

  it('verifies on a worker with verifyWorkers 1 (same bytes, same CORRUPTION), and refuses a bad worker count', async () => {
    const { a, b, snapshotId, expected } = await setup();
    const device = await garbageDevice();
    await b.site.restoreToDevice(a.remote, snapshotId, device, { verifyWorkers: 1 });
    expect(equalBytes(await device.read(0, BLOCKS * BLOCK), expected)).toBe(true);
    const read = a.tree.readStoredExtents.bind(a.tree);
    a.tree.readStoredExtents = async (fps, o) =>
      (await read(fps, o)).map((s) => {
        const bytes = s.codec === 0 ? s.bytes.slice() : s.bytes;
        if (s.codec === 0) bytes[11]! ^= 0x04;
        return { codec: s.codec, bytes, rawLength: s.rawLength };
      });
    expect((await errorOf(b.site.restoreToDevice(a.remote, snapshotId, await garbageDevice(), { verifyWorkers: 1, retries: 0 }))).code).toBe('CORRUPTION');
    expect((await errorOf(b.site.restoreToDevice(a.remote, snapshotId, device, { verifyWorkers: -1 }))).code).toBe('INVALID_ARGUMENT');
    await a.site.close();
    await b.site.close();
  });
});
