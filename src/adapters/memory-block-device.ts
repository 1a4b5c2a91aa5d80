/**
 * A BlockDevice held in memory, for tests, simulations and scratch volumes.
 *
 * Durability promise: none beyond the process. `flush()` is an ordering barrier only
 * (capability `durableFlush: false`); every resolved write is visible to later reads.
 *
 * Storage is sparse: the device is a map of fixed-size pages allocated on first write,
 * so a 64 GiB device costs nothing until written, and discarding a whole page frees it.
 */
import type { BlockDevice, BlockDeviceCapabilities, BlockRead, BlockWrite, IoOptions } from './block-device.js';
import { assertNonNegativeInteger, assertPositiveInteger } from '../core/validate.js';
import { DrkitError } from '../core/errors.js';
import {
  assertAligned,
  assertOpen,
  checkExtent,
  checkNewLength,
  checkOptions,
  checkReads,
  intoOrOwn,
  checkWrite,
  checkWrites,
  freezeCapabilities,
  requireCapability,
} from './internal/device-guard.js';

/**
 * Page size of the sparse map. 64 KiB keeps the map small (16 Ki entries per GiB
 * written) while a scattered 4 KiB write allocates at most 16x what it stores.
 */
const PAGE_BYTES = 64 * 1024;

/**
 * Concurrency the memory device declares: every call completes synchronously inside
 * its promise, so callers gain nothing from queueing; the bound only caps fan-out.
 */
const MEMORY_MAX_CONCURRENCY = 1024;

/** Options of {@link MemoryBlockDevice.create}. */
export interface MemoryBlockDeviceOptions {
  /** Initial length in bytes; must be a multiple of `alignmentBytes`. */
  byteLength: number;
  /** Required alignment of offsets and lengths. @defaultValue 1 */
  alignmentBytes?: number;
}

/**
 * A sparse in-memory {@link BlockDevice}. Capabilities: `durableFlush: false`,
 * `discard: true`, `resizable: true`, `alignmentBytes` as given (default 1),
 * `atomicWriteBytes` = alignment when above 1, else 512.
 */
export class MemoryBlockDevice implements BlockDevice {
  readonly capabilities: Readonly<BlockDeviceCapabilities>;
  #byteLength: number;
  #open = true;
  /** Page index -> page bytes; absent pages read as zero. */
  readonly #pages = new Map<number, Uint8Array>();

  private constructor(byteLength: number, alignmentBytes: number) {
    this.#byteLength = byteLength;
    this.capabilities = freezeCapabilities({
      durableFlush: false,
      discard: true,
      resizable: true,
      alignmentBytes,
      atomicWriteBytes: alignmentBytes > 1 ? alignmentBytes : 512,
      maxConcurrency: MEMORY_MAX_CONCURRENCY,
    });
  }

  /**
   * Creates an open, zero-filled device.
   * @throws INVALID_ARGUMENT for a bad length or alignment, or a length not a multiple of the alignment
   */
  static async create(options: MemoryBlockDeviceOptions): Promise<MemoryBlockDevice> {
    if (options === null || typeof options !== 'object') {
      throw new DrkitError('INVALID_ARGUMENT', 'MemoryBlockDevice.create: options must be an object');
    }
    const alignmentBytes = options.alignmentBytes ?? 1;
    assertPositiveInteger(alignmentBytes, 'alignmentBytes');
    assertNonNegativeInteger(options.byteLength, 'byteLength');
    assertAligned(options.byteLength, alignmentBytes, 'byteLength', 'MemoryBlockDevice.create');
    return new MemoryBlockDevice(options.byteLength, alignmentBytes);
  }

  /** Current length in bytes. */
  get byteLength(): number {
    return this.#byteLength;
  }

  /** Bytes of page memory currently allocated (for tests of sparseness). */
  get allocatedBytes(): number {
    return this.#pages.size * PAGE_BYTES;
  }

  /** @throws NOT_OPEN, ABORTED, INVALID_ARGUMENT, OUT_OF_RANGE */
  async read(byteOffset: number, byteLength: number, options?: IoOptions): Promise<Uint8Array> {
    this.#enter(options, 'read');
    checkExtent(this, byteOffset, byteLength, 'read');
    return this.#readNow(byteOffset, byteLength);
  }

