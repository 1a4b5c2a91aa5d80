/**
 * An ExtentStore held in memory, for tests, simulations and caches.
 *
 * Integrity promise: each extent is stored as a private copy together with its xxh64,
 * and every get verifies the copy against it, so damage to the stored bytes (see
 * {@link MemoryExtentStore.corruptForTesting}) surfaces as `CORRUPTION`, never as wrong
 * bytes. Durability promise: none beyond the process (`durableFlush: false`); `flush()`
 * only checks the handle is open.
 */
import type { IoOptions } from './block-device.js';
import type { ExtentInfo, ExtentPut, ExtentStore, ExtentStoreCapabilities, ExtentStoreStats } from './extent-store.js';
import { loadXxh64, type Xxh64 } from '../core/checksum.js';
import { DrkitError } from '../core/errors.js';
import { assertNonNegativeInteger, assertPositiveInteger } from '../core/validate.js';
import {
  DEFAULT_MAX_EXTENT_BYTES,
  checkIoOptions,
  checkPuts,
  extentCorruption,
  extentNotFound,
  fingerprintKey,
  fingerprintKeys,
} from './internal/extent-checks.js';

/** Options of {@link MemoryExtentStore.open}. */
export interface MemoryExtentStoreOptions {
  /** Largest extent accepted. @defaultValue 4 MiB (see DeviceExtentStore for why) */
  maxExtentBytes?: number;
}

interface StoredExtent {
  readonly fingerprint: Uint8Array;
  readonly data: Uint8Array;
  readonly checksum: bigint;
}

/** A verified, non-durable {@link ExtentStore} in memory. */
export class MemoryExtentStore implements ExtentStore {
  readonly capabilities: Readonly<ExtentStoreCapabilities>;
  readonly #xxh: Xxh64;
  /** Fingerprint binary string -> extent; binary strings sort like the bytes. */
  readonly #extents = new Map<string, StoredExtent>();
  #extentBytes = 0;
  #open = true;

  private constructor(xxh: Xxh64, maxExtentBytes: number) {
    this.#xxh = xxh;
    this.capabilities = Object.freeze({ durableFlush: false, maxExtentBytes });
  }

  /**
   * Opens an empty store.
   * @throws INVALID_ARGUMENT for bad options
   */
  static async open(options: MemoryExtentStoreOptions = {}): Promise<MemoryExtentStore> {
    if (options === null || typeof options !== 'object') {
      throw new DrkitError('INVALID_ARGUMENT', 'MemoryExtentStore.open: options must be an object');
    }
    const maxExtentBytes = options.maxExtentBytes ?? DEFAULT_MAX_EXTENT_BYTES;
    assertPositiveInteger(maxExtentBytes, 'maxExtentBytes');
    return new MemoryExtentStore(await loadXxh64(), maxExtentBytes);
  }

