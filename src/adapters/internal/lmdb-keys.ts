/**
 * Key layout of {@link LmdbMetaStore} inside its LMDB database, and the mapping of a
 * {@link MetaRange} onto lmdb-js `getRange` options.
 *
 * Every stored key starts with one namespace byte: {@link USER_KEY_PREFIX} for the
 * caller's keys (so the contract's empty key becomes the one-byte LMDB key 0x01, and
 * LMDB, which refuses zero-length keys, can hold it) and {@link INTERNAL_KEY_PREFIX} for
 * the store's own records. Prefixing keeps bytewise order among user keys.
 */
import { normalizeRange } from './meta-range.js';
import type { MetaRange } from '../meta-store.js';

/** Namespace byte of the store's own records (format version, live-bytes counter). */
export const INTERNAL_KEY_PREFIX = 0x00;
/** Namespace byte of every caller key. */
export const USER_KEY_PREFIX = 0x01;

/**
 * Largest key LMDB holds with lmdb-js's default page size: 1978 bytes (lmdb-js caps
 * `mdb_env_get_maxkeysize` there so a store stays portable across 4 KiB and 16 KiB pages).
 */
export const LMDB_MAX_STORED_KEY_BYTES = 1978;

/** The stored form of a caller key: a fresh Buffer, prefix byte then the key. */
export function toStoredKey(key: Uint8Array): Buffer {
  const stored = Buffer.allocUnsafe(key.length + 1);
  stored[0] = USER_KEY_PREFIX;
  stored.set(key, 1);
  return stored;
}

/** The stored form of an internal record's name. */
export function internalKey(name: string): Buffer {
  return Buffer.from(String.fromCharCode(INTERNAL_KEY_PREFIX) + name, 'latin1');
}

/** A fresh, plain Uint8Array copy of `bytes[start..]`: never aliases lmdb-js's reused buffers. */
export function copyBytes(bytes: Uint8Array, start = 0): Uint8Array {
  return new Uint8Array(bytes.subarray(start, bytes.length));
}

/** lmdb-js `getRange` options for one {@link MetaRange} over user keys, or undefined when it is empty. */
export interface LmdbRangeOptions {
  start: Buffer;
  end: Buffer;
  reverse: boolean;
  exclusiveStart: boolean;
  inclusiveEnd: boolean;
  /** Entries to yield at most; Infinity when unlimited. */
  limit: number;
}

interface Bound {
  key: string;
  strict: boolean;
}

/**
 * Validates `range` (the shared {@link normalizeRange} checks) and maps it onto the user
 * namespace. A bound longer than `maxKeyBytes` (no stored key can equal it) is replaced
 * by its `maxKeyBytes`-byte prefix P, which is exact: for keys of at most that length,
 * `k >= B` and `k > B` both mean `k > P`, and `k <= B` and `k < B` both mean `k <= P`.
 * @throws INVALID_ARGUMENT
 */
export function toLmdbRange(range: MetaRange | undefined, maxKeyBytes: number): LmdbRangeOptions | undefined {
  const { keyRange, limit, empty } = normalizeRange(range);
  if (empty) return undefined;
  const clampLow = (b: Bound | undefined): Bound | undefined =>
    b !== undefined && b.key.length > maxKeyBytes ? { key: b.key.slice(0, maxKeyBytes), strict: true } : b;
  const clampHigh = (b: Bound | undefined): Bound | undefined =>
    b !== undefined && b.key.length > maxKeyBytes ? { key: b.key.slice(0, maxKeyBytes), strict: false } : b;
  const low = clampLow(
    keyRange.gt !== undefined ? { key: keyRange.gt, strict: true } : keyRange.gte !== undefined ? { key: keyRange.gte, strict: false } : undefined,
  );
  const high = clampHigh(
    keyRange.lt !== undefined ? { key: keyRange.lt, strict: true } : keyRange.lte !== undefined ? { key: keyRange.lte, strict: false } : undefined,
  );
  const user = (key: string): Buffer => Buffer.from(String.fromCharCode(USER_KEY_PREFIX) + key, 'latin1');
  // Namespace ends: [0x01] is the empty user key (inclusive), [0x02] lies past every user key.
  const lowKey = low !== undefined ? user(low.key) : Buffer.of(USER_KEY_PREFIX);
  const lowStrict = low?.strict ?? false;
  const highKey = high !== undefined ? user(high.key) : Buffer.of(USER_KEY_PREFIX + 1);
  const highStrict = high?.strict ?? true;
  // lmdb-js: `start` is where the cursor begins (the high end when reversed); `end` is
  // exclusive unless `inclusiveEnd`.
  return keyRange.reverse === true
    ? { start: highKey, end: lowKey, reverse: true, exclusiveStart: highStrict, inclusiveEnd: !lowStrict, limit }
    : { start: lowKey, end: highKey, reverse: false, exclusiveStart: lowStrict, inclusiveEnd: !highStrict, limit };
}
