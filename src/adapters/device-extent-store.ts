/**
 * An ExtentStore that lays extents out on a BlockDevice (a raw file or a real disk) and
 * keeps its index (fingerprint -> byteOffset, byteLength, xxh64), its free-space map and
 * its counters in a MetaStore under a key prefix: data on a raw device, metadata in a
 * store (index format 2; see internal/extent-index-codec.ts).
 *
 * Integrity promise: every extent is written with its xxh64 in the index and every read
 * verifies it; a mismatch rejects with `CORRUPTION` (data: fingerprint hex, byteOffset),
 * never with wrong bytes. Compression at rest (with a `decoder`): an extent put with a
 * smaller encoded form (`ExtentPut.stored`) is written in that form, and its entry keeps
 * the xxh64 of the stored bytes and of the content; a read verifies the stored bytes,
 * decodes them and verifies the content, and `getStored` serves the stored bytes verified
 * without decoding (what a replication sender ships as is). The device starts with a superblock naming the store, so a
 * device paired with another store's index is refused at open.
 *
 * Durability promise (with a device and MetaStore that keep theirs): an extent put is
 * durable once a later `flush()` resolves, and so is a delete. The ordering that makes
 * this hold across a crash at any instant:
 *  1. extent bytes are written to the device, and the device is flushed, BEFORE any index
 *     entry pointing at them is committed to the MetaStore; so a committed index entry
 *     never points at unwritten bytes;
 *  2. every commit is one synchronous (durable) MetaStore batch holding the index changes,
 *     the space-map groups they change and the counters, so the persisted free space
 *     always agrees with the persisted index — nothing is rebuilt at open;
 *  3. space freed by a delete is handed out again only after that batch is durable;
 *     until then a crash could bring back the index entry, and its bytes must still be there.
 * A commit happens at `flush()`, and earlier whenever `maxPendingIndexOps` changes are
 * pending (which bounds the memory of uncommitted state).
 *
 * Memory: bounded whatever the number of extents. Index entries and space-map bitmaps are
 * read from the MetaStore on demand through LRU caches sharing `cacheBytes`; uncommitted
 * changes are pinned until their commit. Opening reads a constant amount of metadata (the
 * header, the counters and the device superblock).
 */
import type { BlockDevice, BlockRead, BlockWrite, IoOptions } from './block-device.js';
import type { MetaOp, MetaStore } from './meta-store.js';
import type { ExtentDecoder, ExtentInfo, ExtentPut, ExtentStore, ExtentStoreCapabilities, ExtentStoreStats, PreparedExtentCommit, StoredExtent, StoredReadOptions } from './extent-store.js';
import { loadXxh64, type Xxh64 } from '../core/checksum.js';
import { DrkitError, throwIfAborted, toDrkitError } from '../core/errors.js';
import { assertBytes, assertPositiveInteger } from '../core/validate.js';
import { concatBytes, keyToBytes, toHex, utf8 } from '../core/bytes.js';
import { SpaceMap } from './internal/space-map.js';
import { ExtentIndex } from './internal/extent-index.js';
import {
  DEFAULT_MAX_EXTENT_BYTES,
  checkIoOptions,
  checkPuts,
  extentCorruption,
  extentNotFound,
  fingerprintKey,
  fingerprintKeys,
  type CheckedPut,
} from './internal/extent-checks.js';
import {
  INDEX_TAG,
  SUPERBLOCK_BYTES,
  checkSuperblock,
  contentChecksum,
  contentLength,
  decodeCounters,
  decodeEntry,
  decodeHeader,
  encodeCounters,
  type IndexEntry,
  type IndexHeader,
} from './internal/extent-index-codec.js';
import { checkUnit, createStore, padTo, roundUpTo, spaceMapKeys, wrapIo } from './internal/extent-store-setup.js';
import { upgradeExtentIndex, type ExtentStoreUpgradeResult } from './internal/extent-store-upgrade.js';

/**
 * Default allocation unit: 4 KiB, the sector size of current disks (4Kn/512e) and the
 * page size of the OS cache. Extents start on unit boundaries, so no two extents share a
 * sector: a torn or read-modify-write sector during a crash can damage only the extent
 * being written, never a durable neighbour. Cost: on average half a unit of slack per
 * extent (~3% for 64 KiB extents).
 */
const DEFAULT_ALLOCATION_UNIT_BYTES = 4096;

/**
 * Index changes kept in memory before they are committed without waiting for `flush()`:
 * bounds the memory of uncommitted state (~250 B each with their space-map share, so
 * ~0.5 MiB) and the size of one MetaStore transaction (2048 scattered entries dirty up to
 * 2048 LMDB pages, ~8 MiB, held in memory until the commit), and costs one device flush
 * + one durable batch per 2048 extents (32 MiB of 16 KiB blocks).
 */
