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
    if (this.#usedBytes <= this.#budgetBytes) return;
    for (const [k, e] of this.#entries) {
      if (this.#usedBytes <= this.#budgetBytes) break;
      this.#entries.delete(k);
      this.#usedBytes -= e.costBytes;
    }
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
