/**
 * A log-structured MetaStore persisted on any BlockDevice. The live set is held in
 * memory (a copy-on-write B+tree) and every batch is appended to a log on the device;
 * the log is rewritten as a compact snapshot when it is mostly dead.
 *
 * Durability promise: `batch()` applies atomically and is visible once it resolves;
 * it is durable once `batch(..., { sync: true })` or a later `flush()` resolves
 * (a device flush; concurrent waiters share one flush: group commit). After a crash at
 * any instant — including inside a commit, a compaction or an open — a reopen shows the
 * state after some prefix of the batches in commit order; that prefix contains every
 * batch whose durable commit resolved, and never part of a batch (one batch = one
 * checksummed record).
 *
 * Fault model: a crash may drop, reorder or tear (at any granularity) writes issued
 * since the last device flush, and nothing else; bytes are never half-old/half-new
 * inside an unchanged byte. Stored bytes may also rot later: recovery detects that with
 * per-record xxh64 checksums and rejects the open with `CORRUPTION` instead of
 * truncating committed data (see internal/log-recovery.ts for exactly when). The live
 * set must fit in memory. Any device error poisons the handle (every later call
 * rejects with it); reopen to recover.
 *
 * Compaction ({@link LogMetaStore.compact}, or automatic when dead log bytes exceed
 * both `compactMinDeadBytes` and `compactDeadRatio` of the log): the live set is written
 * as a new generation (new epoch) into free space — the start of the log region when it
 * fits below the current generation, else after the current tail — then flushed, then
 * the superblock is flipped (both copies, one flush each). Until the flip is durable the
 * old generation is untouched; after it the new one is complete.
 */
import { DrkitError, throwIfAborted } from '../core/errors.js';
import { loadXxh64, type Xxh64 } from '../core/checksum.js';
import type { BlockDevice, IoOptions } from './block-device.js';
import type { BatchOptions, MetaOp, MetaRange, MetaStore, MetaStoreStats } from './meta-store.js';
import { AlignedAppender } from './internal/aligned-appender.js';
import { snapshotByteLength, writeSnapshot } from './internal/log-snapshot.js';
import {
  MIN_SLOT_BYTES,
  RECORD_HEADER_BYTES,
  RecordType,
  decodeSuperblock,
  encodeOps,
  encodeSuperblock,
  writeRecordHeader,
  type RecordTypeCode,
  type Superblock,
} from './internal/log-format.js';
import { recoverLog } from './internal/log-recovery.js';
import { OP_OVERHEAD_BYTES, checkReplaces, validateBatch } from './internal/meta-batch.js';
import { MemTable } from './internal/mem-table.js';

/**
 * Bytes of batches applied in memory but not yet written before `batch()` waits: bounds
 * the memory held for the writer and the size of one group write.
 */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;
/** Smallest growth of a resizable device, so a growing log does not resize on every write. */
const MIN_GROW_BYTES = 1024 * 1024;
/** Largest supported device alignment: superblock slots are at least this far apart. */
const MAX_ALIGNMENT_BYTES = 1024 * 1024;
const DEFAULT_COMPACT_MIN_DEAD_BYTES = 4 * 1024 * 1024;
const DEFAULT_COMPACT_DEAD_RATIO = 0.5;

/** Options of {@link LogMetaStore.open}. */
export interface LogMetaStoreOptions {
  /** The device holding the store. A resizable device grows as the log needs. */
  device: BlockDevice;
  /** Format the device when both superblock slots are all zero. @defaultValue true */
  create?: boolean;
  /** Close `device` when the store closes. @defaultValue false */
  closeDevice?: boolean;
  /** Dead log bytes below which no automatic compaction runs. @defaultValue 4 MiB */
  compactMinDeadBytes?: number;
  /** Fraction of the log that must be dead before automatic compaction. @defaultValue 0.5 */
  compactDeadRatio?: number;
  /** Cancels the open. */
  signal?: AbortSignal;
}