const DEFAULT_MAX_PENDING_INDEX_OPS = 2048;

/**
 * Default byte budget of the caches (index entries and space-map bitmaps): 16 MiB, about
 * 39,000 index entries at their measured heap cost (~600 MiB of 16 KiB extents) plus 1,000
 * space groups. Lookups that miss
 * cost one MetaStore read, which LMDB serves from the OS page cache.
 */
export const DEFAULT_EXTENT_CACHE_BYTES = 16 * 1024 * 1024;

/** Share of `cacheBytes` the space-map bitmaps may use (the rest caches index entries). */
const SPACE_CACHE_SHARE = 0.25;

/**
 * Smallest and largest device growth step. The step doubles with the device (so the
 * number of resizes stays logarithmic in its size), is at least 1 MiB (so small stores
 * do not resize on every put) and at most 1 GiB (so growth never reserves far more than
 * the data needs).
 */
const MIN_GROWTH_BYTES = 1024 * 1024;
const MAX_GROWTH_BYTES = 1024 * 1024 * 1024;

/** Options of {@link DeviceExtentStore.open}. */
export interface DeviceExtentStoreOptions {
  /** Where extent bytes live. Not closed by the store. */
  device: BlockDevice;
  /** Where the index lives; may be shared with other drkit components. Not closed by the store. */
  meta: MetaStore;
  /** MetaStore key prefix of the index (bytes, or a string encoded as UTF-8). @defaultValue 'x/' */
  keyPrefix?: Uint8Array | string;
  /**
   * Allocation granularity; a power of two and a multiple of the device alignment. Fixed
   * when the store is created: reopening with a different value fails.
   * @defaultValue 4096
   */
  allocationUnitBytes?: number;
  /**
   * Largest extent accepted. It may not exceed the space-group size fixed at creation
   * (32,768 units, or more when the store was created with larger extents).
   * @defaultValue 4 MiB (bounds the memory one get pins)
   */
  maxExtentBytes?: number;
  /** Index changes held in memory before they are committed without waiting for `flush()`. @defaultValue 2048 */
  maxPendingIndexOps?: number;
  /** Byte budget of the index-entry and space-map caches. @defaultValue 16 MiB ({@link DEFAULT_EXTENT_CACHE_BYTES}) */
  cacheBytes?: number;
  /**
   * Decodes stored forms (an `ExtentCodec` from drkit/dedup). With it, puts that carry a
   * smaller encoded form are kept in that form (compression at rest); without it, every
   * extent is stored as content and reading an encoded extent fails with NOT_SUPPORTED.
   * @defaultValue none
   */
  decoder?: ExtentDecoder;
}

/** Options of {@link DeviceExtentStore.upgrade}. */
export type DeviceExtentStoreUpgradeOptions = Pick<DeviceExtentStoreOptions, 'device' | 'meta' | 'keyPrefix'>;
export type { ExtentStoreUpgradeResult };

/** A verified, crash-safe {@link ExtentStore} over a BlockDevice and a MetaStore. */
export class DeviceExtentStore implements ExtentStore {
  readonly capabilities: Readonly<ExtentStoreCapabilities>;
  readonly #device: BlockDevice;
  readonly #meta: MetaStore;
  readonly #countersKey: Uint8Array;
  readonly #xxh: Xxh64;
  readonly #space: SpaceMap;
  readonly #index: ExtentIndex;
  readonly #maxPendingIndexOps: number;
  readonly #decoder: ExtentDecoder | undefined;
  #extentCount: number;
  #extentBytes: number;
  /** Ranges of deleted extents whose delete is not yet durable: not reusable yet. */
  #freedPending: IndexEntry[] = [];
  /** Tail of the chain that serialises put/delete/flush. */
  #tail: Promise<unknown> = Promise.resolve();
  #open = true;

