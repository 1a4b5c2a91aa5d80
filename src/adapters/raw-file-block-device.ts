/**
 * A BlockDevice over a regular file or a block special file (Node only).
 *
 * Durability promise: `flush()` writes out every write that resolved before it and then
 * `fdatasync`s the descriptor; after it resolves those bytes survive power loss (as far
 * as the OS and disk honour fdatasync). Before that, a crash may lose or tear any
 * unflushed write, at the disk's sector granularity (512 B declared).
 *
 * I/O path: writes are copied into a bounded write-behind buffer and resolve at once;
 * a background pump merges adjacent writes into large pwritev calls (see
 * internal/write-behind-buffer.ts for the measurements behind this). Reads see pending
 * writes. A failed background write poisons the device: every later call except
 * `close()` rejects with that error (never lost silently).
 *
 * Length: regular files use `fstat`; block special files report size 0 there, so their
 * length is probed with one-byte reads (see `probeReadableLength`).
 *
 * Discard: Node cannot reach `fallocate(PUNCH_HOLE)`, so discard writes zeros through
 * the normal write path in bounded chunks; it zeroes but frees no space. (Truncating
 * and re-extending would only work for a range at the end of the file.)
 */
import fs from 'node:fs';
import type { BlockDevice, BlockDeviceCapabilities, BlockRead, BlockWrite, IoOptions } from './block-device.js';
import { DrkitError, throwIfAborted, toDrkitError } from '../core/errors.js';
import { assertNonNegativeInteger } from '../core/validate.js';
import {
  assertOpen,
  checkExtent,
  checkNewLength,
  checkOptions,
  checkReads,
  checkWrite,
  checkWrites,
  freezeCapabilities,
  requireCapability,
} from './internal/device-guard.js';
import { fsCall, probeReadableLength, readFully, writeFully } from './internal/fd-io.js';
import { WriteBehindBuffer } from './internal/write-behind-buffer.js';

/**
 * Pending-write bound: 8 MiB keeps eight 1 MiB merged writes queued so the disk never
 * idles while the caller copies, yet caps memory per open device at 8 MiB.
 */
const MAX_PENDING_BYTES = 8 * 1024 * 1024;
/** Largest merged write: 1 MiB amortises the ~40 µs call cost to <3% (measured ~2 GB/s). */
const RUN_MAX_BYTES = 1024 * 1024;
/** Background writes in flight: libuv's default pool has 4 threads; measured best for scattered 4 KiB writes. */
const MAX_IN_FLIGHT_WRITES = 4;
/** Read groups in flight for `readv`, for the same threadpool reason. */
const MAX_IN_FLIGHT_READS = 4;
/** Zero chunk for discard: bounded so a huge discard streams through the pending bound. */
const DISCARD_CHUNK_BYTES = 1024 * 1024;
/** Concurrency declared to callers: calls are cheap (copy or queued read); the pool bounds real I/O. */
const RAW_FILE_MAX_CONCURRENCY = 64;

/** Options of {@link RawFileBlockDevice.open}. */
export interface RawFileBlockDeviceOptions {
  /** Path of a regular file or block special file. */
  path: string;
  /**
   * Create the file when it is absent. `true` opens an existing file as it is, or creates
   * an empty (0-byte) one, as `FileMetaStore.open({ create: true })` does; grow it with
   * `resize` (a `DeviceExtentStore` grows its device by itself). An object creates a
   * sparse regular file of `byteLength` (default 0): an existing path then fails with
   * `ALREADY_EXISTS`, unless `overwrite` (truncate and recreate it) or `openExisting`
   * (open it as it is; `byteLength` only applies to a new file).
   * @defaultValue undefined (open an existing file)
   */
  create?: boolean | { byteLength?: number; overwrite?: boolean; openExisting?: boolean };
  /** Open without write access; write, discard and resize fail with `NOT_SUPPORTED`. @defaultValue false */
  readOnly?: boolean;
}

const ZEROES = new Uint8Array(DISCARD_CHUNK_BYTES);

/**
 * A {@link BlockDevice} over a file or block special file. Capabilities:
 * `durableFlush: true`, `discard` unless read-only, `resizable` for writable regular
 * files, `alignmentBytes: 1`, `atomicWriteBytes: 512`, `maxConcurrency: 64`.
 */
export class RawFileBlockDevice implements BlockDevice {
  readonly capabilities: Readonly<BlockDeviceCapabilities>;
  /** The path the device was opened with. */
  readonly path: string;
  /** True for a block special file (length probed, not resizable). */
  readonly isBlockSpecial: boolean;
  readonly #fd: number;
  readonly #readOnly: boolean;
  readonly #pending: WriteBehindBuffer;
  #byteLength: number;
  #closing: Promise<void> | undefined;

