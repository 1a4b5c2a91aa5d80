// Child of the scale bench, run in a FRESH process: opens the extent-index site built by
// build-index.mjs (device + MetaStore + DeviceExtentStore; the timed open), then asks
// has() for --probes seeded random known fingerprints and as many unknown ones, getMany()
// of the known and get() of each unknown (which must fail), checks every answer, and
// reports RssAnon/VmRSS. Prints one JSON line.
// Usage: node bench/scale/open-index.mjs --dir=SITE --extentCount=N [--probes=10000] [--seed=1]
import { performance } from 'node:perf_hooks';
import { Prng, indexFingerprint, openExtentSite, parseArgs, procMemory, report } from './site.mjs';

/** Fingerprints per has()/get() call, as a replication receiver would batch them. */
const PROBE_BATCH = 256;

const args = parseArgs();
const extentCount = Number(args.extentCount);
const probes = Number(args.probes ?? 10000);
const prng = new Prng(Number(args.seed ?? 1));

const t0 = performance.now();
const site = await openExtentSite(args.dir);
const openMs = performance.now() - t0;

const known = Array.from({ length: probes }, () => indexFingerprint(prng.below(extentCount)));
const unknown = Array.from({ length: probes }, (_, i) => indexFingerprint(i, 1));
const t1 = performance.now();
for (let i = 0; i < probes; i += PROBE_BATCH) {
  const k = known.slice(i, i + PROBE_BATCH);
  const u = unknown.slice(i, i + PROBE_BATCH);
  const [hk, hu] = [await site.extents.has(k), await site.extents.has(u)];
  if (!hk.every(Boolean)) throw new Error('has() denies a stored extent');
  if (hu.some(Boolean)) throw new Error('has() claims an unknown extent');
  const got = await site.extents.getMany(k);
  if (got.some((d) => d.byteLength !== 0)) throw new Error('get() of a zero-length extent returned bytes');
}
const probeMs = performance.now() - t1;
// get() of an unknown fingerprint must fail (EXTENT_NOT_FOUND), one call each.
let missesRejected = 0;
for (const fp of unknown.slice(0, probes)) {
  try {
    await site.extents.get(fp);
  } catch (err) {
    if (err?.code !== 'EXTENT_NOT_FOUND') throw err;
    missesRejected++;
  }
}
const missMs = performance.now() - t1 - probeMs;
if (missesRejected !== probes) throw new Error(`get() of unknown extents: ${probes - missesRejected} did not fail`);
const after = procMemory();
await site.close();
report({ openMs, probeMs, missMs, probes, rssAnonBytes: after.rssAnonBytes, vmRssBytes: after.vmRssBytes, heapUsedBytes: process.memoryUsage().heapUsed });
