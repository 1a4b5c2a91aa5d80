/**
 * LmdbMetaStore: a {@link MetaStore} on LMDB (the `lmdb` package, lmdb-js), Node only.
 * Unlike LogMetaStore the live set is not held in memory: it lives in LMDB's B+tree in
 * a memory-mapped file, so a store can hold far more metadata than RAM.
 *
 * Layout: `path` is a directory holding one LMDB environment (`data.mdb` + `lock.mdb`).
 * One database (LMDB's root) holds every record; each key carries a namespace byte (see
 * internal/lmdb-keys.ts): caller keys, and two internal records — the format version
 * and the counters (key count, live bytes) that every batch updates in its own
 * transaction, so `stats()` is exact and survives crashes with the data it counts. Each
 * op's previous value length feeds them: read in the transaction, or taken from a put's
 * `replaces` hint (see MetaOp), which this store trusts: a wrong hint skews `stats()`,
 * never the data.
 *
 * Durability promise: `batch()` is atomic (one LMDB child transaction) and visible once
 * it resolves; it is durable once `batch(..., { sync: true })` or a later `flush()`
 * resolves. Batches issued in the same event turn share one LMDB transaction and one
 * disk sync (group commit: lmdb-js event-turn batching plus `overlappingSync`, which
 * syncs after the commit instead of under the write lock). After a crash a reopen shows
 * the state after a prefix of the batches in commit order that contains every durable
 * batch and never part of one:
 * - process kill (same boot): the OS page cache survives, and LMDB opens the latest
 *   committed transaction, so every batch whose `batch()` resolved is there;
 * - power loss / OS crash (the kernel boot id changed), or `safeRestore: true`: LMDB
 *   opens the latest transaction it recorded as flushed, so only durable batches are
 *   guaranteed.
 *
 * Fault model: what LMDB assumes — the file system honours `fdatasync`/`msync` and does
 * not corrupt synced pages. LMDB keeps no checksums; a damaged page is found only when
 * LMDB notices it (`CORRUPTION` for MDB_CORRUPTED / MDB_PAGE_NOTFOUND / MDB_INVALID).
 *
 * The map is a read-only shared mapping of the file, so its pages are page cache, not
 * anonymous memory; but every page touched through it counts in the process's RSS. It is
 * reserved at `DEFAULT_LMDB_MAP_BYTES` (address space only: the file grows with
 * the data, not with the map) because lmdb-js never unmaps a map it outgrew: each
 * doubling from a small map left the old mapping and its touched pages in place, so a
 * store that grew to 26 MiB held 65 MiB of mapped pages (issue #13, measured).
 */
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { open as openLmdb, type RootDatabase, type Transaction } from 'lmdb';
import type { ErrorCode } from '../core/error-codes.js';
import { DrkitError, throwIfAborted, toDrkitError, AbortError } from '../core/errors.js';
import type { IoOptions } from './block-device.js';
import type { BatchOptions, MetaOp, MetaRange, MetaStore, MetaStoreStats } from './meta-store.js';
import { assertKey, validateBatch } from './internal/meta-batch.js';
import { checkLmdbHeader } from './internal/lmdb-header.js';
import { LMDB_MAX_STORED_KEY_BYTES, copyBytes, internalKey, toLmdbRange, toStoredKey, type LmdbRangeOptions } from './internal/lmdb-keys.js';

/**
 * Largest key an {@link LmdbMetaStore} accepts, in bytes: 1977. LMDB refuses keys over
 * 1978 bytes (lmdb-js's bound for its default page size) and the store spends one byte
 * on a namespace prefix, which also lets the contract's empty key exist (LMDB refuses
 * zero-length keys). Longer keys are refused with INVALID_ARGUMENT; range bounds may
 * be longer.
 */
export const LMDB_META_STORE_MAX_KEY_BYTES = LMDB_MAX_STORED_KEY_BYTES - 1;

/**
 * Address space reserved for an environment's map when `mapSizeBytes` is not given:
 * 64 GiB, room for the metadata of ~2.5 TiB of volumes at 16 KiB blocks (~26 MiB of LMDB
 * per GiB measured), and 2,000 open stores fit in x86-64's 128 TiB of user address space.
 * A bigger store still works: lmdb-js doubles the map when it is full (keeping the old
 * mapping, see the module comment). Reserving costs no memory and no disk: the file grows
 * with its pages, not with the map.
 */
