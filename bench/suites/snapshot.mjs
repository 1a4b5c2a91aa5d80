// Snapshot-tree benches (issue 3): creation cost vs volume size, diff cost vs change,
// volume I/O on raw files against plain fs in the same run, read cost vs snapshot depth,
// and metadata per mapped byte for several block sizes.
import fs from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DeviceExtentStore, MemoryExtentStore, MemoryMetaStore } from '../../dist/adapters/index.js';
import { LmdbMetaStore, RawFileBlockDevice } from '../../dist/adapters/node.js';
import { SnapshotTree } from '../../dist/snapshot/index.js';
import { mbPerSec, median, seededBytes, timeMs } from '../util.mjs';
import { standardImageChunks } from '../workload.mjs';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const IO_BYTES = 64 * KiB;
/** Snapshots (and clones) timed per size; the median is reported. */
const CREATE_SAMPLES = 51;

/** A tree whose metadata and extents live in raw files under `dir` (durable commits). */
export async function fileTree(dir, name, dataBytes, { writeLog = false } = {}) {
  const device = await RawFileBlockDevice.open({ path: join(dir, `${name}.data`), create: { byteLength: dataBytes } });
  const meta = await LmdbMetaStore.open({ path: join(dir, `${name}.meta`), create: true });
  const extents = await DeviceExtentStore.open({ device, meta });
  const log = writeLog ? await RawFileBlockDevice.open({ path: join(dir, `${name}.log`), create: { byteLength: LOG_BYTES } }) : undefined;
  const tree = await SnapshotTree.open({ meta, extents, writeLog: log });
  return {
    tree,
    meta,
    extents,
    async close() {
      await tree.close();
      await extents.close();
      await meta.close();
      await device.close();
      await log?.close();
    },
  };
}

/** Write-log device size in the benches: 256 MiB (drains start at half: ~28,000 logged 4 KiB writes). */
const LOG_BYTES = 256 * 1024 * 1024;

async function memoryTree() {
  const meta = await MemoryMetaStore.open();
  const extents = await MemoryExtentStore.open();
  const tree = await SnapshotTree.open({ meta, extents });
  return { tree, meta, extents, close: () => tree.close() };
}

/** Fills every block of `vol`: distinct content written through the write path when small, else mapped onto a few extents. */
async function fillVolume(vol, distinct) {
  const blockCount = vol.byteLength / vol.blockBytes;
  if (distinct) {
    // 1 MiB aligned writes: a tree with a write log takes them straight into extents, so
    // the fill leaves no drain debt behind for the measurement that follows.
    const FILL_BYTES = Math.min(1024 * KiB, vol.byteLength);
    const chunk = seededBytes(FILL_BYTES, 3);
    for (let off = 0; off < vol.byteLength; off += FILL_BYTES) {
      for (let b = 0; b < FILL_BYTES; b += vol.blockBytes) new DataView(chunk.buffer).setUint32(b, off + b); // every block differs
      await vol.write(off, chunk);
    }
    return;
  }
  // Sparse, repetitive fill: 16 distinct blocks, then every block mapped onto them.
  for (let i = 0; i < 16; i++) await vol.write(i * vol.blockBytes, seededBytes(vol.blockBytes, 100 + i));
  const BATCH_BLOCKS = 65536; // bounds the update array of one mapBlocks call
  const known = await knownFingerprints(vol, 16);
  for (let first = 16; first < blockCount; first += BATCH_BLOCKS) {
    const updates = [];
    for (let b = first; b < Math.min(blockCount, first + BATCH_BLOCKS); b++) updates.push({ blockIndex: b, fingerprint: known[b % 16] });
    await vol.mapBlocks(updates);
  }
}

/** Fingerprints of the first `n` blocks, read back through a snapshot diff from empty. */
async function knownFingerprints(vol, n) {
  const tree = vol.__tree;
  const s = await tree.snapshot(vol.id, { name: 'fp-probe' });
  const out = [];
  for await (const r of tree.diff(undefined, s.id)) for (const fp of r.fingerprints) if (out.length < n) out.push(fp);
  await tree.deleteSnapshot(s.id);
  return out;
}

