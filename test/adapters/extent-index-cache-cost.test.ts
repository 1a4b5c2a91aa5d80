// The extent index cache's byte budget is honest (issue #13 item 5): what one cached
// entry really costs on the heap, decoded from its stored form as a lookup caches it,
// stays within CACHED_ENTRY_BYTES, the cost the cache charges per entry.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { LruCache } from '../../src/core/lru-cache.js';
import { fingerprintKey } from '../../src/adapters/internal/extent-checks.js';
import { decodeEntry, encodeEntry } from '../../src/adapters/internal/extent-index-codec.js';
import { CACHED_ENTRY_BYTES } from '../../src/adapters/internal/extent-index.js';
import { SeededPrng } from '../../src/testing/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap bytes per cached entry for `count` entries, each decoded from its stored form. */
function heapBytesPerCachedEntry(count: number, encoded: boolean): number {
  const prng = new SeededPrng(5);
  const stored = Array.from({ length: count }, (_, i) =>
    encodeEntry({
      byteOffset: i * 16384,
      byteLength: 9000 + prng.below(7000),
      checksum: BigInt(prng.below(2 ** 30)) * 0x1_0000_0001n,
      ...(encoded ? { encoded: { codec: 2, rawLength: 16384, contentChecksum: BigInt(prng.below(2 ** 30)) * 0x3_0000_0007n } } : {}),
    }),
  );
  const keys = Array.from({ length: count }, () => prng.fill(new Uint8Array(32)));
  const cache = new LruCache<string, unknown>(count * CACHED_ENTRY_BYTES * 2);
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) cache.set(fingerprintKey(keys[i]!, 'test'), decodeEntry(stored[i]!), CACHED_ENTRY_BYTES);
  gc();
  const after = process.memoryUsage().heapUsed;
  expect(cache.size).toBe(count);
  expect(stored.length + keys.length).toBe(2 * count); // both kept alive through the measurement
  return (after - before) / count;
}

describe('extent index cache cost', () => {
  it.each([false, true])('a cached entry (encoded: %s) costs at most CACHED_ENTRY_BYTES of heap', (encoded) => {
    const perEntry = heapBytesPerCachedEntry(20_000, encoded);
    expect(perEntry).toBeGreaterThan(CACHED_ENTRY_BYTES / 4); // the measurement sees the entries
    expect(perEntry).toBeLessThanOrEqual(CACHED_ENTRY_BYTES);
  });
});

describe('ExtentIndex lookups of a bulk reader', () => {
  it('are answered but not cached (cacheMisses: false), while ordinary lookups are', async () => {
    const { ExtentIndex } = await import('../../src/adapters/internal/extent-index.js');
    const { MemoryMetaStore } = await import('../../src/adapters/index.js');
    const meta = await MemoryMetaStore.open();
    const index = new ExtentIndex(meta, new TextEncoder().encode('x/'), 1024 * 1024);
    const keys = Array.from({ length: 100 }, (_, i) => fingerprintKey(new Uint8Array(32).fill(i + 1), 'test'));
    keys.forEach((key, i) => index.put(key, { byteOffset: i * 4096, byteLength: 4096, checksum: BigInt(i) }));
    const { ops, committed } = index.takeCommitOps();
    await meta.batch(ops);
    committed();
    expect(index.cachedCount).toBe(0);
    const bulk = await index.lookupMany(keys.slice(0, 50), { cacheMisses: false });
    expect(bulk.map((e) => e?.byteOffset)).toEqual(keys.slice(0, 50).map((_, i) => i * 4096));
    expect(index.cachedCount).toBe(0);
    await index.lookupMany(keys.slice(50));
    expect(index.cachedCount).toBe(50);
  });
});
