/**
 * The MetaStore contract: a durable, ordered key-value store with atomic batches. All
 * drkit metadata (block-map nodes, snapshot records, extent index, checkpoints, policy
 * state) lives in one.
 *
 * Durability promise: a batch is atomic and visible to reads once `batch()` resolves;
 * it is durable once a later `flush()` resolves (or at once with `{ sync: true }`).
 * After a crash a reopen shows a prefix of the batches in commit order that contains
 * every durable batch, and never part of a batch.
 *
 * Keys and values are bytes; keys order by unsigned bytewise comparison.
 */
import type { IoOptions } from './block-device.js';

/**
 * One operation of an atomic batch.
 *
 * `replaces` is optional knowledge the caller has of the key before this op (after the
 * batch's earlier ops): the byte length of the value it holds, or `null` when it holds
 * none. It never changes what the op does; it lets a store keep its exact
 * {@link MetaStoreStats} without reading the key again. `LmdbMetaStore` trusts it
 * (a random read per op saved: a shadowed leaf's ~200 count updates); the stores that
 * hold their data in memory check it and refuse a wrong one with INVALID_ARGUMENT, so a
 * caller's tests catch a wrong hint. Leave it out unless it is known for certain.
 */
export type MetaOp =
  | { readonly kind: 'put'; readonly key: Uint8Array; readonly value: Uint8Array; readonly replaces?: number | null }
  | { readonly kind: 'del'; readonly key: Uint8Array; readonly replaces?: number | null };

/** A key range for iteration. Bounds combine (all must hold); `prefix` is shorthand for a range. */
export interface MetaRange {
  gt?: Uint8Array;
  gte?: Uint8Array;
  lt?: Uint8Array;
  lte?: Uint8Array;
  prefix?: Uint8Array;
  /** Iterate in descending key order. @defaultValue false */
  reverse?: boolean;
  /** Stop after this many entries. @defaultValue unlimited */
  limit?: number;
}

/** Options of {@link MetaStore.batch}. */
export interface BatchOptions extends IoOptions {
  /** Make the batch durable before resolving (batch + flush). @defaultValue false */
  sync?: boolean;
}

/** Counters a store reports. */
export interface MetaStoreStats {
  /** Live keys. */
  readonly keyCount: number;
  /** Bytes of live keys + values. */
  readonly liveBytes: number;
  /** Bytes the store occupies on its medium (>= liveBytes for a log). */
  readonly storedBytes: number;
}

/** A durable ordered key-value store. Errors are `DrkitError`s (`NOT_OPEN`, `CORRUPTION`, `IO_ERROR`, ...). */
export interface MetaStore {
  /** The value at `key`, or undefined. */
  get(key: Uint8Array, options?: IoOptions): Promise<Uint8Array | undefined>;
  /** Values of several keys, in request order. */
  getMany(keys: readonly Uint8Array[], options?: IoOptions): Promise<(Uint8Array | undefined)[]>;
  /** Applies all `ops` atomically, in order. */
  batch(ops: readonly MetaOp[], options?: BatchOptions): Promise<void>;
  /**
   * Entries in key order within `range`, as a consistent view of the store at the
   * moment iteration starts (later batches are not seen).
   */
  iterate(range?: MetaRange, options?: IoOptions): AsyncIterable<[key: Uint8Array, value: Uint8Array]>;
  /** Durability barrier for every batch that resolved before the call. */
  flush(options?: IoOptions): Promise<void>;
  /** Counters. */
  stats(): Promise<MetaStoreStats>;
  /** Releases resources. Idempotent. Unflushed batches may be lost. */
  close(): Promise<void>;
}