export const DEFAULT_LMDB_MAP_BYTES = 64 * 1024 * 1024 * 1024;

/** On-disk format of the records inside the environment; bump on any layout change. */
const FORMAT_VERSION = 1;
const FORMAT_KEY = internalKey('format');
const COUNTERS_KEY = internalKey('counters');
/** Internal records in the database: excluded from `keyCount`. */
const INTERNAL_RECORD_COUNT = 2;
/** The counters record: key count then live bytes, u64 little-endian each. */
const COUNTERS_BYTES = 16;

/** LMDB return codes (lmdb.h) and errnos that map to a specific drkit code; the rest are IO_ERROR. */
const LMDB_ERROR_CODES: Readonly<Record<number, ErrorCode>> = {
  [-30797]: 'CORRUPTION', // MDB_PAGE_NOTFOUND
  [-30796]: 'CORRUPTION', // MDB_CORRUPTED
  [-30794]: 'FORMAT_VERSION', // MDB_VERSION_MISMATCH
  [-30793]: 'CORRUPTION', // MDB_INVALID: not an LMDB file
  [-30792]: 'NO_SPACE', // MDB_MAP_FULL
  [-30790]: 'BUSY', // MDB_READERS_FULL
  2: 'NOT_FOUND', // ENOENT
  11: 'BUSY', // EAGAIN
  16: 'BUSY', // EBUSY
  28: 'NO_SPACE', // ENOSPC
};

/** Resolved paths of the environments this module has open: LMDB must not open one twice per process. */
const openPaths = new Set<string>();

/** Options of {@link LmdbMetaStore.open}. */
export interface LmdbMetaStoreOptions {
  /** Directory of the LMDB environment (`data.mdb`, `lock.mdb`); one store per directory. */
  path: string;
  /** Create the directory and the environment when absent. @defaultValue false */
  create?: boolean;
  /**
   * Initial map size in bytes (virtual address space reserved for the file). The map
   * grows by itself when full, but each growth leaves the old mapping in place (lmdb-js),
   * so a map sized for the store keeps its mapped pages counted once.
   * @defaultValue {@link DEFAULT_LMDB_MAP_BYTES} (64 GiB of address space)
   */
  mapSizeBytes?: number;
  /**
   * Always reopen at the latest *flushed* transaction, even after a process kill on the
   * same boot (which otherwise keeps committed-but-unflushed batches).
   * @defaultValue false
   */
  safeRestore?: boolean;
  /** Cancels the open. */
  signal?: AbortSignal;
}

/** {@link MetaStoreStats} plus LMDB's transaction counter. */
export interface LmdbMetaStoreStats extends MetaStoreStats {
  /**
   * Id of the last committed LMDB transaction. Each transaction costs at most one disk
   * sync, so its growth bounds the syncs spent (group commit shares one among batches).
   */
  readonly lastTxnId: number;
}

