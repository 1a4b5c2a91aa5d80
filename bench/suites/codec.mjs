// Codec benches: do worker threads pay for lz4 and SHA-256 on this machine?
// codec.compress / codec.decompress / codec.fingerprint, in MB/s of raw (logical) bytes,
// on 16 KiB extents in batches of 256 (4 MiB), for `workers` = 0 (ExtentCodec /
// sha256Fingerprinter called in the event-loop thread, no pool) and CodecPool with 1 and
// 2 workers. The pool runs are pipelined: up to pool.maxPendingBatches batches in flight,
// as a replication sender would keep them, and include the packing copy and the two
// messages per batch. Data: `text` = the text-like regions of the standard workload
// (bench/workload.mjs, lz4 ~2.2x at 16 KiB), `random` = incompressible (passes through).
// Each measurement runs ROUNDS times over TOTAL_BYTES, worker counts interleaved; the
// median is reported with `speedup` over workers=0 and `cpuPerWall`, the process's CPU
// time (all threads) over wall time: a pool of 2 that shows ~1.0 did not get a second
// core (the machine is shared), so its speedup says nothing about what 2 cores give.
import { CodecPool, ExtentCodec, sha256Fingerprinter } from '../../dist/dedup/index.js';
import { timeMs, median, mbPerSec, seededBytes } from '../util.mjs';
import { KIND, REGION_BYTES, fillRegion, regionPlan } from '../workload.mjs';

/** Interleaved rounds per measurement; the median is reported (odd: a measured run). */
const ROUNDS = 5;
const EXTENT_BYTES = 16 * 1024;
const BATCH_EXTENTS = 256;
/** 64 MiB per measurement: 16 batches, long enough to time, short enough for 2 cores. */
const TOTAL_BYTES = 64 * 1024 * 1024;
const WORKER_COUNTS = [0, 1, 2];

function textData() {
  const plan = regionPlan({ byteLength: 4 * TOTAL_BYTES, seed: 4 });
  const out = new Uint8Array(TOTAL_BYTES);
  let filled = 0;
  for (let i = 0; i < plan.regionCount && filled < TOTAL_BYTES; i++) {
    if (plan.kinds[i] !== KIND.text) continue;
    fillRegion(plan, i, out.subarray(filled, filled + REGION_BYTES));
    filled += REGION_BYTES;
  }
  if (filled < TOTAL_BYTES) throw new Error('not enough text regions');
  return out;
}

/** The data as batches of BATCH_EXTENTS extents (views, no copies). */
function batchesOf(data) {
  const batches = [];
  for (let b = 0; b < data.byteLength; b += EXTENT_BYTES * BATCH_EXTENTS) {
    const batch = [];
    for (let e = 0; e < BATCH_EXTENTS; e++) {
      const at = b + e * EXTENT_BYTES;
      batch.push(data.subarray(at, at + EXTENT_BYTES));
    }
    batches.push(batch);
  }
  return batches;
}

/** Runs `call(batch)` over all batches with up to `window` in flight, in order. */
async function pipelined(batches, window, call) {
  const inflight = [];
  const results = [];
  for (const batch of batches) {
    if (inflight.length >= window) results.push(await inflight.shift());
    inflight.push(call(batch));
  }
  while (inflight.length > 0) results.push(await inflight.shift());
  return results;
}

export default [
  {
    name: 'codec',
    async run({ log }) {
      const codec = await ExtentCodec.open();
      const pools = new Map();
      for (const workers of WORKER_COUNTS) if (workers > 0) pools.set(workers, await CodecPool.open({ workerCount: workers }));
      const inputs = { text: textData(), random: seededBytes(TOTAL_BYTES, 7) };
      const results = [];
      const params = { extentBytes: EXTENT_BYTES, batchExtents: BATCH_EXTENTS, totalBytes: TOTAL_BYTES, rounds: ROUNDS };
      try {
        for (const [data, bytes] of Object.entries(inputs)) {
          const batches = batchesOf(bytes);
          // Encoded form, for decompress: made once in-thread.
          const encoded = batches.map((batch) => batch.map((e) => ({ ...codec.compress(e), rawLength: e.byteLength })));
          let wireBytes = 0;
          for (const batch of encoded) for (const e of batch) wireBytes += e.bytes.byteLength;
          const ratio = Number((TOTAL_BYTES / wireBytes).toFixed(3));
          log(`codec: ${data} lz4 ratio ${ratio}`);
          const ops = {
            'codec.compress': (pool) =>
              pool ? pipelined(batches, pool.maxPendingBatches, (b) => pool.compressBatch(b)) : batches.forEach((b) => b.forEach((e) => codec.compress(e))),
            'codec.decompress': (pool) =>
              pool
                ? pipelined(encoded, pool.maxPendingBatches, (b) => pool.decompressBatch(b))
                : encoded.forEach((b) => b.forEach((e) => codec.decompress(e.codec, e.bytes, e.rawLength))),
          };
          if (data === 'random') {
            ops['codec.fingerprint'] = (pool) =>
              pool ? pipelined(batches, pool.maxPendingBatches, (b) => pool.fingerprintBatch(b)) : batches.forEach((b) => b.forEach((e) => sha256Fingerprinter.fingerprint(e)));
          }
          for (const [bench, op] of Object.entries(ops)) {
            // Rounds interleave the worker counts, so a slow spell of a shared machine
            // hits all of them alike instead of one.
            const times = new Map(WORKER_COUNTS.map((w) => [w, []]));
            const cpu = new Map(WORKER_COUNTS.map((w) => [w, []]));
            for (let round = 0; round < ROUNDS; round++) {
              for (const workers of WORKER_COUNTS) {
                const before = process.cpuUsage();
                const ms = await timeMs(() => op(pools.get(workers)));
                const used = process.cpuUsage(before);
                times.get(workers).push(ms);
                cpu.get(workers).push((used.user + used.system) / 1000 / ms);
              }
            }
            const base = median(times.get(0));
            for (const workers of WORKER_COUNTS) {
              const ms = median(times.get(workers));
              const extra = bench === 'codec.fingerprint' ? { algorithm: 'sha256' } : { ratio };
              results.push({
                bench,
                value: mbPerSec(TOTAL_BYTES, ms),
                unit: 'MB/s',
                data,
                workers,
                speedup: Number((base / ms).toFixed(2)),
                cpuPerWall: Number(median(cpu.get(workers)).toFixed(2)),
                ...extra,
                ...params,
              });
            }
          }
        }
      } finally {
        for (const pool of pools.values()) await pool.close();
      }
      return results;
    },
  },
];
