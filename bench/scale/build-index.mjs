// Child of the scale bench: fills a DeviceExtentStore (raw file device + MetaStore) with
// --extentCount distinct ZERO-LENGTH extents through the public put() API, so the index
// grows while no data bytes are stored. Fingerprints sort by i (see indexFingerprint); the opener probes
// known ones by the same rule. Prints one JSON line with timings and MetaStore stats.
// Usage: node bench/scale/build-index.mjs --dir=SITE --extentCount=N
import { performance } from 'node:perf_hooks';
import { indexFingerprint, metaStoreName, openExtentSite, parseArgs, procMemory, report } from './site.mjs';

/** Extents per put() call: bounds one call's array and the index ops it queues. */
const PUT_BATCH = 8192;
/** put() calls between flushes (~820 k extents): bounds uncommitted index state. */
const FLUSH_EVERY_BATCHES = 100;

const args = parseArgs();
const extentCount = Number(args.extentCount);
// One durable index commit per 65,536 extents instead of per 2,048 (the default).
const site = await openExtentSite(args.dir, { maxPendingIndexOps: 65536 });
const empty = new Uint8Array(0);
const t0 = performance.now();
let lastLog = t0;
let batches = 0;
let peakRssAnon = 0;
for (let first = 0; first < extentCount; first += PUT_BATCH) {
  const puts = [];
  for (let i = first; i < Math.min(extentCount, first + PUT_BATCH); i++) puts.push({ fingerprint: indexFingerprint(i), data: empty });
  await site.extents.put(puts);
  if (++batches % FLUSH_EVERY_BATCHES === 0) {
    await site.extents.flush();
    peakRssAnon = Math.max(peakRssAnon, procMemory().rssAnonBytes ?? 0);
    if (performance.now() - lastLog > 30_000) {
      lastLog = performance.now();
      const done = first + puts.length;
      const rate = done / ((lastLog - t0) / 1000);
      process.stderr.write(`    put ${done}/${extentCount} extents, ${Math.round(rate)}/s (projected total ${((extentCount / rate) / 60).toFixed(1)} min), RssAnon ${((procMemory().rssAnonBytes ?? 0) / 2 ** 20).toFixed(0)} MiB\n`);
    }
  }
}
await site.extents.flush();
const buildMs = performance.now() - t0;
const stats = await site.meta.stats();
const extentStats = await site.extents.stats?.();
peakRssAnon = Math.max(peakRssAnon, procMemory().rssAnonBytes ?? 0);
await site.close();
report({ extentCount, buildMs, putsPerSec: extentCount / (buildMs / 1000), metaStore: metaStoreName, liveBytes: stats.liveBytes, storedBytes: stats.storedBytes, keyCount: stats.keyCount, extentStats, peakRssAnonBytes: peakRssAnon });