/** Maps a foreign (lmdb-js, fs) error to a DrkitError. */
function mapLmdbError(err: unknown, message: string): DrkitError {
  if (err instanceof DrkitError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const text = String((err as Error | null)?.message ?? err);
  let mapped: ErrorCode = 'IO_ERROR';
  if (typeof code === 'number') mapped = LMDB_ERROR_CODES[code] ?? 'IO_ERROR';
  else if (/MDB_MAP_FULL/.test(text)) mapped = 'NO_SPACE';
  else if (/MDB_CORRUPTED|MDB_PAGE_NOTFOUND|MDB_INVALID/.test(text)) mapped = 'CORRUPTION';
  return toDrkitError(err, mapped, message, typeof code === 'number' ? { lmdbCode: code } : undefined);
}

/** Rejects with ABORTED when `signal` fires first; `promise` itself is not cancelled. */
function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  throwIfAborted(signal);
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = (): void => reject(new AbortError('wait aborted', { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolvePromise(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

interface Counters {
  keyCount: number;
  liveBytes: number;
}

function decodeCounters(bytes: Uint8Array | undefined): Counters {
  if (bytes === undefined || bytes.length !== COUNTERS_BYTES) {
    throw new DrkitError('CORRUPTION', 'LmdbMetaStore: the counters record is missing or malformed');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, COUNTERS_BYTES);
  return { keyCount: Number(view.getBigUint64(0, true)), liveBytes: Number(view.getBigUint64(8, true)) };
}

function encodeCounters(counters: Counters): Buffer {
  const bytes = Buffer.alloc(COUNTERS_BYTES);
  bytes.writeBigUInt64LE(BigInt(counters.keyCount), 0);
  bytes.writeBigUInt64LE(BigInt(counters.liveBytes), 8);
  return bytes;
}

/** A batch op in stored form, copied when `batch()` is called. */
interface StoredOp {
  readonly key: Buffer;
  /** undefined for a delete. */
  readonly value: Uint8Array | undefined;
  /** A put's `replaces` hint (see MetaOp): the previous value's length, null for none, undefined unknown. */
  readonly replaces: number | null | undefined;
}

/** A read transaction and cursor pinned by one running iteration. */
interface Pin {
  readonly txn: Transaction;
  readonly cursor: Iterator<{ key: Buffer; value: Buffer }>;
  released: boolean;
}

/** A {@link MetaStore} on an LMDB environment. */
export class LmdbMetaStore implements MetaStore {
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly pins = new Set<Pin>();

  private constructor(
    private readonly db: RootDatabase<Buffer, Buffer>,
    private readonly resolvedPath: string,
  ) {}

  /**
   * Opens the store in directory `path` (creating it with `create: true`). A second open
   * of the same directory in this process while the first is open rejects with BUSY
   * (LMDB forbids two handles on one environment per process); other processes may
   * open it too (LMDB's lock file serialises writers).
   * @throws INVALID_ARGUMENT for bad options; NOT_FOUND (no store and no `create`); BUSY;
   * FORMAT_VERSION (another format, or another LMDB version's file); CORRUPTION (not a
   * drkit store, or damaged); IO_ERROR; ABORTED
   */
  static async open(options: LmdbMetaStoreOptions): Promise<LmdbMetaStore> {
    if (typeof options !== 'object' || options === null || typeof options.path !== 'string' || options.path === '') {
      throw new DrkitError('INVALID_ARGUMENT', 'LmdbMetaStore.open: options.path must be a non-empty string', { data: { name: 'path' } });
    }
    const { create = false, mapSizeBytes, safeRestore = false, signal } = options;
    if (typeof create !== 'boolean') throw new DrkitError('INVALID_ARGUMENT', 'create must be a boolean', { data: { name: 'create' } });
    if (typeof safeRestore !== 'boolean') throw new DrkitError('INVALID_ARGUMENT', 'safeRestore must be a boolean', { data: { name: 'safeRestore' } });
    if (mapSizeBytes !== undefined && (!Number.isSafeInteger(mapSizeBytes) || mapSizeBytes <= 0)) {
      throw new DrkitError('INVALID_ARGUMENT', 'mapSizeBytes must be a positive integer', { data: { name: 'mapSizeBytes' } });
    }
    throwIfAborted(signal);
    const dir = resolve(options.path);
    let resolvedPath: string;
    try {
      const dataFile = join(dir, 'data.mdb');
      if (!existsSync(dataFile)) {
        if (!create) throw new DrkitError('NOT_FOUND', `LmdbMetaStore: no store at ${dir} and create is false`, { data: { path: dir } });
        mkdirSync(dir, { recursive: true });
      } else checkLmdbHeader(dataFile);
      resolvedPath = realpathSync(dir);
    } catch (err) {
      throw mapLmdbError(err, `LmdbMetaStore: cannot open ${dir}`);
    }
    if (openPaths.has(resolvedPath)) {
      throw new DrkitError('BUSY', `LmdbMetaStore: ${resolvedPath} is already open in this process`, { data: { path: resolvedPath } });
    }
    openPaths.add(resolvedPath);
    let db: RootDatabase<Buffer, Buffer> | undefined;
    try {
      // safeRestore is a documented lmdb-js option missing from its typings.
      const lmdbOptions: Parameters<typeof openLmdb>[0] & { safeRestore: boolean } = {
        path: resolvedPath,
        noSubdir: false,
        keyEncoding: 'binary',
        encoding: 'binary',
        overlappingSync: true,
        separateFlushed: true,
        safeRestore,
        cache: false,
        compression: false,
        mapSize: mapSizeBytes ?? DEFAULT_LMDB_MAP_BYTES,
      };
      db = openLmdb<Buffer, Buffer>(lmdbOptions);
      const maxKeySize = (db as unknown as { maxKeySize?: number }).maxKeySize;
      if (maxKeySize !== undefined && maxKeySize < LMDB_MAX_STORED_KEY_BYTES) {
        throw new DrkitError('NOT_SUPPORTED', `LmdbMetaStore: LMDB holds keys up to ${maxKeySize} bytes; ${LMDB_MAX_STORED_KEY_BYTES} are needed`);
      }
      await LmdbMetaStore.checkFormat(db, create, resolvedPath);
      return new LmdbMetaStore(db, resolvedPath);
    } catch (err) {
      await db?.close().catch(() => undefined);
      openPaths.delete(resolvedPath);
      throw mapLmdbError(err, `LmdbMetaStore: cannot open ${resolvedPath}`);
    }
  }

  /** Verifies (or, for a new environment with `create`, writes) the format and counters records. */
  private static async checkFormat(db: RootDatabase<Buffer, Buffer>, create: boolean, path: string): Promise<void> {
    const entryCount = (db.getStats() as { entryCount: number }).entryCount;
    const format = db.getBinary(FORMAT_KEY);
    if (format === undefined) {
      if (entryCount > 0) throw new DrkitError('CORRUPTION', `LmdbMetaStore: ${path} holds an LMDB environment that is not a drkit store`);
      // An empty environment is a store whose creation was cut short: nothing was committed.
      if (!create) throw new DrkitError('NOT_FOUND', `LmdbMetaStore: ${path} holds no store and create is false`, { data: { path } });
      const version = Buffer.alloc(4);
      version.writeUInt32LE(FORMAT_VERSION, 0);
      await db.childTransaction(() => {
        db.putSync(FORMAT_KEY, version);
        db.putSync(COUNTERS_KEY, encodeCounters({ keyCount: 0, liveBytes: 0 }));
      });
      await db.flushed;
      return;
    }
    if (format.length !== 4 || format.readUInt32LE(0) !== FORMAT_VERSION) {
      throw new DrkitError('FORMAT_VERSION', `LmdbMetaStore: ${path} has a format version this build cannot read`);
    }
    // Verify after reading: the counters must agree with what LMDB holds.
    const counters = decodeCounters(db.getBinary(COUNTERS_KEY));
    if (counters.keyCount !== entryCount - INTERNAL_RECORD_COUNT) {
      throw new DrkitError('CORRUPTION', `LmdbMetaStore: counters say ${counters.keyCount} keys, LMDB holds ${entryCount - INTERNAL_RECORD_COUNT}`);
    }
  }

  /** The value at `key` (a fresh copy), or undefined. @throws NOT_OPEN, INVALID_ARGUMENT (also for a key over {@link LMDB_META_STORE_MAX_KEY_BYTES}), ABORTED, IO_ERROR */
  async get(key: Uint8Array, options?: IoOptions): Promise<Uint8Array | undefined> {
    this.assertOpen();
    throwIfAborted(options?.signal);
    assertKey(key, 'key', LMDB_META_STORE_MAX_KEY_BYTES);
    return this.read(key);
  }

  /** Values in request order, all from one read snapshot. @throws NOT_OPEN, INVALID_ARGUMENT, ABORTED, IO_ERROR */
  async getMany(keys: readonly Uint8Array[], options?: IoOptions): Promise<(Uint8Array | undefined)[]> {
    this.assertOpen();
    throwIfAborted(options?.signal);
    if (!Array.isArray(keys)) throw new DrkitError('INVALID_ARGUMENT', 'keys must be an array', { data: { name: 'keys' } });
    keys.forEach((key, index) => assertKey(key, `keys[${index}]`, LMDB_META_STORE_MAX_KEY_BYTES, { index }));
    // Synchronous reads in one turn share lmdb-js's current read transaction.
    return keys.map((key) => this.read(key));
  }

  /**
   * Applies `ops` atomically in one LMDB child transaction; batches issued in the same
   * event turn share the parent transaction and its sync. Keys and values are copied at
   * the call. An abort after the batch was accepted only stops the wait for durability.
   * A put's `replaces` hint is trusted for the counters (not checked: that would be the
   * read it saves).
   * @throws NOT_OPEN, INVALID_ARGUMENT (bad op, a key over {@link LMDB_META_STORE_MAX_KEY_BYTES},
   * a batch over 64 MiB), ABORTED, NO_SPACE, IO_ERROR
   */
  async batch(ops: readonly MetaOp[], options?: BatchOptions): Promise<void> {
    this.assertOpen();
    throwIfAborted(options?.signal);
    validateBatch(ops, LMDB_META_STORE_MAX_KEY_BYTES);
    if (ops.length > 0) {
      const stored: StoredOp[] = ops.map((op) =>
        op.kind === 'put' ? { key: toStoredKey(op.key), value: copyBytes(op.value), replaces: op.replaces } : { key: toStoredKey(op.key), value: undefined, replaces: undefined },
      );
      await this.track(this.db.childTransaction(() => this.applyInTxn(stored)), 'batch');
    }
    if (options?.sync === true) await this.waitFlushed(options.signal);
  }

  /**
   * Entries within `range` from one LMDB read transaction taken at the first `next()`,
   * so batches committed meanwhile are not seen. The transaction is released when the
   * iteration ends, breaks or throws, and by `close()`. Errors (NOT_OPEN,
   * INVALID_ARGUMENT, ABORTED, IO_ERROR) reject a `next()`.
   */
  iterate(range?: MetaRange, options?: IoOptions): AsyncIterable<[Uint8Array, Uint8Array]> {
    let setupError: unknown;
    let lmdbRange: LmdbRangeOptions | undefined;
    try {
      this.assertOpen();
      lmdbRange = toLmdbRange(range, LMDB_META_STORE_MAX_KEY_BYTES);
    } catch (err) {
      setupError = err;
    }
    const signal = options?.signal;
    const store = this;
    return {
      async *[Symbol.asyncIterator]() {
        if (setupError !== undefined) throw setupError;
        store.assertOpen();
        if (lmdbRange === undefined) return;
        const pin = store.pin(lmdbRange);
        try {
          for (let yielded = 0; yielded < lmdbRange.limit; yielded++) {
            store.assertOpen();
            throwIfAborted(signal);
            let step: IteratorResult<{ key: Buffer; value: Buffer }>;
            try {
              step = pin.cursor.next();
            } catch (err) {
              throw mapLmdbError(err, 'LmdbMetaStore: iteration failed');
            }
            if (step.done === true) return;
            yield [copyBytes(step.value.key, 1), copyBytes(step.value.value)];
          }
        } finally {
          store.release(pin);
        }
      },
    };
  }

  /** Makes every batch that resolved before the call durable (waits for LMDB's flush). @throws NOT_OPEN, ABORTED, IO_ERROR */
  async flush(options?: IoOptions): Promise<void> {
    this.assertOpen();
    throwIfAborted(options?.signal);
    await this.waitFlushed(options?.signal);
  }

  /**
   * `keyCount` and `liveBytes` come from the counters record (one snapshot, exact);
   * `storedBytes` is the data file's high-water mark (used pages x page size; LMDB
   * reuses freed pages but never shrinks the file).
   * @throws NOT_OPEN, CORRUPTION, IO_ERROR
   */
  async stats(): Promise<LmdbMetaStoreStats> {
    this.assertOpen();
    try {
      const counters = decodeCounters(this.db.getBinaryFast(COUNTERS_KEY));
      const info = this.db.getStats() as { lastPageNumber: number; pageSize: number; lastTxnId: number };
      return { ...counters, storedBytes: (info.lastPageNumber + 1) * info.pageSize, lastTxnId: info.lastTxnId };
    } catch (err) {
      throw mapLmdbError(err, 'LmdbMetaStore: stats failed');
    }
  }

  /**
   * Waits for in-flight batches, makes them durable, releases running iterations (their
   * next `next()` rejects NOT_OPEN) and closes the environment. Idempotent.
   * @throws IO_ERROR when the final flush or close fails (the store is closed anyway)
   */
  async close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.state = 'closing';
    this.closing = (async () => {
      let failure: unknown;
      try {
        await Promise.allSettled([...this.inFlight]);
        await this.db.flushed;
      } catch (err) {
        failure = err;
      }
      for (const pin of [...this.pins]) this.release(pin);
      try {
        await this.db.close();
      } catch (err) {
        failure ??= err;
      }
      openPaths.delete(this.resolvedPath);
      this.state = 'closed';
      if (failure !== undefined) throw mapLmdbError(failure, 'LmdbMetaStore: close failed');
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new DrkitError('NOT_OPEN', 'LmdbMetaStore is closed');
  }

  private read(key: Uint8Array): Uint8Array | undefined {
    try {
      // getBinaryFast returns a reused buffer; copy it out at once.
      const value = this.db.getBinaryFast(toStoredKey(key));
      return value === undefined ? undefined : copyBytes(value);
    } catch (err) {
      throw mapLmdbError(err, 'LmdbMetaStore: read failed');
    }
  }

  /** Runs inside the write transaction: applies `ops` and updates the counters with exact deltas. */
  private applyInTxn(ops: readonly StoredOp[]): void {
    let keyDelta = 0;
    let byteDelta = 0;
    for (const op of ops) {
      // A put's hint stands for the read (a random B-tree lookup per count a shadowed leaf
      // changes); a delete always reads, since it must know whether the key was there.
      // Reads inside the callback see the transaction's own writes, including earlier ops.
      let previousBytes: number | undefined;
      if (op.replaces !== undefined) previousBytes = op.replaces ?? undefined;
      else previousBytes = this.db.getBinaryFast(op.key)?.length;
      const keyBytes = op.key.length - 1;
      if (op.value !== undefined) {
        this.db.putSync(op.key, op.value as Buffer);
        if (previousBytes === undefined) {
          keyDelta++;
          byteDelta += keyBytes + op.value.length;
        } else byteDelta += op.value.length - previousBytes;
      } else if (previousBytes !== undefined) {
        this.db.removeSync(op.key);
        keyDelta--;
        byteDelta -= keyBytes + previousBytes;
      }
    }
    if (keyDelta === 0 && byteDelta === 0) return;
    const counters = decodeCounters(this.db.getBinaryFast(COUNTERS_KEY));
    this.db.putSync(COUNTERS_KEY, encodeCounters({ keyCount: counters.keyCount + keyDelta, liveBytes: counters.liveBytes + byteDelta }));
  }

  /** Awaits `promise`, mapping its error, and lets `close()` wait for it. */
  private async track<T>(promise: Promise<T>, what: string): Promise<T> {
    this.inFlight.add(promise);
    try {
      return await promise;
    } catch (err) {
      throw mapLmdbError(err, `LmdbMetaStore: ${what} failed`);
    } finally {
      this.inFlight.delete(promise);
    }
  }

  private async waitFlushed(signal: AbortSignal | undefined): Promise<void> {
    // db.flushed is a thenable; wrap it so close() can await it and abort can stop the wait.
    const flushed = Promise.resolve(this.db.flushed).then(() => undefined);
    await unlessAborted(this.track(flushed, 'flush'), signal);
  }

  private pin(range: LmdbRangeOptions): Pin {
    let txn: Transaction | undefined;
    try {
      txn = this.db.useReadTransaction();
      const { start, end, reverse, exclusiveStart, inclusiveEnd } = range;
      const cursor = this.db.getRange({ transaction: txn, start, end, reverse, exclusiveStart, inclusiveEnd })[Symbol.iterator]();
      const pin: Pin = { txn, cursor, released: false };
      this.pins.add(pin);
      return pin;
    } catch (err) {
      txn?.done();
      throw mapLmdbError(err, 'LmdbMetaStore: cannot start iteration');
    }
  }

  /** Closes the cursor, then ends the read transaction (in that order: LMDB must not abort a transaction under an open cursor). */
  private release(pin: Pin): void {
    if (pin.released) return;
    pin.released = true;
    this.pins.delete(pin);
    try {
      pin.cursor.return?.();
    } finally {
      pin.txn.done();
    }
  }
}
