// Scale benches (issue 9): open time and memory of a site must not grow with what it
// stores. Every open-time and memory figure is measured in a FRESH child process
// (bench/scale/*.mjs, which print one JSON line each), so nothing a build left in this
// process's heap or the child's caches flatters the figure; the sites are built by
// children too. The MetaStore is whatever bench/scale/site.mjs `openMeta` picks.
//
// DRKIT_SCALE_QUICK=1 shrinks every point 64x (for development; the fields then carry the
// shrunken sizes and `quick: true`). DRKIT_SCALE_EXTENTS=N overrides the extent count of
// the index point (the field reports what was measured). DRKIT_BENCH_DIR puts the sites
// on a bigger disk.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from '../util.mjs';
import { metaDiskBytes, metaStoreName, procMemory } from '../scale/site.mjs';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const QUICK = process.env.DRKIT_SCALE_QUICK === '1';
const SHRINK = QUICK ? 64 : 1;
/** Mapped volume sizes of issue 9 (16 GiB, 256 GiB, 1 TiB at 16 KiB blocks: 1 M to 64 M blocks). */
const MAPPED_POINTS = [16 * GiB, 256 * GiB, 1024 * GiB].map((b) => b / SHRINK);
/** Distinct extents of the extent-index point. */
const EXTENT_COUNT = Number(process.env.DRKIT_SCALE_EXTENTS ?? (16 * 1024 * 1024) / SHRINK);
/** Unique data written for scale.write.rss. */
const WRITTEN_BYTES = (8 * GiB) / SHRINK;
/** Fresh processes per open measurement; the median is reported. */
const OPEN_RUNS = 3;
/** Random block reads (and extent probes) before memory is read. */
const READS = 10_000;
/** How often the parent samples the writer's /proc/<pid>/status. */
const POLL_MS = 20;

const scaleDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'scale');
const quickField = QUICK ? { quick: true } : {};

/**
 * Runs bench/scale/<script> in a fresh node process and resolves with the JSON object of
 * its last stdout line; the child's stderr (progress) is passed through. `onSpawn` gets
 * the child process (its pid is what memory polling reads).
 */
function runChild(script, args, { onSpawn } = {}) {
  return new Promise((resolve, reject) => {
    const argv = [join(scaleDir, script), ...Object.entries(args).map(([k, v]) => `--${k}=${v}`)];
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      err += d;
      process.stderr.write(d);
    });
    onSpawn?.(child);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const last = out.trim().split('\n').pop();
      if (code !== 0 || !last) {
        reject(new Error(`${script} ${argv.slice(1).join(' ')} failed (exit ${code}${signal ? `, ${signal}` : ''}): ${err.trim().split('\n').slice(-6).join(' | ')}`));
        return;
      }
      resolve(JSON.parse(last));
    });
  });
}

/** Fails with a clear message when `dir`'s file system has less than `needBytes` free. */
function ensureFreeDisk(dir, needBytes, what) {
  const st = fs.statfsSync(dir);
  const free = st.bavail * st.bsize;
  if (free < needBytes) {
    throw new Error(`scale: ${what} needs ~${(needBytes / GiB).toFixed(1)} GiB free in ${dir}, only ${(free / GiB).toFixed(1)} GiB free (set DRKIT_BENCH_DIR to a bigger disk)`);
  }
}

const fmtGiB = (b) => (b >= GiB ? `${b / GiB} GiB` : `${b / MiB} MiB`);
const fmtMiB = (b) => `${(b / MiB).toFixed(1)} MiB`;

// One build and one set of fresh-process measurements per point per run of the runner,
// shared by the bench names that report on it (scale.open and scale.rss come from the
// same children; scale.metadata from the same builds). Each site is deleted once
// measured, so only one point occupies the disk at a time.
const memo = new Map();
const once = (key, fn) => {
  if (!memo.has(key)) memo.set(key, fn());
  return memo.get(key);
};

