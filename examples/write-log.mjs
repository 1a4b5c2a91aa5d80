// The write log: small writes become sequential appends, acknowledged by one device
// flush, and survive a SIGKILL. A child process writes 4 KiB blocks at random offsets
// into a volume whose tree has a write log, flushing every 64 writes and reporting what
// it flushed; the parent kills it mid-stream, reopens the files and checks that exactly
// the flushed writes are there.
//
// Usage: npm run build && node examples/write-log.mjs
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DeviceExtentStore } from '../dist/adapters/index.js';
import { LmdbMetaStore, RawFileBlockDevice } from '../dist/adapters/node.js';
import { SnapshotTree } from '../dist/snapshot/index.js';
import { SeededPrng } from '../dist/testing/core.js';

const VOLUME_BYTES = 64 * 1024 * 1024;
const WRITE_BYTES = 4096;
const FLUSH_EVERY = 64;

async function openSite(dir) {
  const create = !existsSync(join(dir, 'extents.img'));
  const device = await RawFileBlockDevice.open({ path: join(dir, 'extents.img'), ...(create ? { create: { byteLength: 16 << 20 } } : {}) });
  const log = await RawFileBlockDevice.open({ path: join(dir, 'write.log'), ...(create ? { create: { byteLength: 64 << 20 } } : {}) });
  const meta = await LmdbMetaStore.open({ path: join(dir, 'metadata'), create: true });
  const extents = await DeviceExtentStore.open({ device, meta });
  const tree = await SnapshotTree.open({ meta, extents, writeLog: log });
  return {
    tree,
    async close() {
      await tree.close();
      await extents.close();
      await meta.close();
      await log.close();
      await device.close();
    },
  };
}

const sha = (bytes) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

if (process.argv[2] === '--writer') {
  const site = await openSite(process.argv[3]);
  const vol = await site.tree.createVolume({ name: 'db', byteLength: VOLUME_BYTES, blockBytes: 16384 });
  const model = new Uint8Array(VOLUME_BYTES);
  const rng = new SeededPrng(7);
  let ioMs = 0; // time in write() and flush() only: hashing the model for the report is not I/O
  for (let i = 1; ; i++) {
    const data = rng.fill(new Uint8Array(WRITE_BYTES));
    const byteOffset = rng.below(VOLUME_BYTES / WRITE_BYTES) * WRITE_BYTES;
    let t = performance.now();
    await vol.write(byteOffset, data);
    ioMs += performance.now() - t;
    model.set(data, byteOffset);
    if (i % FLUSH_EVERY === 0) {
      process.stdout.write(`${JSON.stringify({ flushing: i, sha: sha(model) })}\n`);
      t = performance.now();
      await vol.flush();
      ioMs += performance.now() - t;
      const iops = i / (ioMs / 1000);
      process.stdout.write(`${JSON.stringify({ flushed: i, sha: sha(model), iops: Math.round(iops) })}\n`);
    }
  }
} else {
  const dir = mkdtempSync(join(tmpdir(), 'drkit-wlog-'));
  try {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--writer', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => child.on('close', resolve));
    let last;
    let inFlight; // a flush announced but not yet confirmed when the kill landed
    for await (const line of createInterface({ input: child.stdout })) {
      const msg = JSON.parse(line);
      if (msg.flushing !== undefined) {
        inFlight = msg;
        continue;
      }
      last = msg;
      inFlight = undefined;
      if (last.flushed >= 3200) child.kill('SIGKILL');
    }
    await exited;
    console.log(`writer: ${last.flushed} random 4 KiB writes flushed (${last.iops} writes/s with a flush every ${FLUSH_EVERY}), then SIGKILL`);
    const site = await openSite(dir);
    const vol = await site.tree.openVolume(site.tree.listVolumes()[0].id);
    const now = sha(await vol.read(0, VOLUME_BYTES));
    const ok = now === last.sha || now === inFlight?.sha;
    console.log(`reopened: the log was replayed and drained; volume ${ok ? 'holds exactly the flushed writes, none of the later ones' : `DIFFERS (${now} vs ${last.sha})`}`);
    // Light-weight snapshots: two markers in the log, the records between them kept by a
    // hold after the drain, replayed onto a clone of the snapshot at the first marker.
    const base = await site.tree.snapshot(vol.id, { name: 'base' });
    const m1 = await site.tree.markWriteLog([vol.id]);
    await site.tree.holdWriteLog('example-target', m1);
    const rng = new SeededPrng(8);
    for (let i = 0; i < 200; i++) await vol.write(rng.below(VOLUME_BYTES / WRITE_BYTES) * WRITE_BYTES, rng.fill(new Uint8Array(WRITE_BYTES)));
    const m2 = await site.tree.markWriteLog([vol.id]);
    await vol.flush();
    await site.tree.snapshot(vol.id, { name: 'drained' }); // the log drains; the hold keeps the records
    const composed = await site.tree.clone(base.id, { name: 'composed' });
    let applied = 0;
    for await (const entry of site.tree.readWriteLog(m1, m2.seq)) {
      if (entry.kind !== 'write') continue;
      await composed.write(entry.byteOffset, entry.data);
      applied++;
    }
    await site.tree.releaseWriteLog('example-target');
    const same = sha(await composed.read(0, VOLUME_BYTES)) === sha(await vol.read(0, VOLUME_BYTES));
    console.log(`light-weight snapshots: ${applied} writes between two markers, kept by a hold past the drain, replayed onto a clone of "base": ${same ? 'equals the volume at the second marker' : 'DIFFERS'}`);
    await composed.close();
    await vol.close();
    await site.close();
    if (!ok || !same) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
