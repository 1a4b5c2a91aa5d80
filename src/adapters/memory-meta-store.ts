/**
 * A MetaStore held entirely in memory: for tests, simulations and caches.
 *
 * Durability promise: none beyond the process. Everything is lost on `close()` or
 * process exit; `flush()` and `{ sync: true }` are accepted and do nothing, because
 * there is no medium to make durable. Batches are atomic and iteration is a
 * consistent view as of the `iterate()` call.
 */
import { DrkitError, throwIfAborted } from '../core/errors.js';
import type { IoOptions } from './block-device.js';
import type { BatchOptions, MetaOp, MetaRange, MetaStore, MetaStoreStats } from './meta-store.js';
import { checkReplaces, validateBatch } from './internal/meta-batch.js';
import { MemTable } from './internal/mem-table.js';

/** Options of {@link MemoryMetaStore.open}. */
export interface MemoryMetaStoreOptions {
  /** Cancels the open. */
  signal?: AbortSignal;
}

/** An in-memory {@link MetaStore} (ordered by a copy-on-write B+tree). */
export class MemoryMetaStore implements MetaStore {
  private readonly table = new MemTable();
  private open = true;

  private constructor() {}

  /**
   * Opens an empty store.
   * @throws ABORTED
   */
  static async open(options: MemoryMetaStoreOptions = {}): Promise<MemoryMetaStore> {
    throwIfAborted(options.signal);
    return new MemoryMetaStore();
  }

  /** @throws NOT_OPEN, INVALID_ARGUMENT, ABORTED */
  async get(key: Uint8Array, options?: IoOptions): Promise<Uint8Array | undefined> {
    this.assertOpen();
    throwIfAborted(options?.signal);
    return this.table.get(key);
  }

  /** @throws NOT_OPEN, INVALID_ARGUMENT, ABORTED */
  async getMany(keys: readonly Uint8Array[], options?: IoOptions): Promise<(Uint8Array | undefined)[]> {
    this.assertOpen();
    throwIfAborted(options?.signal);
    if (!Array.isArray(keys)) throw new DrkitError('INVALID_ARGUMENT', 'keys must be an array', { data: { name: 'keys' } });
    return keys.map((key) => this.table.get(key));
  }

  /**
   * Applies `ops` atomically: validation (each `replaces` hint checked too) happens before any op is applied.
   * @throws NOT_OPEN, INVALID_ARGUMENT, ABORTED
   */
  async batch(ops: readonly MetaOp[], options?: BatchOptions): Promise<void> {
    this.assertOpen();
    throwIfAborted(options?.signal);
    validateBatch(ops);
    checkReplaces(ops, (key) => this.table.valueBytes(key));
    this.table.apply(ops);
  }

  /** A consistent view as of this call. Errors (NOT_OPEN, INVALID_ARGUMENT, ABORTED) reject the first `next()`. */
  iterate(range?: MetaRange, options?: IoOptions): AsyncIterable<[Uint8Array, Uint8Array]> {
    return this.table.iterate(range, options, () => this.assertOpen());
  }

  /** Nothing to make durable. @throws NOT_OPEN, ABORTED */
  async flush(options?: IoOptions): Promise<void> {
    this.assertOpen();
    throwIfAborted(options?.signal);
  }

  /** @throws NOT_OPEN */
  async stats(): Promise<MetaStoreStats> {
    this.assertOpen();
    return { keyCount: this.table.keyCount, liveBytes: this.table.liveBytes, storedBytes: this.table.liveBytes };
  }

  /** Drops the contents. Idempotent. */
  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    this.table.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private assertOpen(): void {
    if (!this.open) throw new DrkitError('NOT_OPEN', 'MemoryMetaStore is closed');
  }
}
