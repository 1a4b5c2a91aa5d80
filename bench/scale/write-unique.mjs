// Child of the scale bench: writes --writtenBytes of unique data (every 16 KiB block
// distinct: a seeded 1 MiB pattern with each block stamped with its byte offset) into a
// fresh volume in 1 MiB writes, flushing every 256 MiB and at the end. The PARENT samples
// this process's RssAnon from /proc/<pid>/status; this script reports its timings and the
// MetaStore's stats as one JSON line.
// Usage: node bench/scale/write-unique.mjs --dir=SITE --writtenBytes=N
import { performance } from 'node:perf_hooks';
import { Prng, metaStoreName, openSite, parseArgs, procMemory, report } from './site.mjs';

const BLOCK_BYTES = 16384;
const WRITE_BYTES = 1024 * 1024;
const FLUSH_EVERY_BYTES = 256 * 1024 * 1024;
/** Progress (with this process's memory, to show how it grows) goes to stderr this often. */
const LOG_EVERY_BYTES = 1024 * 1024 * 1024;

const args = parseArgs();
const writtenBytes = Number(args.writtenBytes);
const site = await openSite(args.dir);
const vol = await site.tree.createVolume({ name: 'v', byteLength: writtenBytes, blockBytes: BLOCK_BYTES });
const chunk = new Prng(0xda7a).fill(new Uint8Array(WRITE_BYTES));
const view = new DataView(chunk.buffer);
const t0 = performance.now();
for (let off = 0; off < writtenBytes; off += WRITE_BYTES) {
  // The first 8 bytes of each block hold its offset: no two blocks of the run are equal.
  for (let b = 0; b < WRITE_BYTES; b += BLOCK_BYTES) view.setFloat64(b, off + b);
  await vol.write(off, chunk);
  if ((off + WRITE_BYTES) % FLUSH_EVERY_BYTES === 0) await vol.flush();
  if ((off + WRITE_BYTES) % LOG_EVERY_BYTES === 0) {
    const { rssAnonBytes } = procMemory();
    const mib = (b) => (b / 2 ** 20).toFixed(0);
    process.stderr.write(`    wrote ${(off + WRITE_BYTES) / LOG_EVERY_BYTES} GiB, RssAnon ${mib(rssAnonBytes ?? 0)} MiB, heapUsed ${mib(process.memoryUsage().heapUsed)} MiB, ${((off + WRITE_BYTES) / 1e6 / ((performance.now() - t0) / 1000)).toFixed(0)} MB/s\n`);
  }
}
await vol.flush();
const ms = performance.now() - t0;
const stats = await site.meta.stats();
await vol.close();
await site.close();
report({ writtenBytes, ms, mbPerSec: writtenBytes / 1e6 / (ms / 1000), metaStore: metaStoreName, liveBytes: stats.liveBytes, storedBytes: stats.storedBytes, keyCount: stats.keyCount });