function mappedPoint(ctx, mappedBytes) {
  return once(`mapped-${mappedBytes}`, async () => {
    const siteDir = join(ctx.dir, `mapped-${mappedBytes}`);
    const blockCount = mappedBytes / (16 * KiB);
    // Measured ~35 B of metadata per mapped block; 128 B leaves room for a log's garbage.
    ensureFreeDisk(ctx.dir, blockCount * 128 + 512 * MiB, `the ${fmtGiB(mappedBytes)} mapped point`);
    ctx.log(`  scale: building ${fmtGiB(mappedBytes)} mapped (${blockCount} blocks, ${metaStoreName}) ...`);
    const build = await runChild('build-mapped.mjs', { dir: siteDir, mappedBytes });
    ctx.log(`  scale: built ${fmtGiB(mappedBytes)} in ${(build.totalMs / 1000).toFixed(1)} s (mapBlocks ${Math.round(build.blocksPerSec)} blocks/s, builder peak RssAnon ${fmtMiB(build.peakRssAnonBytes)})`);
    const diskBytes = metaDiskBytes(siteDir);
    const runs = [];
    for (let i = 0; i < OPEN_RUNS; i++) runs.push(await runChild('open-mapped.mjs', { dir: siteDir, reads: READS, seed: i + 1 }));
    ctx.log(`  scale: ${fmtGiB(mappedBytes)} open ms ${runs.map((r) => r.openMs.toFixed(1)).join(', ')}; RssAnon ${runs.map((r) => fmtMiB(r.rssAnonBytes)).join(', ')}; meta on disk ${fmtMiB(diskBytes)}`);
    fs.rmSync(siteDir, { recursive: true, force: true });
    return { mappedBytes, build, runs, diskBytes };
  });
}

function indexPoint(ctx) {
  return once('index', async () => {
    const siteDir = join(ctx.dir, 'index');
    ensureFreeDisk(ctx.dir, EXTENT_COUNT * 256 + 512 * MiB, `the ${EXTENT_COUNT}-extent index point`);
    ctx.log(`  scale: putting ${EXTENT_COUNT} zero-length extents (${metaStoreName}) ...`);
    const build = await runChild('build-index.mjs', { dir: siteDir, extentCount: EXTENT_COUNT });
    ctx.log(`  scale: index built in ${(build.buildMs / 1000).toFixed(1)} s (${Math.round(build.putsPerSec)} puts/s, builder peak RssAnon ${fmtMiB(build.peakRssAnonBytes)})`);
    const diskBytes = metaDiskBytes(siteDir);
    const runs = [];
    for (let i = 0; i < OPEN_RUNS; i++) runs.push(await runChild('open-index.mjs', { dir: siteDir, extentCount: EXTENT_COUNT, probes: READS, seed: i + 1 }));
    ctx.log(`  scale: index open ms ${runs.map((r) => r.openMs.toFixed(1)).join(', ')}; RssAnon ${runs.map((r) => fmtMiB(r.rssAnonBytes)).join(', ')}; meta on disk ${fmtMiB(diskBytes)}`);
    fs.rmSync(siteDir, { recursive: true, force: true });
    return { build, runs, diskBytes };
  });
}

function uniquePoint(ctx) {
  return once('unique', async () => {
    const siteDir = join(ctx.dir, 'unique');
    ensureFreeDisk(ctx.dir, WRITTEN_BYTES * 1.1 + (WRITTEN_BYTES / (16 * KiB)) * 256 + 512 * MiB, `the ${fmtGiB(WRITTEN_BYTES)} unique write`);
    ctx.log(`  scale: writing ${fmtGiB(WRITTEN_BYTES)} of unique data (${metaStoreName}) ...`);
    let peak = 0;
    let samples = 0;
    let timer;
    const result = await runChild('write-unique.mjs', { dir: siteDir, writtenBytes: WRITTEN_BYTES }, {
      onSpawn(child) {
        timer = setInterval(() => {
          const { rssAnonBytes } = procMemory(child.pid);
          if (rssAnonBytes !== undefined) {
            samples++;
            peak = Math.max(peak, rssAnonBytes);
          }
        }, POLL_MS);
      },
    }).finally(() => clearInterval(timer));
    const diskBytes = metaDiskBytes(siteDir);
    ctx.log(`  scale: wrote ${fmtGiB(WRITTEN_BYTES)} at ${result.mbPerSec.toFixed(0)} MB/s, peak RssAnon ${fmtMiB(peak)} over ${samples} samples, meta on disk ${fmtMiB(diskBytes)}`);
    fs.rmSync(siteDir, { recursive: true, force: true });
    return { result, peakRssAnonBytes: peak, samples, diskBytes };
  });
}