interface PendingRecord {
  readonly type: RecordTypeCode;
  /** Header room followed by the payload. */
  readonly record: Uint8Array;
  readonly payloadChecksum: bigint;
  readonly ticket: number;
}

interface Waiter {
  readonly ticket: number;
  resolve(): void;
  reject(err: unknown): void;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const alignDown = (n: number, a: number): number => Math.floor(n / a) * a;

/** A log-structured {@link MetaStore} on a {@link BlockDevice}. */
export class LogMetaStore implements MetaStore {
  private pending: PendingRecord[] = [];
  private pendingBytes = 0;
  private spaceWaiters: (() => void)[] = [];
  private waiters: Waiter[] = [];
  private compactWaiters: Waiter[] = [];
  private compactRequested = false;
  private enqueuedTicket = 0;
  private writtenTicket = 0;
  private durableTicket = 0;
  private writer: Promise<void> | undefined;
  private failure: DrkitError | undefined;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | undefined;
  private tail: number;
  private tailPrefix: Uint8Array;
  private nextSeq: number;
  private durableSeq: number;

  private constructor(
    private readonly device: BlockDevice,
    private readonly xxh: Xxh64,
    private readonly table: MemTable,
    private readonly layout: { alignmentBytes: number; slotBytes: number; regionStart: number },
    private readonly options: { closeDevice: boolean; compactMinDeadBytes: number; compactDeadRatio: number },
    private sb: Superblock,
    position: { tail: number; tailPrefix: Uint8Array; nextSeq: number },
  ) {
    this.tail = position.tail;
    this.tailPrefix = position.tailPrefix;
    this.nextSeq = position.nextSeq;
    this.durableSeq = position.nextSeq - 1;
  }

