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
 * Direct I/O (`direct: true`): a second descriptor opened with O_DIRECT writes every run
 * whose offset and length are whole 4 KiB units straight from page-aligned staging
 * memory (internal/aligned-arena.ts), bypassing the page cache: no copy into it, no
 * dirty-page writeback to wait for at `flush()`. Anything else (a partial trailing block,
 * an unaligned write, a run staged in heap memory when the arena is full) goes through
 * the buffered descriptor; the write-behind buffer never has overlapping runs in flight,
 * and Linux writes back and invalidates cached pages around a direct write, so both paths
 * see one file. Reads use the buffered descriptor. `fdatasync` is per file, not per
 * descriptor, so `flush()` covers both.
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
import { AlignedArena, ARENA_ALIGNMENT_BYTES } from './internal/aligned-arena.js';

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
/**
 * `readv` reads requests separated by at most this gap as one span (the gap is read and
 * dropped): an extent store leaves allocation-unit padding between extents, and reading
 * 32 KiB more from the page cache costs a few µs against ~35 µs per extra call here.
 */
const MAX_READ_GAP_BYTES = 32 * 1024;
/** Largest span one `readv` call reads (the results are views into it): the same 1 MiB as a merged write. */
const READ_SPAN_MAX_BYTES = 1024 * 1024;
/** Where the gaps of a span read into callers' buffers go (never read back; shared, as its bytes are discarded). */
const GAP_SCRATCH = new Uint8Array(MAX_READ_GAP_BYTES);
/** Zero chunk for discard: bounded so a huge discard streams through the pending bound. */
const DISCARD_CHUNK_BYTES = 1024 * 1024;
/** Concurrency declared to callers: calls are cheap (copy or queued read); the pool bounds real I/O. */
const RAW_FILE_MAX_CONCURRENCY = 64;
/**
 * Pending-write bound of a direct device: 4 MiB, the 4 writes in flight. A direct write
 * completes as the disk takes it (1 GiB in ~0.7 s here with 4 x 1 MiB in flight), with no
 * page cache to absorb a burst, so deeper staging would only cost memory.
 */
const DIRECT_MAX_PENDING_BYTES = 4 * 1024 * 1024;
/**
 * Aligned staging slabs of a direct device: the pending bound's worth plus two (the slab
 * being filled and one whose last run is in flight), so the arena covers the staging
 * of an aligned stream; a burst beyond it stages on the heap and is written buffered.
 */
const DIRECT_ARENA_SLABS = DIRECT_MAX_PENDING_BYTES / RUN_MAX_BYTES + 2;

/** {@link BlockDeviceCapabilities} of a {@link RawFileBlockDevice}, plus how it writes. */
export interface RawFileBlockDeviceCapabilities extends BlockDeviceCapabilities {
  /** Writes of whole {@link RawFileBlockDeviceCapabilities.directIoAlignmentBytes} units bypass the page cache (O_DIRECT); others are buffered. */
  readonly directIo: boolean;
  /** The unit of a direct write (offset and length): 4096 when `directIo`, else 1. */
  readonly directIoAlignmentBytes: number;
}

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
  /**
   * Write whole 4 KiB units with O_DIRECT (see the module header): for streaming a large
   * image (a restore), where page-cache copies and writeback cost more CPU than the writes.
   * Excludes `readOnly`; a file system that refuses O_DIRECT (tmpfs before Linux 6.6) fails the open with
   * `NOT_SUPPORTED`. @defaultValue false
   */
  direct?: boolean;
}

const ZEROES = new Uint8Array(DISCARD_CHUNK_BYTES);

/**
 * A {@link BlockDevice} over a file or block special file. Capabilities:
 * `durableFlush: true`, `discard` unless read-only, `resizable` for writable regular
 * files, `alignmentBytes: 1`, `atomicWriteBytes: 512`, `maxConcurrency: 64`, `directIo`
 * as opened (`directIoAlignmentBytes` 4096 then).
 */
export class RawFileBlockDevice implements BlockDevice {
  readonly capabilities: Readonly<RawFileBlockDeviceCapabilities>;
  /** The path the device was opened with. */
  readonly path: string;
  /** True for a block special file (length probed, not resizable). */
  readonly isBlockSpecial: boolean;
  readonly #fd: number;
  /** The O_DIRECT descriptor of a direct device. */
  readonly #directFd: number | undefined;
  readonly #readOnly: boolean;
  readonly #pending: WriteBehindBuffer;
  readonly #written = { directBytes: 0, bufferedBytes: 0 };
  #byteLength: number;
  #closing: Promise<void> | undefined;