  private constructor(
    options: { device: BlockDevice; meta: MetaStore; prefix: Uint8Array; xxh: Xxh64; maxExtentBytes: number; maxPendingIndexOps: number; cacheBytes: number; decoder: ExtentDecoder | undefined },
    header: IndexHeader,
    counters: { extentCount: number; extentBytes: number; usedUnits: number; cursorGroup: number },
  ) {
    this.#device = options.device;
    this.#meta = options.meta;
    this.#countersKey = concatBytes([options.prefix, Uint8Array.of(INDEX_TAG.counters)]);
    this.#xxh = options.xxh;
    this.#maxPendingIndexOps = options.maxPendingIndexOps;
    this.#decoder = options.decoder;
    this.#extentCount = counters.extentCount;
    this.#extentBytes = counters.extentBytes;
    const unit = header.allocationUnitBytes;
    const spaceCacheBytes = Math.floor(options.cacheBytes * SPACE_CACHE_SHARE);
    this.#space = new SpaceMap(
      options.meta,
      spaceMapKeys(options.prefix),
      { unitBytes: unit, groupUnits: header.groupUnits, reservedUnits: roundUpTo(SUPERBLOCK_BYTES, unit) / unit },
      { capacityBytes: options.device.byteLength, usedUnits: counters.usedUnits, cursorGroup: counters.cursorGroup },
      spaceCacheBytes,
    );
    this.#index = new ExtentIndex(options.meta, options.prefix, options.cacheBytes - spaceCacheBytes);
    this.capabilities = Object.freeze({
      durableFlush: options.device.capabilities.durableFlush,
      maxExtentBytes: options.maxExtentBytes,
    });
  }

  /**
   * Opens the store, creating it (superblock, index header, counters) when the MetaStore
   * holds no index under the prefix. Reads a constant amount of metadata.
   * @throws INVALID_ARGUMENT for bad options, an allocation unit differing from the store's, or maxExtentBytes over the space-group size
   * @throws CORRUPTION for a damaged header or counters, a foreign or damaged superblock, or a device shorter than the store's space
   * @throws FORMAT_VERSION for an index of format 1 (data.upgrade names {@link DeviceExtentStore.upgrade}) or an unknown version
   * @throws NO_SPACE when a non-resizable device cannot hold the superblock
   */
  static async open(options: DeviceExtentStoreOptions): Promise<DeviceExtentStore> {
    const { device, meta, prefix } = checkOpenOptions(options, 'open');
    const maxExtentBytes = options.maxExtentBytes ?? DEFAULT_MAX_EXTENT_BYTES;
    assertPositiveInteger(maxExtentBytes, 'maxExtentBytes');
    if (maxExtentBytes > 0xffffffff) {
      throw new DrkitError('INVALID_ARGUMENT', 'maxExtentBytes must fit the index format (< 4 GiB)', { data: { maxExtentBytes } });
    }
    const maxPendingIndexOps = options.maxPendingIndexOps ?? DEFAULT_MAX_PENDING_INDEX_OPS;
    assertPositiveInteger(maxPendingIndexOps, 'maxPendingIndexOps');
    const cacheBytes = options.cacheBytes ?? DEFAULT_EXTENT_CACHE_BYTES;
    if (!Number.isSafeInteger(cacheBytes) || cacheBytes < 0) {
      throw new DrkitError('INVALID_ARGUMENT', 'cacheBytes must be a non-negative integer', { data: { cacheBytes } });
    }
    if (options.allocationUnitBytes !== undefined) checkUnit(options.allocationUnitBytes, device);
    if (options.decoder !== undefined && typeof options.decoder?.decompress !== 'function') {
      throw new DrkitError('INVALID_ARGUMENT', 'DeviceExtentStore.open: decoder must have a decompress(codec, bytes, rawLength) method');
    }
    const xxh = await loadXxh64();

    const headerValue = await wrapIo(() => meta.get(prefix), 'read extent index header');
    let header: IndexHeader;
    if (headerValue === undefined) {
      header = await createStore(device, meta, prefix, xxh, options.allocationUnitBytes ?? DEFAULT_ALLOCATION_UNIT_BYTES, maxExtentBytes);
    } else {
      header = decodeHeader(headerValue);
      if (options.allocationUnitBytes !== undefined && options.allocationUnitBytes !== header.allocationUnitBytes) {
        throw new DrkitError('INVALID_ARGUMENT', `store was created with allocationUnitBytes ${header.allocationUnitBytes}, not ${options.allocationUnitBytes}`, {
          data: { stored: header.allocationUnitBytes, given: options.allocationUnitBytes },
        });
      }
      checkUnit(header.allocationUnitBytes, device);
      const reserved = roundUpTo(SUPERBLOCK_BYTES, header.allocationUnitBytes);
      if (device.byteLength < reserved) {
        throw new DrkitError('CORRUPTION', 'device is shorter than its superblock (wrong device for this index?)');
      }
      checkSuperblock(await wrapIo(() => device.read(0, reserved), 'read superblock'), header, xxh);
    }
    const groupBytes = header.groupUnits * header.allocationUnitBytes;
    if (maxExtentBytes > groupBytes) {
      throw new DrkitError('INVALID_ARGUMENT', `maxExtentBytes ${maxExtentBytes} exceeds this store's space-group size ${groupBytes}`, {
        data: { maxExtentBytes, groupBytes },
      });
    }
    const countersKey = concatBytes([prefix, Uint8Array.of(INDEX_TAG.counters)]);
    const countersValue = await wrapIo(() => meta.get(countersKey), 'read extent index counters');
    if (countersValue === undefined) throw new DrkitError('CORRUPTION', 'extent index has a header but no counters record');
    const counters = decodeCounters(countersValue);
    if (device.byteLength < counters.capacityBytes) {
      // The space map covers bytes past the device's end: the device was truncated or swapped.
      throw new DrkitError('CORRUPTION', 'extent store space extends past the end of the device', {
        data: { deviceByteLength: device.byteLength, capacityBytes: counters.capacityBytes },
      });
    }
    return new DeviceExtentStore({ device, meta, prefix, xxh, maxExtentBytes, maxPendingIndexOps, cacheBytes, decoder: options.decoder }, header, counters);
  }

  /**
   * Converts an index of format 1 (every entry loaded at open, free space rebuilt by a
   * scan) to format 2 in place: entries move under their format-2 keys, the space map and
   * counters are written, and the header is rewritten last, in one durable batch. Run it
   * once, with no store open on the same MetaStore prefix; it reads every entry once and
   * holds the space map of the device in memory while it runs (device bytes / unit / 8).
   * A crash part-way leaves a store that is still format 1 and that the next call finishes.
   * Extent bytes on the device are not touched.
   * @throws CORRUPTION for overlapping, misaligned or out-of-device entries, or mixed fingerprint lengths
   * @throws NOT_FOUND when the MetaStore holds no extent index under the prefix
   */
  static async upgrade(options: DeviceExtentStoreUpgradeOptions): Promise<ExtentStoreUpgradeResult> {
    const { device, meta, prefix } = checkOpenOptions(options, 'upgrade');
    return upgradeExtentIndex(device, meta, prefix, await loadXxh64(), DEFAULT_MAX_EXTENT_BYTES);
  }

  /**
   * Writes the extents not already present with one vectored device write; their index
   * entries become durable with the next `flush()`. Do not modify `data` until this resolves.
   * @throws INVALID_ARGUMENT, CORRUPTION (given checksum mismatch: nothing is stored), NO_SPACE, NOT_OPEN, ABORTED, IO_ERROR
   */
  async put(extents: readonly ExtentPut[], options?: IoOptions): Promise<void> {
    this.#enter(options, 'put');
    const checked = checkPuts(extents, this.capabilities.maxExtentBytes, this.#xxh, 'put', this.#decoder !== undefined);
    await this.#exclusive('put', options, () => this.#putLocked(checked, options));
  }

  /** The extent's bytes, verified. @throws EXTENT_NOT_FOUND, CORRUPTION, INVALID_ARGUMENT, NOT_OPEN, ABORTED, IO_ERROR */
  async get(fingerprint: Uint8Array, options?: IoOptions): Promise<Uint8Array> {
    this.#enter(options, 'get');
    const key = fingerprintKey(fingerprint, 'get');
    return (await this.#read([key], options))[0]!;
  }

  /** Verified extents in request order, read with one vectored device read. @throws as {@link get} */
  async getMany(fingerprints: readonly Uint8Array[], options?: IoOptions): Promise<Uint8Array[]> {
    this.#enter(options, 'getMany');
    return this.#read(fingerprintKeys(fingerprints, 'getMany'), options);
  }

  /**
   * Extents as stored (encoded or not), each verified against its stored form's checksum
   * and not decoded, in request order, with one vectored device read.
   * @throws as {@link get}
   */
  async getStored(fingerprints: readonly Uint8Array[], options?: StoredReadOptions): Promise<StoredExtent[]> {
    this.#enter(options, 'getStored');
    if (options?.into !== undefined) assertBytes(options.into, 'into');
    return this.#read(fingerprintKeys(fingerprints, 'getStored'), options, true, options?.into, options?.bulk === true);
  }

  /** Answered from the index cache, else with one MetaStore read for the misses. @throws INVALID_ARGUMENT, NOT_OPEN, ABORTED, IO_ERROR */
  async has(fingerprints: readonly Uint8Array[], options?: IoOptions): Promise<boolean[]> {
    this.#enter(options, 'has');
    const found = await wrapIo(() => this.#index.lookupMany(fingerprintKeys(fingerprints, 'has')), 'read extent index');
    return found.map((e) => e !== undefined);
  }

  /** Forgets the extents at once; their space is reused after the next `flush()`. @throws INVALID_ARGUMENT, NOT_OPEN, ABORTED, IO_ERROR */
  async delete(fingerprints: readonly Uint8Array[], options?: IoOptions): Promise<void> {
    this.#enter(options, 'delete');
    const keys = fingerprintKeys(fingerprints, 'delete');
    await this.#exclusive('delete', options, async () => {
      const unique = [...new Set(keys)];
      const found = await wrapIo(() => this.#index.lookupMany(unique), 'read extent index');
      unique.forEach((key, i) => {
        const entry = found[i];
        if (entry === undefined) return;
        this.#index.delete(key);
        this.#extentCount--;
        this.#extentBytes -= contentLength(entry);
        if (entry.byteLength > 0) this.#freedPending.push(entry);
      });
      await this.#commitIfFull(options);
    });
  }

  /**
   * Extents in fingerprint order, as a consistent view of the store at the call (changes
   * not yet committed are committed first). Streams from the MetaStore: memory stays flat.
   * @throws NOT_OPEN, ABORTED, IO_ERROR
   */
  async *list(options?: IoOptions): AsyncIterable<ExtentInfo> {
    this.#enter(options, 'list');
    await this.#exclusive('list', options, () => this.#commit(options));
    const prefixBytes = this.#index.entryPrefix.byteLength;
    for await (const [key, value] of this.#meta.iterate({ prefix: this.#index.entryPrefix }, { signal: options?.signal })) {
      const e = decodeEntry(value);
      yield { fingerprint: key.slice(prefixBytes), byteLength: contentLength(e), checksum: contentChecksum(e) };
    }
  }

  /**
   * `storedBytes` is the device space in use: live extents rounded to the allocation unit,
   * the superblock, and space of deletes not yet durable. `freeBytes` is reusable space
   * within the device's current length.
   * @throws NOT_OPEN
   */
  async stats(): Promise<ExtentStoreStats> {
    this.#enter(undefined, 'stats');
    return {
      extentCount: this.#extentCount,
      extentBytes: this.#extentBytes,
      storedBytes: this.#space.allocatedBytes,
      freeBytes: this.#space.freeBytes,
    };
  }

  /**
   * Makes every put and delete that resolved before the call durable: flushes the device,
   * then commits the pending index changes, space map and counters in one durable batch;
   * then releases deleted space.
   * @throws NOT_OPEN, ABORTED, IO_ERROR (pending changes are kept and retried by the next flush)
   */
  async flush(options?: IoOptions): Promise<void> {
    this.#enter(options, 'flush');
    await this.#exclusive('flush', options, () => this.#commit(options));
  }

  /**
   * Flushes the device and returns the pending index changes, space-map groups and counters
   * as ops for the caller's durable batch in `meta` (which must be this store's MetaStore),
   * holding the store's lock until `committed()` or `abandoned()`. Ordering 1-3 of the
   * module header hold as for `flush()`: the device is flushed before the ops exist, and
   * freed space is reused only after `committed()`, which the caller calls once its batch
   * is durable.
   * @returns undefined when `meta` is another MetaStore
   * @throws NOT_OPEN, ABORTED, IO_ERROR
   */
  async prepareCommit(meta: MetaStore, options?: IoOptions): Promise<PreparedExtentCommit | undefined> {
    this.#enter(options, 'prepareCommit');
    if (meta !== this.#meta) return undefined;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    return new Promise<PreparedExtentCommit>((resolve, reject) => {
      this.#exclusive('prepareCommit', options, async () => {
        const staged = await this.#stageCommit(options);
        let settled = false;
        const settle = (apply: boolean): void => {
          if (settled) return;
          settled = true;
          if (apply) staged?.apply();
          release();
        };
        resolve({ ops: staged?.ops ?? [], committed: () => settle(true), abandoned: () => settle(false) });
        await held;
      }).catch(reject);
    });
  }

  /**
   * Waits for in-flight puts/deletes/flushes, then drops the caches. Does not flush
   * (unflushed puts and deletes may be lost) and does not close the device or MetaStore,
   * which the caller owns. Idempotent.
   */
  async close(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    await this.#tail.catch(() => undefined);
    this.#index.clear();
    this.#freedPending = [];
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #putLocked(checked: CheckedPut[], options: IoOptions | undefined): Promise<void> {
    const unique: CheckedPut[] = [];
    const seen = new Set<string>();
    for (const p of checked) {
      if (seen.has(p.key)) continue;
      seen.add(p.key);
      unique.push(p);
    }
    const found = await wrapIo(() => this.#index.lookupMany(unique.map((p) => p.key)), 'read extent index');
    const fresh = unique.filter((_, i) => found[i] === undefined); // content addressing: stored once
    if (fresh.length === 0) return;
    const offsets = await this.#allocateAll(fresh, options);
    const align = this.#device.capabilities.alignmentBytes;
    const writes: BlockWrite[] = [];
    const unit = this.#space.unitBytes;
    fresh.forEach((p, i) => {
      const bytes = storedBytes(p);
      if (bytes.byteLength === 0) return;
      if (align > 1) {
        writes.push({ byteOffset: offsets[i]!, data: padTo(bytes, align) });
        return;
      }
      writes.push({ byteOffset: offsets[i]!, data: bytes });
      // Zeros to the end of the extent's last allocation unit, so that extents allocated
      // back to back are written back to back: the device merges them into one large
      // write instead of one system call per extent (compressed extents are rarely whole
      // units). Nothing reads these bytes; they are written only to close the gap.
      const pad = roundUpTo(bytes.byteLength, unit) - bytes.byteLength;
      if (pad > 0) writes.push({ byteOffset: offsets[i]! + bytes.byteLength, data: zeroPad(pad) });
    });
    try {
      if (writes.length > 0) await this.#device.writev(writes, { signal: options?.signal });
    } catch (err) {
      // Nothing references the space yet, so it is free again at once.
      await this.#releaseAll(fresh, offsets);
      throw toDrkitError(err, 'IO_ERROR', 'put: device write failed');
    }
    fresh.forEach((p, i) => {
      const s = p.stored;
      this.#index.put(
        p.key,
        s === undefined
          ? p.incompressible === true
            ? { byteOffset: offsets[i]!, byteLength: p.data.byteLength, checksum: p.checksum, encoded: { codec: 0, rawLength: p.data.byteLength, contentChecksum: p.checksum } }
            : { byteOffset: offsets[i]!, byteLength: p.data.byteLength, checksum: p.checksum }
          : { byteOffset: offsets[i]!, byteLength: s.bytes.byteLength, checksum: s.checksum, encoded: { codec: s.codec, rawLength: p.data.byteLength, contentChecksum: p.checksum } },
      );
      this.#extentCount++;
      this.#extentBytes += p.data.byteLength;
    });
    await this.#commitIfFull(options);
  }

  /** Offsets for each put (0 for empty extents), growing the device when it may. @throws NO_SPACE */
  async #allocateAll(puts: CheckedPut[], options: IoOptions | undefined): Promise<number[]> {
    const offsets: number[] = [];
    try {
      for (const p of puts) {
        const byteLength = storedBytes(p).byteLength;
        if (byteLength === 0) {
          offsets.push(0);
          continue;
        }
        let at = await this.#space.allocate(byteLength);
        if (at === undefined) {
          await this.#grow(this.#space.roundUp(byteLength), options);
          at = await this.#space.allocate(byteLength);
          if (at === undefined) throw new DrkitError('INTERNAL', 'allocator: no space after growing the device');
        }
        offsets.push(at);
      }
    } catch (err) {
      await this.#releaseAll(puts.slice(0, offsets.length), offsets);
      throw toDrkitError(err, 'IO_ERROR', 'put: allocation failed');
    }
    return offsets;
  }

  async #releaseAll(puts: CheckedPut[], offsets: number[]): Promise<void> {
    for (let i = 0; i < offsets.length; i++) {
      const byteLength = storedBytes(puts[i]!).byteLength;
      if (byteLength > 0) await this.#space.release(offsets[i]!, byteLength);
    }
  }

  async #grow(shortfallBytes: number, options: IoOptions | undefined): Promise<void> {
    const device = this.#device;
    if (!device.capabilities.resizable) {
      throw new DrkitError('NO_SPACE', `extent store: no free range of ${shortfallBytes} bytes on a non-resizable device`, {
        data: { byteLength: shortfallBytes, freeBytes: this.#space.freeBytes, deviceByteLength: device.byteLength },
      });
    }
    const step = Math.min(MAX_GROWTH_BYTES, Math.max(MIN_GROWTH_BYTES, device.byteLength, shortfallBytes));
    // The map's capacity may lag the device by a partial unit; grow from the capacity.
    const target = roundUpTo(this.#space.capacityBytes + Math.max(step, shortfallBytes), this.#space.unitBytes);
    await wrapIo(() => device.resize(Math.max(target, device.byteLength), { signal: options?.signal }), 'grow device');
    this.#space.grow(target);
  }

  async #commitIfFull(options: IoOptions | undefined): Promise<void> {
    if (this.#index.pendingCount + this.#freedPending.length >= this.#maxPendingIndexOps) await this.#commit(options);
  }

  /**
   * Commits the pending index changes, the space-map groups they touch and the counters
   * in one durable batch, device first. On failure everything stays pending for the next
   * attempt (re-applying it is idempotent).
   */
  async #commit(options: IoOptions | undefined): Promise<void> {
    const staged = await this.#stageCommit(options);
    if (staged === undefined) return;
    await wrapIo(() => this.#meta.batch(staged.ops, { sync: true, signal: options?.signal }), 'commit extent index');
    staged.apply();
  }

  /**
   * Flushes the device and builds the ops of one commit (index changes, space-map groups,
   * counters); `apply` must be called only once a batch holding them is durable. Nothing
   * changes in memory before that, so an abandoned commit is simply retried later.
   * Undefined when nothing is pending.
   */
  async #stageCommit(options: IoOptions | undefined): Promise<{ ops: MetaOp[]; apply: () => void } | undefined> {
    if (this.#index.pendingCount === 0 && this.#freedPending.length === 0 && !this.#space.dirty) return undefined;
    // Order 1: the bytes any put points at are durable before the put is committed.
    await wrapIo(() => this.#device.flush({ signal: options?.signal }), 'flush device');
    const freed = this.#freedPending;
    const index = this.#index.takeCommitOps();
    const space = await wrapIo(() => this.#space.commitOps(freed), 'read space map');
    const counters = encodeCounters({
      extentCount: this.#extentCount,
      extentBytes: this.#extentBytes,
      usedUnits: space.usedUnitsAfter,
      cursorGroup: this.#space.cursorGroup,
      capacityBytes: this.#space.capacityBytes,
    });
    const ops: MetaOp[] = [...index.ops, ...space.ops, { kind: 'put', key: this.#countersKey, value: counters }];
    return {
      ops,
      apply: () => {
        // Order 3: the deletes are durable, so their space may be handed out again.
        space.apply();
        index.committed();
        this.#freedPending = this.#freedPending.slice(freed.length);
      },
    };
  }

  /** Reads and verifies the extents of `keys` with one vectored read: content, or (asStored) stored forms. */
  async #read(keys: string[], options: IoOptions | undefined): Promise<Uint8Array[]>;
  async #read(keys: string[], options: IoOptions | undefined, asStored: true, into?: Uint8Array, bulk?: boolean): Promise<StoredExtent[]>;
  async #read(keys: string[], options: IoOptions | undefined, asStored = false, into?: Uint8Array, bulk = false): Promise<Uint8Array[] | StoredExtent[]> {
    const out: (Uint8Array | StoredExtent)[] = new Array(keys.length);
    const finish = (i: number, e: IndexEntry, bytes: Uint8Array): Uint8Array | StoredExtent =>
      asStored
        ? { codec: e.encoded?.codec ?? 0, bytes, rawLength: contentLength(e), checksum: contentChecksum(e), ...(e.encoded?.codec === 0 ? { incompressible: true } : {}) }
        : this.#content(keys[i]!, e, bytes);
    const found = await wrapIo(() => this.#index.lookupMany(keys, { cacheMisses: !bulk }), 'read extent index');
    const entries = keys.map((key, i) => {
      const e = found[i];
      if (e === undefined) throw extentNotFound(keyToBytes(key));
      return e;
    });
    const align = this.#device.capabilities.alignmentBytes;
    const slots: number[] = [];
    const reads: BlockRead[] = [];
    let intoUsed = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.byteLength === 0) {
        out[i] = finish(i, e, (await this.#verify(keys[i]!, e, new Uint8Array(0))) ?? new Uint8Array(0));
        continue;
      }
      slots.push(i);
      const byteLength = roundUpTo(e.byteLength, align);
      // The caller's space while it lasts (the views are what it gets back), then buffers of the device's.
      if (into !== undefined && into.byteLength - intoUsed >= byteLength) {
        reads.push({ byteOffset: e.byteOffset, byteLength, into: into.subarray(intoUsed, intoUsed + byteLength) });
        intoUsed += byteLength;
      } else reads.push({ byteOffset: e.byteOffset, byteLength });
    }
    if (reads.length > 0) {
      const got = await wrapIo(() => this.#device.readv(reads, { signal: options?.signal }), 'read extents');
      for (let j = 0; j < slots.length; j++) {
        const i = slots[j]!;
        const e = entries[i]!;
        const bytes = align > 1 ? (reads[j]!.into !== undefined ? got[j]!.subarray(0, e.byteLength) : got[j]!.slice(0, e.byteLength)) : got[j]!;
        const ok = this.#xxh.hash(bytes) === e.checksum ? bytes : await this.#verify(keys[i]!, e, bytes);
        // A concurrent delete (made durable, its space reused) or re-put may have moved the
        // extent while we read: read its current location once more.
        if (ok !== undefined) out[i] = finish(i, e, ok);
        else out[i] = asStored ? (await this.#read([keys[i]!], options, true))[0]! : (await this.#read([keys[i]!], options))[0]!;
      }
    }
    return out as Uint8Array[] | StoredExtent[];
  }

  /**
   * The content of verified stored bytes: as is, or decoded and verified against the
   * content checksum (a decoder bug or a form that was not what the caller vouched for).
   * @throws CORRUPTION, NOT_SUPPORTED (an encoded extent and no decoder)
   */
  #content(key: string, e: IndexEntry, bytes: Uint8Array): Uint8Array {
    if (e.encoded === undefined || e.encoded.codec === 0) return bytes; // stored as is: verified above
    if (this.#decoder === undefined) {
      throw new DrkitError('NOT_SUPPORTED', `extent ${keyToHex(key)} is stored encoded (codec ${e.encoded.codec}); open the store with a decoder`, {
        data: { codec: e.encoded.codec },
      });
    }
    let content: Uint8Array;
    try {
      content = this.#decoder.decompress(e.encoded.codec, bytes, e.encoded.rawLength);
    } catch (err) {
      throw extentCorruption(keyToBytes(key), e.byteOffset, e.encoded.contentChecksum, 0n, err);
    }
    const actual = this.#xxh.hash(content);
    if (actual !== e.encoded.contentChecksum) throw extentCorruption(keyToBytes(key), e.byteOffset, e.encoded.contentChecksum, actual);
    return content;
  }

  /** The bytes if they match; undefined if the extent moved meanwhile. @throws CORRUPTION, EXTENT_NOT_FOUND */
  async #verify(key: string, entry: IndexEntry, bytes: Uint8Array): Promise<Uint8Array | undefined> {
    const actual = this.#xxh.hash(bytes);
    if (actual === entry.checksum) return bytes;
    const [now] = await wrapIo(() => this.#index.lookupMany([key]), 'read extent index');
    if (now === undefined) throw extentNotFound(keyToBytes(key));
    if (now.byteOffset !== entry.byteOffset || now.byteLength !== entry.byteLength || now.checksum !== entry.checksum) return undefined;
    throw extentCorruption(keyToBytes(key), entry.byteOffset, entry.checksum, actual);
  }

  async #exclusive<T>(what: string, options: IoOptions | undefined, fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(() => {
      if (!this.#open) throw new DrkitError('NOT_OPEN', `DeviceExtentStore.${what}: store is closed`);
      throwIfAborted(options?.signal);
      return fn();
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #enter(options: IoOptions | undefined, what: string): void {
    if (!this.#open) throw new DrkitError('NOT_OPEN', `DeviceExtentStore.${what}: store is closed`);
    checkIoOptions(options, what);
  }
}

/** The bytes a put writes to the device: its stored form when it has one. */
function storedBytes(p: CheckedPut): Uint8Array {
  return p.stored?.bytes ?? p.data;
}

function keyToHex(key: string): string {
  return toHex(keyToBytes(key));
}

function checkOpenOptions(options: DeviceExtentStoreUpgradeOptions, what: string): { device: BlockDevice; meta: MetaStore; prefix: Uint8Array } {
  if (options === null || typeof options !== 'object') {
    throw new DrkitError('INVALID_ARGUMENT', `DeviceExtentStore.${what}: options must be an object`);
  }
  const { device, meta } = options;
  if (device === null || typeof device !== 'object' || typeof device.writev !== 'function') {
    throw new DrkitError('INVALID_ARGUMENT', `DeviceExtentStore.${what}: device must be a BlockDevice`);
  }
  if (meta === null || typeof meta !== 'object' || typeof meta.batch !== 'function') {
    throw new DrkitError('INVALID_ARGUMENT', `DeviceExtentStore.${what}: meta must be a MetaStore`);
  }
  const prefixOption = options.keyPrefix ?? 'x/';
  const prefix = typeof prefixOption === 'string' ? utf8(prefixOption) : prefixOption;
  if (!(prefix instanceof Uint8Array)) {
    throw new DrkitError('INVALID_ARGUMENT', `DeviceExtentStore.${what}: keyPrefix must be a string or Uint8Array`);
  }
  return { device, meta, prefix: prefix.slice() };
}

/** Shared zeros for {@link zeroPad}; grown to the largest allocation unit asked for. */
let zeroPadBytes = new Uint8Array(64 * 1024);

/** `byteLength` zero bytes (a view of a shared buffer nobody writes). */
function zeroPad(byteLength: number): Uint8Array {
  if (zeroPadBytes.byteLength < byteLength) zeroPadBytes = new Uint8Array(byteLength);
  return zeroPadBytes.subarray(0, byteLength);
}
