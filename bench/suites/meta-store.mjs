// MetaStore benches: durable commit throughput of the persistent stores (LmdbMetaStore, the
// default, and FileMetaStore, the log for raw partitions), with group commit.
import { join } from 'node:path';
import { FileMetaStore, LmdbMetaStore } from '../../dist/adapters/node.js';

const STORES = {
  LmdbMetaStore: (dir, name) => LmdbMetaStore.open({ path: join(dir, name), create: true }),
  FileMetaStore: (dir, name) => FileMetaStore.open({ path: join(dir, `${name}.drkm`), create: true }),
};
import { seededBytes, timeMs } from './../util.mjs';

/** Keys per batch, key and value sizes: a typical block-map / extent-index commit. */
const KEYS_PER_BATCH = 100;
const KEY_BYTES = 32;
const VALUE_BYTES = 64;
/** Batches per committer per measured run: enough to dominate open/close, short on 2 cores. */
const BATCHES_PER_RUN = { 1: 400, 16: 60 };

function makeBatch(seed) {
  const keys = seededBytes(KEYS_PER_BATCH * KEY_BYTES, seed);
  const values = seededBytes(KEYS_PER_BATCH * VALUE_BYTES, seed + 1);
  return Array.from({ length: KEYS_PER_BATCH }, (_, i) => ({
    kind: 'put',
    key: keys.subarray(i * KEY_BYTES, (i + 1) * KEY_BYTES),
    value: values.subarray(i * VALUE_BYTES, (i + 1) * VALUE_BYTES),
  }));
}

export default [
  {
    name: 'metastore.commit',
    async run({ dir, log }) {
      const results = [];
      for (const [storeName, open] of Object.entries(STORES)) for (const concurrency of [1, 16]) {
        const store = await open(dir, `commit-${storeName}-${concurrency}`);
        const perCommitter = BATCHES_PER_RUN[concurrency];
        const batches = Array.from({ length: concurrency * perCommitter }, (_, i) => makeBatch(i * 2 + 1));
        // Warm-up: JIT and file growth.
        for (let i = 0; i < 20; i++) await store.batch(batches[i], { sync: true });
        const ms = await timeMs(() =>
          Promise.all(
            Array.from({ length: concurrency }, async (_, c) => {
              for (let i = 0; i < perCommitter; i++) await store.batch(batches[c * perCommitter + i], { sync: true });
            }),
          ),
        );
        const total = concurrency * perCommitter;
        const stats = await store.stats();
        await store.close();
        log(`metastore.commit: ${storeName}, ${total} durable batches, concurrency ${concurrency}, ${ms.toFixed(0)} ms, ${stats.keyCount} keys`);
        results.push({ bench: 'metastore.commit', value: total / (ms / 1000), unit: 'batches/s', store: storeName, concurrency, keysPerBatch: KEYS_PER_BATCH, keyBytes: KEY_BYTES, valueBytes: VALUE_BYTES });
      }
      return results;
    },
  },
];