  /**
   * Opens the store on `device`, recovering it (or formatting an all-zero device).
   * @throws INVALID_ARGUMENT for bad options; NOT_SUPPORTED for an alignment over 1 MiB;
   * NOT_FOUND for an all-zero device with `create: false`; FORMAT_VERSION for another
   * format version; CORRUPTION when committed data is damaged; NO_SPACE for a
   * non-resizable device too small to format; device errors; ABORTED
   */
  static async open(options: LogMetaStoreOptions): Promise<LogMetaStore> {
    if (typeof options !== 'object' || options === null || typeof options.device?.read !== 'function') {
      throw new DrkitError('INVALID_ARGUMENT', 'LogMetaStore.open: options.device must be a BlockDevice');
    }
    const { device, signal } = options;
    const compactMinDeadBytes = options.compactMinDeadBytes ?? DEFAULT_COMPACT_MIN_DEAD_BYTES;
    const compactDeadRatio = options.compactDeadRatio ?? DEFAULT_COMPACT_DEAD_RATIO;
    if (!Number.isSafeInteger(compactMinDeadBytes) || compactMinDeadBytes < 0) {
      throw new DrkitError('INVALID_ARGUMENT', 'compactMinDeadBytes must be a non-negative integer', { data: { name: 'compactMinDeadBytes' } });
    }
    if (typeof compactDeadRatio !== 'number' || !(compactDeadRatio >= 0 && compactDeadRatio < 1)) {
      throw new DrkitError('INVALID_ARGUMENT', 'compactDeadRatio must be in [0, 1)', { data: { name: 'compactDeadRatio' } });
    }
    throwIfAborted(signal);
    const alignmentBytes = device.capabilities.alignmentBytes;
    if (alignmentBytes > MAX_ALIGNMENT_BYTES || (alignmentBytes & (alignmentBytes - 1)) !== 0) {
      throw new DrkitError('NOT_SUPPORTED', `LogMetaStore: device alignment ${alignmentBytes} is not a power of two up to ${MAX_ALIGNMENT_BYTES}`);
    }
    const slotBytes = Math.max(MIN_SLOT_BYTES, alignmentBytes);
    const layout = { alignmentBytes, slotBytes, regionStart: 2 * slotBytes };
    const xxh = await loadXxh64();

    const slots = device.byteLength >= layout.regionStart ? await device.read(0, layout.regionStart, { signal }) : new Uint8Array(0);
    const decoded: ReturnType<typeof decodeSuperblock>[] =
      slots.length === 0
        ? ['empty', 'empty']
        : [decodeSuperblock(xxh, slots.subarray(0, slotBytes), slotBytes), decodeSuperblock(xxh, slots.subarray(slotBytes), slotBytes)];
    if (decoded.includes('unknown-version')) {
      throw new DrkitError('FORMAT_VERSION', 'LogMetaStore: the superblock has a format version this build cannot read');
    }
    let sb: Superblock | undefined;
    for (const d of decoded) if (typeof d === 'object' && (sb === undefined || d.generation > sb.generation)) sb = d;
    const storeOptions = { closeDevice: options.closeDevice ?? false, compactMinDeadBytes, compactDeadRatio };

    if (sb === undefined) {
      // Every complete superblock write fills both slots, so one empty slot beside an
      // invalid one can only be a format torn by a crash: the device holds no store yet.
      if (!decoded.includes('empty')) throw new DrkitError('CORRUPTION', 'LogMetaStore: neither superblock copy is valid');
      if (options.create === false) throw new DrkitError('NOT_FOUND', 'LogMetaStore: the device holds no store and create is false');
      const initial: Superblock = { generation: 0, epoch: 0, logStart: layout.regionStart, firstSeq: 1, sealedEnd: layout.regionStart, sealedSeq: 1 };
      const store = new LogMetaStore(device, xxh, new MemTable(), layout, storeOptions, initial, { tail: layout.regionStart, tailPrefix: new Uint8Array(0), nextSeq: 1 });
      await store.writeGeneration(signal);
      return store;
    }

    const table = new MemTable();
    const recovered = await recoverLog(device, xxh, sb, table, signal);
    // What we read may sit only in a cache: make it durable before sealing it.
    await device.flush({ signal });
    const sealed: Superblock = {
      generation: sb.generation + 1,
      // Not +1: a compaction that crashed before its flip may have written records of
      // epoch + 1 past the tail, and an epoch must never be reused.
      epoch: sb.epoch + 2,
      logStart: sb.logStart,
      firstSeq: sb.firstSeq,
      sealedEnd: recovered.tail,
      sealedSeq: recovered.nextSeq,
    };
    const prefixBytes = recovered.tail % alignmentBytes;
    const tailPrefix =
      prefixBytes > 0
        ? (await device.read(recovered.tail - prefixBytes, alignmentBytes, { signal })).slice(0, prefixBytes)
        : new Uint8Array(0);
    const store = new LogMetaStore(device, xxh, table, layout, storeOptions, sb, { tail: recovered.tail, tailPrefix, nextSeq: recovered.nextSeq });
    await store.writeSuperblock(sealed, signal);
    store.sb = sealed;
    return store;
  }

  /** @throws NOT_OPEN, INVALID_ARGUMENT, ABORTED, or the error that poisoned the handle */
  async get(key: Uint8Array, options?: IoOptions): Promise<Uint8Array | undefined> {
    this.assertUsable();
    throwIfAborted(options?.signal);
    return this.table.get(key);
  }

  /** @throws NOT_OPEN, INVALID_ARGUMENT, ABORTED, or the error that poisoned the handle */
  async getMany(keys: readonly Uint8Array[], options?: IoOptions): Promise<(Uint8Array | undefined)[]> {
    this.assertUsable();
    throwIfAborted(options?.signal);
    if (!Array.isArray(keys)) throw new DrkitError('INVALID_ARGUMENT', 'keys must be an array', { data: { name: 'keys' } });
    return keys.map((key) => this.table.get(key));
  }

