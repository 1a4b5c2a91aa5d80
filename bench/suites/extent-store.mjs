// ExtentStore benches: DeviceExtentStore over a RawFileBlockDevice (data) and a
// LmdbMetaStore (index) in the bench dir, 64 KiB extents, 256 MiB per run.
// extentstore.put is durable: each batch of 64 extents is fingerprinted (sha256, in the
// timed loop), put, then flushed (device fdatasync + durable index commit), and all of
// that is in the time. sha256 alone over the same data is reported as a parameter so the
// store's own cost can be told apart. extentstore.get reopens the store (index reload
// not timed) and reads everything back with getMany in batches of 64, checksum verified;
// the OS page cache is warm from the writes. Each bench runs REPEATS times, median reported.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { DeviceExtentStore } from '../../dist/adapters/index.js';
import { LmdbMetaStore, RawFileBlockDevice } from '../../dist/adapters/node.js';
import { timeMs, median, mbPerSec, seededBytes } from '../util.mjs';

/** Repeats per bench: odd, so the median is a measured run (fsync time varies run to run). */
const REPEATS = 3;
const EXTENT_BYTES = 64 * 1024;
const TOTAL_BYTES = 256 * 1024 * 1024;
const EXTENT_COUNT = TOTAL_BYTES / EXTENT_BYTES;
/** Extents per put call (and per flush): one writev and one durable index batch each. */
const BATCH_EXTENTS = 64;

// Distinct content for every extent (no dedup hits): one seeded buffer, sliced.
// Made on first use, not at import: run.mjs loads every suite before running any, and
// 256 MiB allocated here counted in the peak RSS of every other bench (issue #13).
let data;
const extentData = (i) => (data ??= seededBytes(TOTAL_BYTES, 42)).subarray(i * EXTENT_BYTES, (i + 1) * EXTENT_BYTES);
const sha256 = (bytes) => new Uint8Array(createHash('sha256').update(bytes).digest());

async function openStore(dir, run, create) {
  const device = await RawFileBlockDevice.open({
    path: join(dir, `data-${run}`),
    // Sparse: the file costs nothing until written; sized so the store need not grow it.
    create: create ? { byteLength: TOTAL_BYTES + 16 * 1024 * 1024, overwrite: true } : undefined,
  });
  const meta = await LmdbMetaStore.open({ path: join(dir, `meta-${run}`), create });
  const store = await DeviceExtentStore.open({ device, meta });
  return {
    store,
    async close() {
      await store.close();
      await meta.close();
      await device.close();
    },
  };
}

async function putAll(store) {
  for (let i = 0; i < EXTENT_COUNT; i += BATCH_EXTENTS) {
    const batch = [];
    for (let j = i; j < i + BATCH_EXTENTS; j++) {
      const data = extentData(j);
      batch.push({ fingerprint: sha256(data), data });
    }
    await store.put(batch);
    await store.flush();
  }
}

const params = {
  extentBytes: EXTENT_BYTES,
  totalBytes: TOTAL_BYTES,
  batchExtents: BATCH_EXTENTS,
  repeats: REPEATS,
  device: 'RawFileBlockDevice',
  meta: 'LmdbMetaStore',
};

function sha256MBps() {
  const ms = [];
  for (let r = 0; r < REPEATS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < EXTENT_COUNT; i++) sha256(extentData(i));
    ms.push(performance.now() - t0);
  }
  return Number(mbPerSec(TOTAL_BYTES, median(ms)).toFixed(1));
}

export default [
  {
    name: 'extentstore.put',
    async run({ dir, log }) {
      const values = [];
      for (let r = 0; r < REPEATS; r++) {
        const s = await openStore(dir, `put-${r}`, true);
        const ms = await timeMs(() => putAll(s.store));
        const stats = await s.store.stats();
        if (stats.extentCount !== EXTENT_COUNT) throw new Error(`stored ${stats.extentCount} extents, expected ${EXTENT_COUNT}`);
        await s.close();
        values.push(mbPerSec(TOTAL_BYTES, ms));
        log(`extentstore.put run ${r}: ${values[r].toFixed(1)} MB/s`);
      }
      return [{ bench: 'extentstore.put', value: median(values), unit: 'MB/s', ...params, durable: true, fingerprint: 'sha256 included', sha256OnlyMBps: sha256MBps() }];
    },
  },
  {
    name: 'extentstore.get',
    async run({ dir, log }) {
      const fingerprints = Array.from({ length: EXTENT_COUNT }, (_, i) => sha256(extentData(i)));
      const setup = await openStore(dir, 'get', true);
      await putAll(setup.store);
      await setup.close();
      const values = [];
      for (let r = 0; r < REPEATS; r++) {
        const s = await openStore(dir, 'get', false);
        let bytes = 0;
        const ms = await timeMs(async () => {
          for (let i = 0; i < EXTENT_COUNT; i += BATCH_EXTENTS) {
            const got = await s.store.getMany(fingerprints.slice(i, i + BATCH_EXTENTS));
            for (const g of got) bytes += g.byteLength;
          }
        });
        await s.close();
        if (bytes !== TOTAL_BYTES) throw new Error(`read ${bytes} bytes, expected ${TOTAL_BYTES}`);
        values.push(mbPerSec(TOTAL_BYTES, ms));
        log(`extentstore.get run ${r}: ${values[r].toFixed(1)} MB/s`);
      }
      return [{ bench: 'extentstore.get', value: median(values), unit: 'MB/s', ...params, verified: 'xxh64', cache: 'page cache warm' }];
    },
  },
];