/**
 * Measures each point in turn; a point that fails is logged and skipped so the others
 * are still reported, and the run then exits non-zero.
 */
async function eachPoint(ctx, points, measure) {
  const results = [];
  for (const p of points) {
    try {
      results.push(...(await measure(p)));
    } catch (err) {
      ctx.log(`  scale: FAILED ${err.message}`);
      process.exitCode = 1;
    }
  }
  return results;
}

const common = () => ({ metaStore: metaStoreName, blockBytes: 16 * KiB, ...quickField });

export default [
  {
    name: 'scale.open',
    run: (ctx) =>
      eachPoint(ctx, MAPPED_POINTS, async (mappedBytes) => {
        const { runs, build } = await mappedPoint(ctx, mappedBytes);
        const ms = runs.map((r) => r.openMs);
        return [{ bench: 'scale.open', value: median(ms), unit: 'ms', mappedBytes, ...common(), runs: OPEN_RUNS, minMs: Math.min(...ms), maxMs: Math.max(...ms), buildMs: build.totalMs }];
      }),
  },
  {
    name: 'scale.rss',
    run: (ctx) =>
      eachPoint(ctx, MAPPED_POINTS, async (mappedBytes) => {
        const { runs } = await mappedPoint(ctx, mappedBytes);
        const anon = runs.map((r) => r.rssAnonBytes);
        return [{ bench: 'scale.rss', value: median(anon), unit: 'bytes', mappedBytes, ...common(), reads: READS, runs: OPEN_RUNS, rssBytes: median(runs.map((r) => r.vmRssBytes)), maxRssAnonBytes: Math.max(...anon) }];
      }),
  },
  {
    name: 'scale.index.open',
    run: (ctx) =>
      eachPoint(ctx, [EXTENT_COUNT], async (extentCount) => {
        const { runs, build } = await indexPoint(ctx);
        const ms = runs.map((r) => r.openMs);
        return [{ bench: 'scale.index.open', value: median(ms), unit: 'ms', extentCount, ...common(), runs: OPEN_RUNS, minMs: Math.min(...ms), maxMs: Math.max(...ms), probeMs: median(runs.map((r) => r.probeMs + r.missMs)), buildMs: build.buildMs, putsPerSec: build.putsPerSec }];
      }),
  },
  {
    name: 'scale.index.rss',
    run: (ctx) =>
      eachPoint(ctx, [EXTENT_COUNT], async (extentCount) => {
        const { runs, diskBytes } = await indexPoint(ctx);
        const anon = runs.map((r) => r.rssAnonBytes);
        return [{ bench: 'scale.index.rss', value: median(anon), unit: 'bytes', extentCount, ...common(), probes: `${READS} known + ${READS} unknown`, runs: OPEN_RUNS, rssBytes: median(runs.map((r) => r.vmRssBytes)), maxRssAnonBytes: Math.max(...anon), metaDiskBytes: diskBytes }];
      }),
  },
  {
    name: 'scale.write.rss',
    run: (ctx) =>
      eachPoint(ctx, [WRITTEN_BYTES], async (writtenBytes) => {
        const { result, peakRssAnonBytes, samples } = await uniquePoint(ctx);
        return [{ bench: 'scale.write.rss', value: peakRssAnonBytes, unit: 'bytes', writtenBytes, ...common(), writeBytes: MiB, flushEveryBytes: 256 * MiB, pollMs: POLL_MS, samples, mbPerSec: result.mbPerSec }];
      }),
  },
  {
    name: 'scale.metadata',
    run: (ctx) =>
      eachPoint(ctx, [...MAPPED_POINTS, 'unique'], async (point) => {
        if (point === 'unique') {
          const { result, diskBytes } = await uniquePoint(ctx);
          return [{ bench: 'scale.metadata', value: diskBytes / WRITTEN_BYTES, unit: 'ratio', mappedBytes: WRITTEN_BYTES, workload: 'unique', ...common(), metaDiskBytes: diskBytes, liveBytes: result.liveBytes }];
        }
        const { build, diskBytes } = await mappedPoint(ctx, point);
        return [{ bench: 'scale.metadata', value: diskBytes / point, unit: 'ratio', mappedBytes: point, workload: 'mapped', ...common(), metaDiskBytes: diskBytes, liveBytes: build.liveBytes, distinctExtents: build.distinct }];
      }),
  },
];