  /**
   * Applies `ops` atomically as one log record. An abort after the batch was accepted
   * only stops the wait for durability; the batch stays committed.
   * @throws NOT_OPEN, INVALID_ARGUMENT (bad op, a wrong `replaces` hint, or over MAX_BATCH_BYTES = 64 MiB), ABORTED,
   * device errors (with `sync`), or the error that poisoned the handle
   */
  async batch(ops: readonly MetaOp[], options?: BatchOptions): Promise<void> {
    this.assertUsable();
    throwIfAborted(options?.signal);
    const opsByteLength = validateBatch(ops);
    if (ops.length > 0) {
      const record = new Uint8Array(RECORD_HEADER_BYTES + 4 + opsByteLength);
      encodeOps(ops, record, RECORD_HEADER_BYTES);
      const payloadChecksum = this.xxh.hash(record.subarray(RECORD_HEADER_BYTES));
      while (this.pendingBytes > 0 && this.pendingBytes + record.length > MAX_PENDING_BYTES) {
        await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
        this.assertUsable();
      }
      // Checked against the table as this batch will find it (after the wait above).
      checkReplaces(ops, (key) => this.table.valueBytes(key));
      this.table.apply(ops);
      this.enqueue(RecordType.BATCH, record, payloadChecksum);
    }
    if (options?.sync === true) await this.waitDurable(this.enqueuedTicket, options.signal);
  }

  /** A consistent view as of this call. Errors (NOT_OPEN, INVALID_ARGUMENT, ABORTED) reject the first `next()`. */
  iterate(range?: MetaRange, options?: IoOptions): AsyncIterable<[Uint8Array, Uint8Array]> {
    return this.table.iterate(range, options, () => this.assertUsable());
  }

  /**
   * Makes every batch that resolved before the call durable (one device flush, shared
   * with concurrent committers).
   * @throws NOT_OPEN, ABORTED, device errors
   */
  async flush(options?: IoOptions): Promise<void> {
    this.assertUsable();
    throwIfAborted(options?.signal);
    await this.waitDurable(this.enqueuedTicket, options?.signal);
  }

  /**
   * Rewrites the live set as a new log generation now (see the module comment), making
   * every batch accepted so far durable.
   * @throws NOT_OPEN, NO_SPACE, device errors
   */
  async compact(options?: IoOptions): Promise<void> {
    this.assertUsable();
    throwIfAborted(options?.signal);
    this.compactRequested = true;
    await new Promise<void>((resolve, reject) => {
      this.compactWaiters.push({ ticket: this.enqueuedTicket, resolve, reject });
      this.kick();
    });
  }

  /** `storedBytes` counts both superblock slots and the current generation of the log. */
  async stats(): Promise<MetaStoreStats> {
    this.assertUsable();
    return {
      keyCount: this.table.keyCount,
      liveBytes: this.table.liveBytes,
      storedBytes: this.layout.regionStart + (this.tail - this.sb.logStart) + this.pendingBytes,
    };
  }

  /**
   * Writes what is pending plus a CLOSE record (so the next open knows the tail is
   * clean), flushes, and releases the store (and the device with `closeDevice`).
   * Idempotent. A store poisoned by a device error closes without writing.
   * @throws device errors met while writing the final records (the store is closed anyway)
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    if (this.closing !== undefined) return this.closing;
    this.state = 'closing';
    this.closing = (async () => {
      try {
        if (this.failure === undefined) {
          this.enqueue(RecordType.CLOSE, new Uint8Array(RECORD_HEADER_BYTES), this.xxh.hash(new Uint8Array(0)));
          await this.waitDurable(this.enqueuedTicket, undefined);
        }
      } finally {
        this.state = 'closed';
        this.table.clear();
        this.failure ??= new DrkitError('NOT_OPEN', 'LogMetaStore is closed');
        if (this.options.closeDevice) await this.device.close();
      }
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private assertUsable(): void {
    if (this.state !== 'open') throw new DrkitError('NOT_OPEN', 'LogMetaStore is closed');
    if (this.failure !== undefined) throw this.failure;
  }

  private enqueue(type: RecordTypeCode, record: Uint8Array, payloadChecksum: bigint): void {
    this.pending.push({ type, record, payloadChecksum, ticket: ++this.enqueuedTicket });
    this.pendingBytes += record.length;
    this.kick();
  }

  private waitDurable(ticket: number, signal: AbortSignal | undefined): Promise<void> {
    if (ticket <= this.durableTicket) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { ticket, resolve, reject };
      this.waiters.push(waiter);
      if (signal !== undefined) {
        signal.addEventListener('abort', () => reject(new DrkitError('ABORTED', 'wait for durability aborted', { cause: signal.reason })), {
          once: true,
        });
      }
      this.kick();
    });
  }

  /** Starts the writer unless it runs; it runs until no work is left. */
  private kick(): void {
    if (this.writer !== undefined || this.failure !== undefined) return;
    this.writer = this.runWriter();
  }

