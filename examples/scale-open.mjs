// Bounded memory and constant-time open, on the default stores (RawFileBlockDevice for
// extents, LmdbMetaStore for metadata, DeviceExtentStore + SnapshotTree on top).
//
// Builds a volume whose every block is mapped (16 GiB by default: 1 M blocks of 16 KiB,
// pointing at 1,024 distinct extents, so no terabytes of data are needed), snapshots it,
// then opens the site again in a FRESH process and reads 1,000 random blocks, printing
// the open time and the process's anonymous memory (RssAnon: LMDB's mapped file pages
// are the OS's cache and do not count).
//
// Usage: npm run build && node examples/scale-open.mjs [mappedGiB]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { DeviceExtentStore } from '../dist/adapters/index.js';
import { LmdbMetaStore, RawFileBlockDevice } from '../dist/adapters/node.js';
import { SnapshotTree } from '../dist/snapshot/index.js';

const BLOCK_BYTES = 16 * 1024;
const DISTINCT_EXTENTS = 1024;
/** Blocks per mapBlocks call: bounds the update array held at once. */
const MAP_BATCH_BLOCKS = 65536;

async function openSite(dir, create) {
  const device = await RawFileBlockDevice.open({ path: join(dir, 'extents.img'), ...(create ? { create: { byteLength: 64 << 20 } } : {}) });
  const meta = await LmdbMetaStore.open({ path: join(dir, 'metadata'), create });
  const extents = await DeviceExtentStore.open({ device, meta });
  const tree = await SnapshotTree.open({ meta, extents });
  return {
    tree,
    async close() {
      await tree.close();
      await extents.close();
      await meta.close();
      await device.close();
    },
  };
}

function rssAnonBytes() {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('RssAnon:'));
  return Number(line.split(/\s+/)[1]) * 1024;
}

if (process.argv[2] === '--child') {
  // A fresh process: open, read random blocks, report.
  const dir = process.argv[3];
  const t0 = performance.now();
  const site = await openSite(dir, false);
  const vol = await site.tree.openVolume(site.tree.listVolumes()[0].id);
  await vol.read(0, BLOCK_BYTES);
  const openMs = performance.now() - t0;
  let x = 12345;
  const blockCount = vol.byteLength / BLOCK_BYTES;
  for (let i = 0; i < 1000; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    await vol.read((x % blockCount) * BLOCK_BYTES, BLOCK_BYTES);
  }
  process.stdout.write(JSON.stringify({ openMs, rssAnonBytes: rssAnonBytes() }));
  await vol.close();
  await site.close();
} else {
  const mappedGiB = Number(process.argv[2] ?? 16);
  const dir = mkdtempSync(join(tmpdir(), 'drkit-scale-'));
  try {
    const site = await openSite(dir, true);
    const vol = await site.tree.createVolume({ name: 'big', byteLength: mappedGiB * 2 ** 30, blockBytes: BLOCK_BYTES });
    const fingerprints = [];
    for (let i = 0; i < DISTINCT_EXTENTS; i++) {
      const block = new Uint8Array(BLOCK_BYTES).fill(0x5a); // never all-zero (zero blocks are holes, not extents)
      new DataView(block.buffer).setUint32(0, i);
      await vol.write(i * BLOCK_BYTES, block);
      fingerprints.push(new Uint8Array(createHash('sha256').update(block).digest()));
    }
    const blockCount = vol.byteLength / BLOCK_BYTES;
    const t0 = performance.now();
    for (let first = 0; first < blockCount; first += MAP_BATCH_BLOCKS) {
      const updates = [];
      for (let b = first; b < Math.min(blockCount, first + MAP_BATCH_BLOCKS); b++) updates.push({ blockIndex: b, fingerprint: fingerprints[b % DISTINCT_EXTENTS] });
      await vol.mapBlocks(updates);
    }
    await vol.flush();
    await site.tree.snapshot(vol.id, { name: 'mapped' });
    console.log(`mapped ${blockCount} blocks (${mappedGiB} GiB) onto ${DISTINCT_EXTENTS} extents in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await vol.close();
    await site.close();
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dir], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`child failed: ${child.stderr}`);
    const { openMs, rssAnonBytes } = JSON.parse(child.stdout);
    console.log(`fresh process: opened and read the first block in ${openMs.toFixed(1)} ms; RssAnon after 1,000 random block reads ${(rssAnonBytes / 2 ** 20).toFixed(0)} MiB`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
