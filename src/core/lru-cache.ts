/**
 * A least-recently-used cache bounded by an estimate of the bytes its entries cost.
 *
 * drkit keeps nothing that grows with stored data in the JS heap (DESIGN.md, "Scale"):
 * metadata is read from the MetaStore through caches like this one, each with a byte
 * budget. Entries are only a cache: evicting one never loses information, so callers
 * keep uncommitted (dirty) state elsewhere, pinned, and put it here only once it is clean.
 */

/** A byte-budgeted LRU map. Map iteration order is the recency order (oldest first). */
export class LruCache<K, V> {
  readonly #entries = new Map<K, { value: V; costBytes: number }>();
  readonly #budgetBytes: number;
  #usedBytes = 0;
  /** Where eviction continues: the oldest entry not yet evicted (see #evictOldest). */
  #cursor: IterableIterator<[K, { value: V; costBytes: number }]> | undefined;

  /** @param budgetBytes bytes the entries may cost in all (0 disables caching) */
  constructor(budgetBytes: number) {
    this.#budgetBytes = budgetBytes;
  }

  /** The cached value, refreshed as most recently used; undefined when absent. */
  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry.value;
  }

  /** The cached value without refreshing its recency. */
  peek(key: K): V | undefined {
    return this.#entries.get(key)?.value;
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /** Caches `value` at an estimated cost of `costBytes`, evicting the oldest entries over budget. */
  set(key: K, value: V, costBytes: number): void {
    const old = this.#entries.get(key);
    if (old !== undefined) {
      this.#usedBytes -= old.costBytes;
      this.#entries.delete(key);
    }
    if (costBytes > this.#budgetBytes) return;
    this.#entries.set(key, { value, costBytes });
    this.#usedBytes += costBytes;
    while (this.#usedBytes > this.#budgetBytes && this.#evictOldest());
  }

  /**
   * Evicts the least recently used entry. A fresh `for...of` from the start of a Map would
   * walk over every deleted slot still in its table (V8 compacts only on rehash), making
   * each eviction O(deletions) — 73% of a bulk load's time when measured. One iterator kept
   * across evictions passes each slot once: everything before it has been evicted, and an
   * entry refreshed by `get` moved to the end, ahead of it.
   */
  #evictOldest(): boolean {
    for (let attempt = 0; attempt < 2; attempt++) {
      this.#cursor ??= this.#entries.entries();
      const next = this.#cursor.next();
      if (!next.done) {
        const [k, e] = next.value;
        this.#entries.delete(k);
        this.#usedBytes -= e.costBytes;
        return true;
      }
      this.#cursor = undefined;
    }
    return false;
  }

  delete(key: K): void {
    const old = this.#entries.get(key);
    if (old === undefined) return;
    this.#usedBytes -= old.costBytes;
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
    this.#usedBytes = 0;
    this.#cursor = undefined;
  }

  /** Entries cached. */
  get size(): number {
    return this.#entries.size;
  }

  /** Estimated bytes the entries cost. */
  get usedBytes(): number {
    return this.#usedBytes;
  }

  /** The budget given at construction. */
  get budgetBytes(): number {
    return this.#budgetBytes;
  }
}