  private async runWriter(): Promise<void> {
    try {
      for (;;) {
        if (this.compactRequested) {
          await this.writeGeneration(undefined);
          continue;
        }
        const wrote = this.pending.length > 0;
        if (wrote) await this.writePending();
        if (this.waiters.length > 0) {
          // Group commit: every waiter whose record is written shares this one flush.
          const ticket = this.writtenTicket;
          const seq = this.nextSeq - 1;
          await this.device.flush();
          this.durableTicket = ticket;
          this.durableSeq = seq;
          this.waiters = settle(this.waiters, ticket);
          this.maybeRequestCompaction();
          continue;
        }
        if (!wrote) break;
        this.maybeRequestCompaction();
      }
    } catch (err) {
      this.fail(err);
    }
    this.writer = undefined;
    // Work may have arrived between the last check and here (e.g. from a settled waiter).
    if (this.failure === undefined && (this.pending.length > 0 || this.waiters.length > 0 || this.compactRequested)) this.kick();
  }

  /** Poisons the handle with `err` and rejects everyone waiting. */
  private fail(err: unknown): void {
    const error = err instanceof DrkitError ? err : new DrkitError('IO_ERROR', `LogMetaStore: ${String(err)}`, { cause: err });
    this.failure ??= error;
    for (const w of [...this.waiters, ...this.compactWaiters]) w.reject(error);
    this.waiters = [];
    this.compactWaiters = [];
    for (const wake of this.spaceWaiters.splice(0)) wake();
  }

  private takePending(): PendingRecord[] {
    const items = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const wake of this.spaceWaiters.splice(0)) wake();
    return items;
  }

  /** Writes every pending record in one device write (re-writing the partial tail block). */
  private async writePending(): Promise<void> {
    const items = this.takePending();
    const prefix = this.tailPrefix;
    let recordBytes = 0;
    for (const item of items) recordBytes += item.record.length;
    const totalBytes = prefix.length + recordBytes;
    const paddedBytes = alignUp(totalBytes, this.layout.alignmentBytes);
    const single = items.length === 1 && prefix.length === 0 && paddedBytes === totalBytes;
    const buffer = single ? items[0]!.record : new Uint8Array(paddedBytes);
    if (!single) buffer.set(prefix, 0);
    let at = prefix.length;
    for (const item of items) {
      if (!single) buffer.set(item.record, at);
      writeRecordHeader(this.xxh, buffer, at, {
        type: item.type,
        payloadByteLength: item.record.length - RECORD_HEADER_BYTES,
        epoch: this.sb.epoch,
        seq: this.nextSeq++,
        flushedSeq: this.durableSeq,
        payloadChecksum: item.payloadChecksum,
      });
      at += item.record.length;
    }
    const writeOffset = this.tail - prefix.length;
    await this.ensureCapacity(writeOffset + paddedBytes);
    await this.device.write(writeOffset, buffer);
    this.tail += recordBytes;
    const prefixBytes = this.tail % this.layout.alignmentBytes;
    this.tailPrefix = buffer.slice(totalBytes - prefixBytes, totalBytes);
    this.writtenTicket = items[items.length - 1]!.ticket;
  }

  private maybeRequestCompaction(): void {
    const logBytes = this.tail - this.sb.logStart;
    const liveEstimate = this.table.liveBytes + this.table.keyCount * OP_OVERHEAD_BYTES;
    const deadBytes = logBytes - liveEstimate;
    if (deadBytes > this.options.compactMinDeadBytes && deadBytes > logBytes * this.options.compactDeadRatio) this.compactRequested = true;
  }

