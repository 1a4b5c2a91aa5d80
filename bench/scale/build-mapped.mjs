// Child of the scale bench: builds a site whose one volume of --mappedBytes (16 KiB
// blocks) has EVERY block mapped onto a few thousand distinct extents written first, then
// takes a snapshot. Prints one JSON line: build timings and the MetaStore's stats.
// Usage: node bench/scale/build-mapped.mjs --dir=SITE --mappedBytes=N [--distinct=4096]
import { performance } from 'node:perf_hooks';
import { Prng, metaStoreName, openSite, parseArgs, procMemory, report } from './site.mjs';

const BLOCK_BYTES = 16384;
/** Blocks per mapBlocks call: bounds the update array one call builds (~4 MiB of objects). */
const MAP_BATCH_BLOCKS = 65536;
/** mapBlocks calls between flushes (1 M blocks): bounds the uncommitted metadata. */
const FLUSH_EVERY_BATCHES = 16;

const args = parseArgs();
const mappedBytes = Number(args.mappedBytes);
const distinct = Number(args.distinct ?? 4096);
const blockCount = mappedBytes / BLOCK_BYTES;
const site = await openSite(args.dir);
const t0 = performance.now();
const vol = await site.tree.createVolume({ name: 'v', byteLength: mappedBytes, blockBytes: BLOCK_BYTES });

// The distinct extents: seeded blocks written through the normal write path.
const prng = new Prng(0x5ca1e);
const block = new Uint8Array(BLOCK_BYTES);
for (let i = 0; i < distinct; i++) await vol.write(i * BLOCK_BYTES, prng.fill(block));
await vol.flush();
const probe = await site.tree.snapshot(vol.id, { name: 'fingerprints' });
const known = [];
for await (const r of site.tree.diff(undefined, probe.id)) known.push(...r.fingerprints);
if (known.length !== distinct) throw new Error(`expected ${distinct} fingerprints, diff gave ${known.length}`);
await site.tree.deleteSnapshot(probe.id);
const writeMs = performance.now() - t0;

// Every block of the volume mapped onto them (block b -> extent b mod distinct).
let peakRssAnon = 0;
let lastLog = performance.now();
const t1 = performance.now();
let batches = 0;
for (let first = 0; first < blockCount; first += MAP_BATCH_BLOCKS) {
  const updates = [];
  const end = Math.min(blockCount, first + MAP_BATCH_BLOCKS);
  for (let b = first; b < end; b++) updates.push({ blockIndex: b, fingerprint: known[b % distinct] });
  await vol.mapBlocks(updates);
  if (++batches % FLUSH_EVERY_BATCHES === 0) {
    await vol.flush();
    peakRssAnon = Math.max(peakRssAnon, procMemory().rssAnonBytes ?? 0);
    if (performance.now() - lastLog > 30_000) {
      lastLog = performance.now();
      const rate = end / ((lastLog - t1) / 1000);
      process.stderr.write(`    mapped ${end}/${blockCount} blocks, ${Math.round(rate)} blocks/s, RssAnon ${((procMemory().rssAnonBytes ?? 0) / 2 ** 20).toFixed(0)} MiB\n`);
    }
  }
}
await vol.flush();
const mapMs = performance.now() - t1;
const snap = await site.tree.snapshot(vol.id, { name: 'base' });
const totalMs = performance.now() - t0;
const stats = await site.meta.stats();
peakRssAnon = Math.max(peakRssAnon, procMemory().rssAnonBytes ?? 0);
await vol.close();
await site.close();
report({ mappedBytes, blockCount, distinct, writeMs, mapMs, totalMs, blocksPerSec: blockCount / (mapMs / 1000), snapshotId: snap.id, volumeId: vol.id, metaStore: metaStoreName, liveBytes: stats.liveBytes, storedBytes: stats.storedBytes, keyCount: stats.keyCount, peakRssAnonBytes: peakRssAnon });