  private constructor(fd: number, path: string, byteLength: number, isBlockSpecial: boolean, readOnly: boolean) {
    this.#fd = fd;
    this.path = path;
    this.#byteLength = byteLength;
    this.isBlockSpecial = isBlockSpecial;
    this.#readOnly = readOnly;
    this.capabilities = freezeCapabilities({
      durableFlush: true,
      discard: !readOnly,
      resizable: !readOnly && !isBlockSpecial,
      alignmentBytes: 1,
      atomicWriteBytes: 512,
      maxConcurrency: RAW_FILE_MAX_CONCURRENCY,
    });
    this.#pending = new WriteBehindBuffer((chunks, byteOffset) => writeFully(fd, chunks, byteOffset), {
      maxPendingBytes: MAX_PENDING_BYTES,
      maxInFlight: MAX_IN_FLIGHT_WRITES,
      runMaxBytes: RUN_MAX_BYTES,
    });
  }

  /**
   * Opens (or with `create`, creates) the device.
   * @throws INVALID_ARGUMENT for bad options or a path that is neither a regular nor a block special file
   * @throws NOT_FOUND, ALREADY_EXISTS, IO_ERROR
   */
  static async open(options: RawFileBlockDeviceOptions): Promise<RawFileBlockDevice> {
    if (options === null || typeof options !== 'object' || typeof options.path !== 'string' || options.path === '') {
      throw new DrkitError('INVALID_ARGUMENT', 'RawFileBlockDevice.open: options.path must be a non-empty string');
    }
    const { path } = options;
    const readOnly = options.readOnly ?? false;
    const create = normalizeCreate(options.create);
    if (create !== undefined && readOnly) throw new DrkitError('INVALID_ARGUMENT', 'create and readOnly exclude each other');
    let created = create !== undefined;
    let fd: number;
    try {
      fd = await openFd(path, create === undefined ? (readOnly ? 'r' : 'r+') : create.overwrite ? 'w+' : 'wx+');
    } catch (err) {
      // Open-or-create: the path exists, so open it as it is (no existence check race).
      if (!(create?.openExisting === true && (err as NodeJS.ErrnoException).code === 'EEXIST')) throw toDrkitError(err, 'IO_ERROR', `cannot open ${path}`, { path });
      fd = await openFd(path, 'r+').catch((e: unknown) => {
        throw toDrkitError(e, 'IO_ERROR', `cannot open ${path}`, { path });
      });
      created = false;
    }
    try {
      const stat = await new Promise<fs.Stats>((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
      if (!stat.isFile() && !stat.isBlockDevice()) {
        throw new DrkitError('INVALID_ARGUMENT', `${path} is neither a regular file nor a block special file`, { data: { path } });
      }
      let byteLength: number;
      if (created && create !== undefined) {
        if (!stat.isFile()) throw new DrkitError('INVALID_ARGUMENT', `create needs a regular file path: ${path}`, { data: { path } });
        // ftruncate on a fresh file allocates no blocks: the file is sparse.
        await fsCall((cb) => fs.ftruncate(fd, create.byteLength, cb), 'ftruncate');
        byteLength = create.byteLength;
      } else byteLength = stat.isFile() ? stat.size : await probeReadableLength(fd);
      return new RawFileBlockDevice(fd, path, byteLength, stat.isBlockDevice(), readOnly);
    } catch (err) {
      fs.close(fd, () => undefined);
      throw toDrkitError(err, 'IO_ERROR', `cannot open ${path}`, { path });
    }
  }

  /** Current length in bytes. */
  get byteLength(): number {
    return this.#byteLength;
  }

  /** @throws NOT_OPEN, ABORTED, INVALID_ARGUMENT, OUT_OF_RANGE, SHORT_IO, IO_ERROR */
  async read(byteOffset: number, byteLength: number, options?: IoOptions): Promise<Uint8Array> {
    this.#enter(options, 'read');
    checkExtent(this, byteOffset, byteLength, 'read');
    return this.#readOne(byteOffset, byteLength);
  }

  /** Adjacent reads become one preadv; groups run 4 at a time; each read lands in its `into` when given. @throws as {@link read} */
  async readv(reads: readonly BlockRead[], options?: IoOptions): Promise<Uint8Array[]> {
    this.#enter(options, 'readv');
    checkReads(this, reads);
    const out = reads.map((r) => r.into ?? newBytes(r.byteLength));
    const groups: number[][] = [];
    reads.forEach((r, i) => {
      const group = groups[groups.length - 1];
      const prev = group ? reads[group[group.length - 1] as number] : undefined;
      if (group && prev && prev.byteOffset + prev.byteLength === r.byteOffset) group.push(i);
      else groups.push([i]);
    });
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < groups.length) {
        const group = groups[next++] as number[];
        const first = reads[group[0] as number] as BlockRead;
        const spanBytes = group.reduce((n, i) => n + (reads[i] as BlockRead).byteLength, 0);
        const runs = this.#pending.overlapping(first.byteOffset, spanBytes);
        await readFully(this.#fd, group.map((i) => out[i] as Uint8Array), first.byteOffset);
        for (const i of group) WriteBehindBuffer.overlay(runs, (reads[i] as BlockRead).byteOffset, out[i] as Uint8Array);
      }
    };
    await Promise.all(Array.from({ length: Math.min(MAX_IN_FLIGHT_READS, groups.length) }, worker));
    this.#throwIfPoisoned();
    return out;
  }

  /** Resolves once `data` is copied into the write-behind buffer. @throws NOT_OPEN, ABORTED, INVALID_ARGUMENT, OUT_OF_RANGE, NOT_SUPPORTED (read-only), or the poison error */
  async write(byteOffset: number, data: Uint8Array, options?: IoOptions): Promise<void> {
    this.#enterWrite(options, 'write');
    checkWrite(this, byteOffset, data);
    await this.#pending.write(byteOffset, data);
  }

  /** Applied in order through the write-behind buffer. @throws as {@link write} */
  async writev(writes: readonly BlockWrite[], options?: IoOptions): Promise<void> {
    this.#enterWrite(options, 'writev');
    checkWrites(this, writes);
    for (const w of writes) await this.#pending.write(w.byteOffset, w.data);
  }

  /** Writes zeros over the range (no hole punching from Node). @throws as {@link write} */
  async discard(byteOffset: number, byteLength: number, options?: IoOptions): Promise<void> {
    this.#enterWrite(options, 'discard');
    requireCapability(this, 'discard', 'discard');
    checkExtent(this, byteOffset, byteLength, 'discard');
    for (let done = 0; done < byteLength; done += DISCARD_CHUNK_BYTES) {
      throwIfAborted(options?.signal);
      await this.#pending.write(byteOffset + done, ZEROES.subarray(0, Math.min(DISCARD_CHUNK_BYTES, byteLength - done)));
    }
  }

  /** Writes out pending data, then fdatasync. @throws NOT_OPEN, ABORTED, IO_ERROR, or the poison error */
  async flush(options?: IoOptions): Promise<void> {
    this.#enter(options, 'flush');
    await this.#pending.drain();
    await fsCall((cb) => fs.fdatasync(this.#fd, cb), 'fdatasync');
  }

  /** ftruncate after writing out pending data (regular files only). @throws NOT_SUPPORTED for block special or read-only, INVALID_ARGUMENT, IO_ERROR */
  async resize(byteLength: number, options?: IoOptions): Promise<void> {
    this.#enter(options, 'resize');
    requireCapability(this, 'resizable', 'resize');
    checkNewLength(this, byteLength);
    // Shrink the visible length first so no new write lands past the new end.
    if (byteLength < this.#byteLength) this.#byteLength = byteLength;
    await this.#pending.drain();
    await fsCall((cb) => fs.ftruncate(this.#fd, byteLength, cb), 'ftruncate');
    this.#byteLength = byteLength;
  }

  /**
   * Writes out pending data (no fsync) and closes the descriptor. Idempotent. Rejects
   * with the poison error if pending data could not be written (the fd is closed anyway).
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#pending.drain();
      } finally {
        await fsCall((cb) => fs.close(this.#fd, cb), 'close');
      }
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #readOne(byteOffset: number, byteLength: number): Promise<Uint8Array> {
    const out = newBytes(byteLength);
    // Snapshot the pending runs before reading: a run that completes during the read
    // may or may not be in the file data, and overlaying it again is always correct.
    const runs = this.#pending.overlapping(byteOffset, byteLength);
    await readFully(this.#fd, [out], byteOffset);
    WriteBehindBuffer.overlay(runs, byteOffset, out);
    this.#throwIfPoisoned();
    return out;
  }

  #enter(options: IoOptions | undefined, what: string): void {
    assertOpen(this.#closing === undefined, what);
    checkOptions(options, what);
    this.#throwIfPoisoned();
  }

  #enterWrite(options: IoOptions | undefined, what: string): void {
    this.#enter(options, what);
    if (this.#readOnly) throw new DrkitError('NOT_SUPPORTED', `${what}: device was opened read-only`, { data: { path: this.path } });
  }

  #throwIfPoisoned(): void {
    const failure = this.#pending.failure;
    if (failure) throw failure;
  }
}

/** The object form of `create`, validated; undefined when not creating. */
function normalizeCreate(create: RawFileBlockDeviceOptions['create']): { byteLength: number; overwrite: boolean; openExisting: boolean } | undefined {
  if (create === undefined || create === false) return undefined;
  if (create === true) return { byteLength: 0, overwrite: false, openExisting: true };
  if (create === null || typeof create !== 'object') throw new DrkitError('INVALID_ARGUMENT', 'create must be a boolean or an object');
  const byteLength = create.byteLength ?? 0;
  assertNonNegativeInteger(byteLength, 'create.byteLength');
  if (create.overwrite === true && create.openExisting === true) throw new DrkitError('INVALID_ARGUMENT', 'create.overwrite and create.openExisting exclude each other');
  return { byteLength, overwrite: create.overwrite === true, openExisting: create.openExisting === true };
}

function openFd(path: string, flags: string): Promise<number> {
  return new Promise<number>((resolve, reject) => fs.open(path, flags, 0o644, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** A zero-length-safe plain Uint8Array without the zero-fill cost (its own ArrayBuffer, not Buffer's pool). */
function newBytes(byteLength: number): Uint8Array {
  if (byteLength === 0) return new Uint8Array(0);
  return new Uint8Array(Buffer.allocUnsafeSlow(byteLength).buffer, 0, byteLength);
}