  private async ensureCapacity(endByte: number): Promise<void> {
    if (endByte <= this.device.byteLength) return;
    if (!this.device.capabilities.resizable) {
      throw new DrkitError('NO_SPACE', `LogMetaStore: the log needs ${endByte} bytes and the device has ${this.device.byteLength}`, {
        data: { byteLength: endByte, limitBytes: this.device.byteLength },
      });
    }
    const grown = Math.max(endByte, this.device.byteLength + Math.max(MIN_GROW_BYTES, this.device.byteLength >> 1));
    await this.device.resize(alignUp(grown, this.layout.alignmentBytes));
  }

  /**
   * Writes the live set (and so every pending batch) as a new generation, flushes, then
   * flips the superblock. Also formats a new store (empty table, epoch 0 -> 1).
   */
  private async writeGeneration(signal: AbortSignal | undefined): Promise<void> {
    this.compactRequested = false;
    const compactWaiters = this.compactWaiters;
    this.compactWaiters = [];
    try {
      await this.writeGenerationNow(signal);
    } catch (err) {
      // Hand them back so that fail() rejects them with the error.
      this.compactWaiters.push(...compactWaiters);
      throw err;
    }
    for (const w of compactWaiters) w.resolve();
  }

  private async writeGenerationNow(signal: AbortSignal | undefined): Promise<void> {
    this.takePending();
    const coveredTicket = this.enqueuedTicket;
    const entries = this.table.freeze();
    const entryCount = this.table.keyCount;
    const liveBytes = this.table.liveBytes;

    const { alignmentBytes, regionStart } = this.layout;
    const totalBytes = snapshotByteLength(entries);
    // Below the current generation when it fits there, else after the tail: never over live bytes.
    const start = regionStart + alignUp(totalBytes, alignmentBytes) <= this.sb.logStart ? regionStart : alignUp(this.tail, alignmentBytes);
    await this.ensureCapacity(start + alignUp(totalBytes, alignmentBytes));
    const epoch = this.sb.epoch + 1;
    const firstSeq = this.nextSeq;
    const appender = new AlignedAppender(this.device, start, alignmentBytes, signal);
    const seq = await writeSnapshot(this.xxh, appender, entries, { epoch, firstSeq, entryCount, liveBytes });
    const tailPrefix = await appender.finish();
    await this.device.flush({ signal });

    const next: Superblock = {
      generation: this.sb.generation + 1,
      epoch,
      logStart: start,
      firstSeq,
      sealedEnd: start + totalBytes,
      sealedSeq: seq,
    };
    await this.writeSuperblock(next, signal);
    this.sb = next;
    this.tail = start + totalBytes;
    this.tailPrefix = tailPrefix;
    this.nextSeq = seq;
    this.durableSeq = seq - 1;
    this.writtenTicket = coveredTicket;
    this.durableTicket = coveredTicket;
    this.waiters = settle(this.waiters, coveredTicket);
  }

  /**
   * Writes `sb` to both slots, one flush each, the slot of its generation's parity
   * first: a torn write can only hit one slot, and the other then holds either the
   * previous or the same superblock.
   */
  private async writeSuperblock(sb: Superblock, signal: AbortSignal | undefined): Promise<void> {
    const bytes = encodeSuperblock(this.xxh, sb, this.layout.slotBytes);
    const first = sb.generation % 2;
    for (const slot of [first, 1 - first]) {
      await this.device.write(slot * this.layout.slotBytes, bytes, { signal });
      await this.device.flush({ signal });
    }
  }
}

/** Resolves the waiters whose ticket is covered; returns the rest. */
function settle(waiters: Waiter[], durableTicket: number): Waiter[] {
  const rest: Waiter[] = [];
  for (const w of waiters) {
    if (w.ticket <= durableTicket) w.resolve();
    else rest.push(w);
  }
  return rest;
}
