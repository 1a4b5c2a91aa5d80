/**
 * The extent index of a DeviceExtentStore (fingerprint -> byteOffset, byteLength,
 * xxh64), as seen by the store: the persisted entries in the MetaStore, read through a
 * byte-budgeted LRU cache, plus the changes not yet committed (pinned in memory, bounded
 * by the store's `maxPendingIndexOps`). Nothing here grows with the number of extents.
 *
 * Cache coherence: an entry read from the MetaStore is cached only if no commit happened
 * while the read was in flight (a commit generation guards it), so the cache never holds
 * an entry older than the last commit; a commit moves its puts into the cache and drops
 * its deletes from it.
 */
import { bytesToKey, concatBytes, keyToBytes } from '../../core/bytes.js';
import { LruCache } from '../../core/lru-cache.js';
import type { MetaOp, MetaStore } from '../meta-store.js';
import { INDEX_TAG, decodeEntry, encodeEntry, type IndexEntry } from './extent-index-codec.js';

/**
 * Heap bytes one cached entry costs: the key string, the entry object with its bigint,
 * the stored form's object and bigint (most entries: compression at rest) and the cache's
 * map slot. Measured on Node 20 (test/adapters/extent-index-cache-cost.test.ts): 209 B
 * plain, 285 B with a stored form (the old estimate, 180, let a 16 MiB cache hold ~2x
 * its budget; issue #13). Erring high keeps the cache within its budget.
 */
export const CACHED_ENTRY_BYTES = 320;

/** What a lookup finds: the entry, or undefined when the store does not hold the extent. */
export type Lookup = IndexEntry | undefined;

/** Persisted index + cache + uncommitted changes. Callers serialise mutations. */
export class ExtentIndex {
  readonly #meta: MetaStore;
  readonly #entryPrefix: Uint8Array;
  readonly #cache: LruCache<string, IndexEntry>;
  /** Uncommitted changes: an entry (put) or undefined (delete). Latest per fingerprint wins. */
  #pending = new Map<string, Lookup>();
  #commitGeneration = 0;

  constructor(meta: MetaStore, prefix: Uint8Array, cacheBytes: number) {
    this.#meta = meta;
    this.#entryPrefix = concatBytes([prefix, Uint8Array.of(INDEX_TAG.entry)]);
    this.#cache = new LruCache(cacheBytes);
  }

  /** MetaStore prefix of every entry (for iteration). */
  get entryPrefix(): Uint8Array {
    return this.#entryPrefix;
  }

  /** Uncommitted changes held in memory. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Entries cached (for tests and stats). */
  get cachedCount(): number {
    return this.#cache.size;
  }

  /**
   * The entries of `keys` (bytesToKey of fingerprints), with one MetaStore call for the
   * misses, which are cached unless `cacheMisses` is false (a bulk reader's lookups).
   */
  async lookupMany(keys: readonly string[], options: { cacheMisses?: boolean } = {}): Promise<Lookup[]> {
    const cacheMisses = options.cacheMisses !== false;
    const out: Lookup[] = new Array(keys.length);
    const missIdx: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (this.#pending.has(key)) {
        out[i] = this.#pending.get(key);
        continue;
      }
      const cached = this.#cache.get(key);
      if (cached !== undefined) out[i] = cached;
      else missIdx.push(i);
    }
    if (missIdx.length === 0) return out;
    const generation = this.#commitGeneration;
    const values = await this.#meta.getMany(missIdx.map((i) => this.metaKey(keys[i]!)));
    const coherent = generation === this.#commitGeneration;
    missIdx.forEach((i, j) => {
      const value = values[j];
      const key = keys[i]!;
      // A change made while the read was in flight wins over what the read saw.
      if (this.#pending.has(key)) {
        out[i] = this.#pending.get(key);
        return;
      }
      const entry = value === undefined ? undefined : decodeEntry(value);
      out[i] = entry;
      if (entry !== undefined && coherent && cacheMisses) this.#cache.set(key, entry, CACHED_ENTRY_BYTES);
    });
    return out;
  }

  /** Records a put (committed with the next {@link takeCommitOps}). */
  put(key: string, entry: IndexEntry): void {
    this.#pending.set(key, entry);
    this.#cache.delete(key);
  }

  /** Records a delete. */
  delete(key: string): void {
    this.#pending.set(key, undefined);
    this.#cache.delete(key);
  }

  /**
   * The ops persisting the pending changes, and a function to call once they are
   * committed (it moves them into the cache). On failure, call nothing: they stay pending.
   */
  takeCommitOps(): { ops: MetaOp[]; committed: () => void } {
    const taken = this.#pending;
    const ops: MetaOp[] = [];
    for (const [key, entry] of taken) {
      ops.push(entry === undefined ? { kind: 'del', key: this.metaKey(key) } : { kind: 'put', key: this.metaKey(key), value: encodeEntry(entry) });
    }
    const committed = (): void => {
      this.#commitGeneration++;
      // Committed puts are not cached: a stream of new extents would only churn the cache
      // (and leave its evictions to the garbage collector); a later read caches them.
      for (const [key, entry] of taken) {
        // A change recorded after the ops were taken stays pending.
        if (this.#pending.get(key) === entry && this.#pending.has(key)) this.#pending.delete(key);
      }
    };
    return { ops, committed };
  }

  /** Forgets the cache and the uncommitted changes (at close). */
  clear(): void {
    this.#cache.clear();
    this.#pending.clear();
  }

  /** The MetaStore key of a fingerprint key. */
  metaKey(key: string): Uint8Array {
    return concatBytes([this.#entryPrefix, keyToBytes(key)]);
  }

  /** The fingerprint key of a MetaStore entry key. */
  keyOf(metaKey: Uint8Array): string {
    return bytesToKey(metaKey.subarray(this.#entryPrefix.byteLength));
  }
}