  /** @throws NOT_OPEN, ABORTED, INVALID_ARGUMENT, OUT_OF_RANGE */
  async readv(reads: readonly BlockRead[], options?: IoOptions): Promise<Uint8Array[]> {
    this.#enter(options, 'readv');
    checkReads(this, reads);
    return reads.map((r) => intoOrOwn(r, this.#readNow(r.byteOffset, r.byteLength)));
  }

  /** @throws NOT_OPEN, ABORTED, INVALID_ARGUMENT, OUT_OF_RANGE */
  async write(byteOffset: number, data: Uint8Array, options?: IoOptions): Promise<void> {
    this.#enter(options, 'write');
    checkWrite(this, byteOffset, data);
    this.#writeNow(byteOffset, data);
  }

  /** @throws NOT_OPEN, ABORTED, INVALID_ARGUMENT, OUT_OF_RANGE */
  async writev(writes: readonly BlockWrite[], options?: IoOptions): Promise<void> {
    this.#enter(options, 'writev');
    // Validate all before applying any, so a bad entry leaves the device untouched.
    checkWrites(this, writes);
    for (const w of writes) this.#writeNow(w.byteOffset, w.data);
  }

  /** @throws NOT_OPEN, ABORTED, INVALID_ARGUMENT, OUT_OF_RANGE */
  async discard(byteOffset: number, byteLength: number, options?: IoOptions): Promise<void> {
    this.#enter(options, 'discard');
    requireCapability(this, 'discard', 'discard');
    checkExtent(this, byteOffset, byteLength, 'discard');
    this.#zeroRange(byteOffset, byteOffset + byteLength);
  }

  /** Ordering barrier only: memory is not durable. @throws NOT_OPEN, ABORTED */
  async flush(options?: IoOptions): Promise<void> {
    this.#enter(options, 'flush');
  }

  /** @throws NOT_OPEN, ABORTED, INVALID_ARGUMENT */
  async resize(byteLength: number, options?: IoOptions): Promise<void> {
    this.#enter(options, 'resize');
    requireCapability(this, 'resizable', 'resize');
    checkNewLength(this, byteLength);
    if (byteLength < this.#byteLength) this.#zeroRange(byteLength, this.#byteLength);
    this.#byteLength = byteLength;
  }

  /** Releases the pages. Idempotent. */
  async close(): Promise<void> {
    this.#open = false;
    this.#pages.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #enter(options: IoOptions | undefined, what: string): void {
    assertOpen(this.#open, what);
    checkOptions(options, what);
  }

  #readNow(byteOffset: number, byteLength: number): Uint8Array {
    const out = new Uint8Array(byteLength);
    let done = 0;
    while (done < byteLength) {
      const pos = byteOffset + done;
      const pageIndex = Math.floor(pos / PAGE_BYTES);
      const inPage = pos - pageIndex * PAGE_BYTES;
      const n = Math.min(PAGE_BYTES - inPage, byteLength - done);
      const page = this.#pages.get(pageIndex);
      if (page) out.set(page.subarray(inPage, inPage + n), done);
      done += n;
    }
    return out;
  }

  #writeNow(byteOffset: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.byteLength) {
      const pos = byteOffset + done;
      const pageIndex = Math.floor(pos / PAGE_BYTES);
      const inPage = pos - pageIndex * PAGE_BYTES;
      const n = Math.min(PAGE_BYTES - inPage, data.byteLength - done);
      let page = this.#pages.get(pageIndex);
      if (!page) {
        page = new Uint8Array(PAGE_BYTES);
        this.#pages.set(pageIndex, page);
      }
      page.set(data.subarray(done, done + n), inPage);
      done += n;
    }
  }

  /** Zeroes [startByte, endByte), freeing pages it covers whole. */
  #zeroRange(startByte: number, endByte: number): void {
    if (endByte <= startByte) return;
    const firstPage = Math.floor(startByte / PAGE_BYTES);
    const lastPage = Math.floor((endByte - 1) / PAGE_BYTES);
    // Walk allocated pages, not the range: a discard of a huge sparse range stays cheap.
    for (const [pageIndex, page] of this.#pages) {
      if (pageIndex < firstPage || pageIndex > lastPage) continue;
      const pageStart = pageIndex * PAGE_BYTES;
      const from = Math.max(startByte, pageStart) - pageStart;
      const to = Math.min(endByte, pageStart + PAGE_BYTES) - pageStart;
      if (from === 0 && to === PAGE_BYTES) this.#pages.delete(pageIndex);
      else page.fill(0, from, to);
    }
  }
}