  private constructor(fd: number, directFd: number | undefined, path: string, byteLength: number, isBlockSpecial: boolean, readOnly: boolean) {
    this.#fd = fd;
    this.#directFd = directFd;
    this.path = path;
    this.#byteLength = byteLength;
    this.isBlockSpecial = isBlockSpecial;
    this.#readOnly = readOnly;
    this.capabilities = Object.freeze({
      ...freezeCapabilities({
        durableFlush: true,
        discard: !readOnly,
        resizable: !readOnly && !isBlockSpecial,
        alignmentBytes: 1,
        atomicWriteBytes: 512,
        maxConcurrency: RAW_FILE_MAX_CONCURRENCY,
      }),
      directIo: directFd !== undefined,
      directIoAlignmentBytes: directFd !== undefined ? ARENA_ALIGNMENT_BYTES : 1,
    });
    const written = this.#written;
    const sink = async (chunks: Uint8Array[], byteOffset: number, aligned: boolean): Promise<void> => {
      const byteCount = chunks.reduce((n, c) => n + c.byteLength, 0);
      if (aligned && directFd !== undefined) {
        await writeDirect(directFd, chunks, byteOffset, path);
        written.directBytes += byteCount;
      } else {
        await writeFully(fd, chunks, byteOffset);
        written.bufferedBytes += byteCount;
      }
    };
    this.#pending = new WriteBehindBuffer(sink, {
      maxPendingBytes: directFd === undefined ? MAX_PENDING_BYTES : DIRECT_MAX_PENDING_BYTES,
      maxInFlight: MAX_IN_FLIGHT_WRITES,
      runMaxBytes: RUN_MAX_BYTES,
      ...(directFd === undefined ? {} : { arena: new AlignedArena(RUN_MAX_BYTES, DIRECT_ARENA_SLABS) }),
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
    const direct = options.direct ?? false;
    if (typeof direct !== 'boolean') throw new DrkitError('INVALID_ARGUMENT', 'RawFileBlockDevice.open: direct must be a boolean');
    if (direct && readOnly) throw new DrkitError('INVALID_ARGUMENT', 'direct and readOnly exclude each other (direct is a write path)');
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
      const directFd = direct ? await openDirect(path) : undefined;
      return new RawFileBlockDevice(fd, directFd, path, byteLength, stat.isBlockDevice(), readOnly);
    } catch (err) {
      fs.close(fd, () => undefined);
      throw toDrkitError(err, 'IO_ERROR', `cannot open ${path}`, { path });
    }
  }

  /** Current length in bytes. */
  get byteLength(): number {
    return this.#byteLength;
  }

  /** Bytes written to the file so far through the O_DIRECT descriptor and through the buffered one (what a bench or test reads). */
  get writtenBytes(): { readonly directBytes: number; readonly bufferedBytes: number } {
    return { ...this.#written };
  }

  /** @throws NOT_OPEN, ABORTED, INVALID_ARGUMENT, OUT_OF_RANGE, SHORT_IO, IO_ERROR */
  async read(byteOffset: number, byteLength: number, options?: IoOptions): Promise<Uint8Array> {
    this.#enter(options, 'read');
    checkExtent(this, byteOffset, byteLength, 'read');
    return this.#readOne(byteOffset, byteLength);
  }

  /**
   * Requests are taken in offset order (results stay in request order): those that follow
   * each other with gaps of at most 32 KiB become one read of their span (up to 1 MiB; the
   * results are views into it, never overlapping); spans run 4 at a time. Offset order
   * matters for an extent store after an incremental: a batch's rewritten blocks live
   * apart from the rest, and in request order they broke every span (measured: 18,438
   * reads serving a 1 GiB restore, 583 MB). A span whose requests carry `into` is read
   * with one preadv into those buffers (the gaps into a scratch buffer), so a caller
   * that reuses its buffers gets no allocation. @throws as {@link read}
   */
  async readv(reads: readonly BlockRead[], options?: IoOptions): Promise<Uint8Array[]> {
    this.#enter(options, 'readv');
    checkReads(this, reads);
    const out: Uint8Array[] = new Array(reads.length);
    const groups: { byteOffset: number; byteLength: number; members: number[] }[] = [];
    const order = reads.map((_, i) => i).sort((x, y) => reads[x]!.byteOffset - reads[y]!.byteOffset);
    let current: (typeof groups)[number] | undefined;
    for (const i of order) {
      const r = reads[i]!;
      if (r.byteLength === 0) {
        out[i] = new Uint8Array(0);
        continue;
      }
      const end = current === undefined ? 0 : current.byteOffset + current.byteLength;
      if (current !== undefined && r.byteOffset < end) {
        // Overlaps the span being built: read on its own, so no two results share bytes.
        groups.push({ byteOffset: r.byteOffset, byteLength: r.byteLength, members: [i] });
      } else if (current !== undefined && r.byteOffset - end <= MAX_READ_GAP_BYTES && r.byteOffset + r.byteLength - current.byteOffset <= READ_SPAN_MAX_BYTES) {
        current.byteLength = r.byteOffset + r.byteLength - current.byteOffset;
        current.members.push(i);
      } else {
        current = { byteOffset: r.byteOffset, byteLength: r.byteLength, members: [i] };
        groups.push(current);
      }
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < groups.length) {
        const group = groups[next++]!;
        const runs = this.#pending.overlapping(group.byteOffset, group.byteLength);
        if (group.members.every((i) => reads[i]!.into === undefined)) {
          const span = newBytes(group.byteLength);
          await readFully(this.#fd, [span], group.byteOffset);
          WriteBehindBuffer.overlay(runs, group.byteOffset, span);
          for (const i of group.members) {
            const r = reads[i]!;
            out[i] = span.subarray(r.byteOffset - group.byteOffset, r.byteOffset - group.byteOffset + r.byteLength);
          }
          continue;
        }
        // Members are in offset order and never overlap: each lands in its own buffer.
        const vector: Uint8Array[] = [];
        let cursor = group.byteOffset;
        for (const i of group.members) {
          const r = reads[i]!;
          if (r.byteOffset > cursor) vector.push(GAP_SCRATCH.subarray(0, r.byteOffset - cursor));
          const bytes = r.into ?? newBytes(r.byteLength);
          vector.push(bytes);
          out[i] = bytes;
          cursor = r.byteOffset + r.byteLength;
        }
        await readFully(this.#fd, vector, group.byteOffset);
        for (const i of group.members) WriteBehindBuffer.overlay(runs, reads[i]!.byteOffset, out[i]!);
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
        const directFd = this.#directFd;
        if (directFd !== undefined) await fsCall((cb) => fs.close(directFd, cb), 'close');
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

/** The O_DIRECT write descriptor of `path`. @throws NOT_SUPPORTED where the file system refuses O_DIRECT, IO_ERROR */
async function openDirect(path: string): Promise<number> {
  const flags = fs.constants.O_RDWR | fs.constants.O_DIRECT;
  try {
    return await new Promise<number>((resolve, reject) => fs.open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') throw new DrkitError('NOT_SUPPORTED', `the file system of ${path} refuses O_DIRECT`, { cause: err, data: { path } });
    throw err;
  }
}

/** An aligned run through the O_DIRECT descriptor. @throws NOT_SUPPORTED when the kernel refuses it as misaligned (EINVAL), as {@link writeFully} otherwise */
async function writeDirect(directFd: number, chunks: readonly Uint8Array[], byteOffset: number, path: string): Promise<void> {
  try {
    await writeFully(directFd, chunks, byteOffset);
  } catch (err) {
    const errno = err instanceof DrkitError ? (err.cause as NodeJS.ErrnoException | undefined)?.code : undefined;
    if (errno !== 'EINVAL') throw err;
    throw new DrkitError('NOT_SUPPORTED', `O_DIRECT write of ${path} at ${byteOffset} refused as misaligned (EINVAL): the device needs more than ${ARENA_ALIGNMENT_BYTES}-byte alignment, or staging memory is not page-aligned`, {
      cause: err,
      data: { path, byteOffset, alignmentBytes: ARENA_ALIGNMENT_BYTES },
    });
  }
}

function openFd(path: string, flags: string): Promise<number> {
  return new Promise<number>((resolve, reject) => fs.open(path, flags, 0o644, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** A zero-length-safe plain Uint8Array without the zero-fill cost (its own ArrayBuffer, not Buffer's pool). */
function newBytes(byteLength: number): Uint8Array {
  if (byteLength === 0) return new Uint8Array(0);
  return new Uint8Array(Buffer.allocUnsafeSlow(byteLength).buffer, 0, byteLength);
}