  /** Stores copies of the extents not already present. @throws INVALID_ARGUMENT, CORRUPTION, NOT_OPEN, ABORTED */
  async put(extents: readonly ExtentPut[], options?: IoOptions): Promise<void> {
    this.#enter(options, 'put');
    const checked = checkPuts(extents, this.capabilities.maxExtentBytes, this.#xxh, 'put');
    for (const p of checked) {
      if (this.#extents.has(p.key)) continue;
      this.#extents.set(p.key, { fingerprint: p.fingerprint.slice(), data: p.data.slice(), checksum: p.checksum });
      this.#extentBytes += p.data.byteLength;
    }
  }

  /** A verified copy of the extent. @throws EXTENT_NOT_FOUND, CORRUPTION, INVALID_ARGUMENT, NOT_OPEN, ABORTED */
  async get(fingerprint: Uint8Array, options?: IoOptions): Promise<Uint8Array> {
    this.#enter(options, 'get');
    return this.#read(fingerprintKey(fingerprint, 'get'), fingerprint);
  }

  /** Verified copies, in request order. @throws EXTENT_NOT_FOUND, CORRUPTION, INVALID_ARGUMENT, NOT_OPEN, ABORTED */
  async getMany(fingerprints: readonly Uint8Array[], options?: IoOptions): Promise<Uint8Array[]> {
    this.#enter(options, 'getMany');
    const keys = fingerprintKeys(fingerprints, 'getMany');
    return keys.map((key, i) => this.#read(key, fingerprints[i]!));
  }

  /** @throws INVALID_ARGUMENT, NOT_OPEN, ABORTED */
  async has(fingerprints: readonly Uint8Array[], options?: IoOptions): Promise<boolean[]> {
    this.#enter(options, 'has');
    return fingerprintKeys(fingerprints, 'has').map((key) => this.#extents.has(key));
  }

  /** @throws INVALID_ARGUMENT, NOT_OPEN, ABORTED */
  async delete(fingerprints: readonly Uint8Array[], options?: IoOptions): Promise<void> {
    this.#enter(options, 'delete');
    for (const key of fingerprintKeys(fingerprints, 'delete')) {
      const e = this.#extents.get(key);
      if (!e) continue;
      this.#extents.delete(key);
      this.#extentBytes -= e.data.byteLength;
    }
  }

  /** Extents in fingerprint order, as of the call. @throws NOT_OPEN, ABORTED */
  async *list(options?: IoOptions): AsyncIterable<ExtentInfo> {
    this.#enter(options, 'list');
    const keys = [...this.#extents.keys()].sort();
    for (const key of keys) {
      const e = this.#extents.get(key);
      if (!e) continue; // deleted while the caller was iterating
      yield { fingerprint: e.fingerprint.slice(), byteLength: e.data.byteLength, checksum: e.checksum };
    }
  }

  /** `storedBytes` equals `extentBytes` (no allocator overhead); `freeBytes` is 0. @throws NOT_OPEN */
  async stats(): Promise<ExtentStoreStats> {
    this.#enter(undefined, 'stats');
    return { extentCount: this.#extents.size, extentBytes: this.#extentBytes, storedBytes: this.#extentBytes, freeBytes: 0 };
  }

  /** No-op barrier (memory is not durable). @throws NOT_OPEN, ABORTED */
  async flush(options?: IoOptions): Promise<void> {
    this.#enter(options, 'flush');
  }

  /** Drops every extent. Idempotent. */
  async close(): Promise<void> {
    this.#open = false;
    this.#extents.clear();
    this.#extentBytes = 0;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Fault injection for tests: flips bit `bitIndex` of the stored copy of an extent, so
   * the next get must reject with `CORRUPTION`. Not for production use.
   * @throws EXTENT_NOT_FOUND, INVALID_ARGUMENT, NOT_OPEN
   * @defaultValue bitIndex 0
   */
  corruptForTesting(fingerprint: Uint8Array, bitIndex = 0): void {
    this.#enter(undefined, 'corruptForTesting');
    const e = this.#extents.get(fingerprintKey(fingerprint, 'corruptForTesting'));
    if (!e) throw extentNotFound(fingerprint);
    assertNonNegativeInteger(bitIndex, 'bitIndex');
    if (bitIndex >= e.data.byteLength * 8) {
      throw new DrkitError('INVALID_ARGUMENT', `corruptForTesting: bitIndex ${bitIndex} is past the extent`, {
        data: { bitIndex, byteLength: e.data.byteLength },
      });
    }
    e.data[bitIndex >>> 3]! ^= 1 << (bitIndex & 7);
  }

  #read(key: string, fingerprint: Uint8Array): Uint8Array {
    const e = this.#extents.get(key);
    if (!e) throw extentNotFound(fingerprint);
    const actual = this.#xxh.hash(e.data);
    if (actual !== e.checksum) throw extentCorruption(e.fingerprint, 0, e.checksum, actual);
    return e.data.slice();
  }

  #enter(options: IoOptions | undefined, what: string): void {
    if (!this.#open) throw new DrkitError('NOT_OPEN', `MemoryExtentStore.${what}: store is closed`);
    checkIoOptions(options, what);
  }
}