async function createVolume(tree, opts) {
  const vol = await tree.createVolume(opts);
  vol.__tree = tree;
  return vol;
}

/** Median ms of snapshot() and clone() on a fully mapped volume, each after a one-block write. */
async function timeCreation(tree, vol) {
  const snapMs = [];
  const cloneMs = [];
  const block = seededBytes(vol.blockBytes, 77);
  for (let i = 0; i < CREATE_SAMPLES; i++) {
    block[0] = i;
    await vol.write((i % 16) * vol.blockBytes, block);
    await tree.flush();
    let t0 = performance.now();
    const s = await tree.snapshot(vol.id, { name: `s${i}` });
    snapMs.push(performance.now() - t0);
    t0 = performance.now();
    const c = await tree.clone(s.id, { name: `c${i}` });
    cloneMs.push(performance.now() - t0);
    await c.close();
  }
  return { snapshotMs: median(snapMs), cloneMs: median(cloneMs) };
}

export default [
  {
    name: 'snapshot.create',
    async run({ dir, log }) {
      const results = [];
      for (const store of ['memory', 'file']) {
        const byBytes = {};
        for (const logicalBytes of [GiB, 64 * GiB]) {
          const t = store === 'memory' ? await memoryTree() : await fileTree(dir, `create-${logicalBytes}`, 64 * MiB);
          const vol = await createVolume(t.tree, { name: 'v', byteLength: logicalBytes });
          const fillMs = await timeMs(() => fillVolume(vol, false));
          await t.tree.flush();
          log(`  filled ${logicalBytes / GiB} GiB (${store}) in ${fillMs.toFixed(0)} ms`);
          byBytes[logicalBytes] = await timeCreation(t.tree, vol);
          await vol.close();
          await t.close();
        }
        for (const logicalBytes of [GiB, 64 * GiB]) {
          const durable = store === 'file';
          const common = { logicalBytes, store, durableCommitIncluded: durable, fill: 'fully mapped, 16 distinct 16 KiB extents', samples: CREATE_SAMPLES };
          results.push({ bench: 'snapshot.create', value: byBytes[logicalBytes].snapshotMs, unit: 'ms', ...common, ratio64to1: byBytes[64 * GiB].snapshotMs / byBytes[GiB].snapshotMs });
          results.push({ bench: 'clone.create', value: byBytes[logicalBytes].cloneMs, unit: 'ms', ...common, ratio64to1: byBytes[64 * GiB].cloneMs / byBytes[GiB].cloneMs });
        }
      }
      return results;
    },
  },
  {
    name: 'snapshot.diff',
    async run({ log }) {
      const t = await memoryTree();
      const logicalBytes = GiB;
      const vol = await createVolume(t.tree, { name: 'v', byteLength: logicalBytes });
      await fillVolume(vol, false);
      const base = await t.tree.snapshot(vol.id, { name: 'base' });
      const blockCount = logicalBytes / vol.blockBytes;
      // The changed content lives in a second volume so restores of `vol` keep it referenced.
      const keeper = await createVolume(t.tree, { name: 'keeper', byteLength: vol.blockBytes * 16 });
      await keeper.write(0, seededBytes(vol.blockBytes, 999));
      const [fpOther] = await knownFingerprints(keeper, 1);
      const results = [];
      const snaps = {};
      // 'scattered': every 100th block (touches every leaf); 'clustered': one contiguous run.
      const cases = [
        { key: '0.01-scattered', changedFraction: 0.01, distribution: 'scattered' },
        { key: '0.01-clustered', changedFraction: 0.01, distribution: 'clustered' },
        { key: '1', changedFraction: 1.0, distribution: 'all' },
      ];
      for (const c of cases) {
        await t.tree.restore(vol.id, base.id);
        const updates = [];
        if (c.distribution === 'clustered') {
          for (let b = 0; b < Math.round(blockCount * c.changedFraction); b++) updates.push({ blockIndex: 4096 + b, fingerprint: fpOther });
        } else {
          const stride = Math.round(1 / c.changedFraction);
          for (let b = 0; b < blockCount; b += stride) updates.push({ blockIndex: b, fingerprint: fpOther });
        }
        await vol.mapBlocks(updates);
        snaps[c.key] = { id: (await t.tree.snapshot(vol.id, { name: `changed-${c.key}` })).id };
      }
      const times = {};
      for (const { key, changedFraction, distribution } of cases) {
        const samples = [];
        let blocks = 0;
        for (let i = 0; i < 5; i++) {
          blocks = 0;
          samples.push(await timeMs(async () => {
            for await (const r of t.tree.diff(base.id, snaps[key].id)) blocks += r.blockCount;
          }));
        }
        times[key] = median(samples);
        log(`  diff ${key}: ${blocks} blocks`);
        results.push({ bench: 'snapshot.diff', value: times[key], unit: 'ms', changedFraction, distribution, changedBlocks: blocks, logicalBytes, blockBytes: vol.blockBytes });
      }
      for (const r of results) r.ratioToFullChange = r.value / times['1'];
      await t.close();
      return results;
    },
  },
  {
    name: 'volume.seqwrite',
    async run({ dir }) {
      // fsync time on this VM varies several-fold between runs, so fs and volume runs
      // alternate and each reports its median: the ratio compares like with like.
      // Issue #10's shape: unique data in 1 MiB writes into a 4 GiB volume (every 16 KiB
      // block distinct), final flush included. DRKIT_BENCH_SEQ_MIB shrinks it for a quick look.
      const REPEATS = 3;
      const SEQ_IO_BYTES = MiB;
      const byteLength = Number(process.env.DRKIT_BENCH_SEQ_MIB ?? 4096) * MiB;
      const data = seededBytes(SEQ_IO_BYTES, 5);
      const stamp = (off) => {
        for (let b = 0; b < SEQ_IO_BYTES; b += 16 * KiB) new DataView(data.buffer).setUint32(b, off + b);
      };
      const fsRuns = [];
      const writeRuns = [];
      const readRuns = [];
      for (let r = 0; r < REPEATS; r++) {
        const fsPath = join(dir, 'fs.img');
        fsRuns.push(await timeMs(async () => {
          const fd = fs.openSync(fsPath, 'w');
          for (let off = 0; off < byteLength; off += SEQ_IO_BYTES) {
            stamp(off + r);
            fs.writeSync(fd, data, 0, SEQ_IO_BYTES, off);
          }
          fs.fsyncSync(fd);
          fs.closeSync(fd);
        }));
        fs.rmSync(fsPath);
        const t = await fileTree(dir, `seq-${r}`, 64 * MiB, { writeLog: true });
        const vol = await createVolume(t.tree, { name: 'v', byteLength });
        writeRuns.push(await timeMs(async () => {
          for (let off = 0; off < byteLength; off += SEQ_IO_BYTES) {
            stamp(off + r);
            await vol.write(off, data);
          }
          await vol.flush();
        }));
        readRuns.push(await timeMs(async () => {
          for (let off = 0; off < byteLength; off += SEQ_IO_BYTES) await vol.read(off, SEQ_IO_BYTES);
        }));
        await vol.close();
        await t.close();
        fs.rmSync(join(dir, `seq-${r}.data`));
        fs.rmSync(join(dir, `seq-${r}.meta`), { recursive: true });
        fs.rmSync(join(dir, `seq-${r}.log`));
      }
      const fsMBps = mbPerSec(byteLength, median(fsRuns));
      const writeMBps = mbPerSec(byteLength, median(writeRuns));
      const common = { byteLength, ioBytes: SEQ_IO_BYTES, blockBytes: 16 * KiB, backing: 'raw files (DeviceExtentStore + LmdbMetaStore), write log on (1 MiB aligned writes bypass it)', repeats: REPEATS };
      return [
        { bench: 'fs.seqwrite', value: fsMBps, unit: 'MB/s', byteLength, ioBytes: SEQ_IO_BYTES, api: 'writeSync+fsync', fsyncIncluded: true, repeats: REPEATS, context: 'same run as volume.seqwrite' },
        { bench: 'volume.seqwrite', value: writeMBps, unit: 'MB/s', ...common, flushIncluded: true, ratioToFs: writeMBps / fsMBps },
        { bench: 'volume.seqread', value: mbPerSec(byteLength, median(readRuns)), unit: 'MB/s', ...common, cache: 'warm' },
      ];
    },
  },
  {
    name: 'volume.import',
    async run({ dir }) {
      // The standard 1 GiB workload image (bench/workload.mjs) copied into a fresh volume in
      // 1 MiB writes, final flush included: what a backup tool's first import costs.
      const byteLength = Number(process.env.DRKIT_BENCH_IMAGE_MIB ?? 1024) * MiB;
      const t = await fileTree(dir, 'import', 64 * MiB, { writeLog: true });
      const vol = await createVolume(t.tree, { name: 'v', byteLength });
      // Generating the image is not the volume's cost: only write() and flush() are timed.
      let ms = 0;
      for (const { byteOffset, data } of standardImageChunks({ byteLength })) ms += await timeMs(() => vol.write(byteOffset, data));
      ms += await timeMs(() => vol.flush());
      const stats = await t.extents.stats();
      await vol.close();
      await t.close();
      return [{ bench: 'volume.import', value: mbPerSec(byteLength, ms), unit: 'MB/s', byteLength, ioBytes: 1024 * 1024, blockBytes: 16 * KiB, image: 'standard workload (40% random, 30% text, 20% zero, 10% copies)', writeLog: true, storedExtents: stats.extentCount, flushIncluded: true }];
    },
  },
  {
    name: 'volume.randwrite4k',
    async run({ dir }) {
      // The same scattered 4 KiB writes with and without the write log, in one run.
      const byteLength = 256 * MiB;
      const writes = 16384;
      const FLUSH_EVERY = 256;
      const results = [];
      for (const writeLog of [false, true]) {
        const t = await fileTree(dir, `rand-${writeLog}`, 64 * MiB, { writeLog });
        const vol = await createVolume(t.tree, { name: 'v', byteLength });
        await fillVolume(vol, true);
        await vol.flush();
        const data = seededBytes(4 * KiB, 11);
        let x = 12345;
        const ms = await timeMs(async () => {
          for (let i = 0; i < writes; i++) {
            x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
            data[0] = i & 0xff;
            data[1] = i >> 8;
            await vol.write((x % (byteLength / (4 * KiB))) * 4 * KiB, data);
            if ((i + 1) % FLUSH_EVERY === 0) await vol.flush();
          }
        });
        // What the log deferred is still to be applied: time the drain separately.
        const drainMs = await timeMs(() => t.tree.snapshot(vol.id, { name: 'drained' }));
        await vol.close();
        await t.close();
        results.push({ bench: 'volume.randwrite4k', value: writes / (ms / 1000), unit: 'IOPS', byteLength, ioBytes: 4 * KiB, blockBytes: 16 * KiB, writes, flushEvery: FLUSH_EVERY, backing: 'raw files', writeLog, drainMs });
      }
      return results;
    },
  },
  {
    name: 'volume.deadExtents',
    async run({ dir }) {
      // Dead intermediate extents: 5% of the blocks each rewritten twice (4 KiB writes at
      // scattered offsets) between a snapshot that holds the originals and one that drains.
      const byteLength = 256 * MiB;
      const blockBytes = 16 * KiB;
      const results = [];
      for (const writeLog of [false, true]) {
        const t = await fileTree(dir, `dead-${writeLog}`, 64 * MiB, { writeLog });
        const vol = await createVolume(t.tree, { name: 'v', byteLength });
        await fillVolume(vol, true);
        await t.tree.snapshot(vol.id, { name: 'originals' });
        const blocks = byteLength / blockBytes;
        const rewritten = Math.floor(blocks * 0.05);
        const data = seededBytes(4 * KiB, 13);
        for (let pass = 0; pass < 2; pass++) {
          for (let i = 0; i < rewritten; i++) {
            data[0] = pass;
            data[1] = i & 0xff;
            const block = (i * 20 + 7) % blocks;
            await vol.write(block * blockBytes + ((i % 4) * 4 * KiB), data);
          }
        }
        await t.tree.snapshot(vol.id, { name: 'drained' });
        const { extentsDeleted } = await t.tree.reclaim();
        await vol.close();
        await t.close();
        results.push({ bench: 'volume.deadExtents', value: extentsDeleted, unit: 'count', byteLength, blockBytes, rewrittenBlocks: rewritten, passes: 2, writeLog });
      }
      return results;
    },
  },
  {
    name: 'volume.read.depth',
    async run({ dir }) {
      // Two volumes with the same content, one with 1 and one with 100 snapshots taken
      // between small writes; full sequential reads alternate between them so that
      // machine noise hits both alike, and each reports its median.
      const byteLength = 256 * MiB;
      const ROUNDS = 5;
      const setups = [];
      for (const depth of [1, 100]) {
        const t = await fileTree(dir, `depth-${depth}`, 64 * MiB);
        const vol = await createVolume(t.tree, { name: 'v', byteLength });
        await fillVolume(vol, true);
        const block = seededBytes(16 * KiB, 21);
        for (let i = 0; i < depth; i++) {
          block[0] = i;
          await vol.write(((i * 7919) % (byteLength / (16 * KiB))) * 16 * KiB, block);
          await t.tree.snapshot(vol.id, { name: `s${i}` });
        }
        setups.push({ depth, t, vol, samples: [] });
      }
      for (let r = 0; r < ROUNDS; r++) {
        for (const s of setups) {
          s.samples.push(await timeMs(async () => {
            for (let off = 0; off < byteLength; off += IO_BYTES) await s.vol.read(off, IO_BYTES);
          }));
        }
      }
      const results = setups.map((s) => ({ bench: 'volume.read.depth', value: mbPerSec(byteLength, median(s.samples)), unit: 'MB/s', depth: s.depth, byteLength, ioBytes: IO_BYTES, rounds: ROUNDS, cache: 'warm' }));
      results[1].ratioToDepth1 = results[1].value / results[0].value;
      for (const s of setups) {
        await s.vol.close();
        await s.t.close();
      }
      return results;
    },
  },
  {
    name: 'metadata.bytesPerMappedGiB',
    async run({ dir, log }) {
      const byteLength = 256 * MiB;
      const results = [];
      for (const blockBytes of [4 * KiB, 16 * KiB, 64 * KiB]) {
        const t = await fileTree(dir, `meta-${blockBytes}`, 64 * MiB);
        const vol = await createVolume(t.tree, { name: 'v', byteLength, blockBytes });
        const ms = await timeMs(() => fillVolume(vol, true));
        await vol.flush();
        await t.meta.compact?.();
        const stats = await t.meta.stats();
        const perGiB = (stats.liveBytes * GiB) / byteLength;
        // Scattered 4 KiB overwrites of 5% of the 4 KiB pages: how many bytes change at block granularity.
        const s0 = await t.tree.snapshot(vol.id, { name: 'before' });
        const pages = byteLength / (4 * KiB);
        const page = seededBytes(4 * KiB, 31);
        let x = 777;
        const touched = Math.round(pages * 0.05);
        for (let i = 0; i < touched; i++) {
          x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
          page[0] = i & 0xff;
          await vol.write((x % pages) * 4 * KiB, page);
        }
        const s1 = await t.tree.snapshot(vol.id, { name: 'after' });
        let changedBytes = 0;
        for await (const r of t.tree.diff(s0.id, s1.id)) changedBytes += r.byteLength;
        log(`  blockBytes ${blockBytes}: fill ${mbPerSec(byteLength, ms).toFixed(0)} MB/s, meta ${(stats.liveBytes / MiB).toFixed(2)} MiB, 5% scattered 4K -> ${(changedBytes / MiB).toFixed(1)} MiB changed`);
        results.push({
          bench: 'metadata.bytesPerMappedGiB',
          value: perGiB,
          unit: 'bytes',
          blockBytes,
          fractionOfMapped: perGiB / GiB,
          mappedBytes: byteLength,
          metaKeys: stats.keyCount,
          changedBytesAfter5pctScattered4k: changedBytes,
          writtenBytesAfter5pctScattered4k: touched * 4 * KiB,
          fillMBps: mbPerSec(byteLength, ms),
        });
        await vol.close();
        await t.close();
      }
      return results;
    },
  },
];
