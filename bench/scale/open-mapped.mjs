// Child of the scale bench, run in a FRESH process per sample: opens a site built by
// build-mapped.mjs (device + MetaStore + extent store + tree + openVolume), reads one
// block (that is the timed open), then reads --reads seeded random blocks and reports
// RssAnon/VmRSS from /proc/self/status. Prints one JSON line.
// Usage: node bench/scale/open-mapped.mjs --dir=SITE [--reads=10000] [--seed=1]
import { performance } from 'node:perf_hooks';
import { Prng, openSite, parseArgs, procMemory, report } from './site.mjs';

const args = parseArgs();
const reads = Number(args.reads ?? 10000);
const prng = new Prng(Number(args.seed ?? 1));
const before = procMemory();

const t0 = performance.now();
const site = await openSite(args.dir);
const info = site.tree.listVolumes().find((v) => v.name === 'v');
if (!info) throw new Error(`no volume "v" in ${args.dir}`);
const vol = await site.tree.openVolume(info.id);
const blockCount = vol.byteLength / vol.blockBytes;
const first = await vol.read(prng.below(blockCount) * vol.blockBytes, vol.blockBytes);
const openMs = performance.now() - t0;
if (first.byteLength !== vol.blockBytes) throw new Error('short read');

const t1 = performance.now();
for (let i = 0; i < reads; i++) await vol.read(prng.below(blockCount) * vol.blockBytes, vol.blockBytes);
const readMs = performance.now() - t1;
const after = procMemory();
await vol.close();
await site.close();
report({ openMs, readMs, reads, rssAnonBytes: after.rssAnonBytes, vmRssBytes: after.vmRssBytes, rssAnonBeforeOpenBytes: before.rssAnonBytes, heapUsedBytes: process.memoryUsage().heapUsed });
