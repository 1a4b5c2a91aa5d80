/**
 * CodecPool: compression (zstd, codec 2, by default, as ExtentCodec; or lz4), decompression
 * of every codec, and SHA-256 fingerprinting of extent batches on worker threads, so the
 * event loop thread keeps doing I/O.
 *
 * A batch is packed into one ArrayBuffer (one copy, ~0.4 ms per 4 MiB, an order of
 * magnitude below the work it carries), transferred to a worker, and the worker's
 * output comes back as one transferred ArrayBuffer: two messages per batch, whatever
 * the number of extents. With `workerCount: 0` the same calls run in-thread.
 *
 * Results of one batch are views into one shared ArrayBuffer: a caller that keeps one
 * result long after the batch should copy it (`slice()`), or it pins the whole batch.
 *
 * Memory bound: at most `maxPendingBatches` batches of at most {@link MAX_POOL_BATCH_BYTES}
 * each are held by the pool; a call past that rejects with `BUSY` instead of queuing
 * without limit, so a pipeline sizes its in-flight window to the pool.
 *
 * Node-only (worker_threads). Idle workers are unref'd: a forgotten pool never keeps a
 * process alive, but `close()` is still the way to release it.
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { AbortError, DrkitError, throwIfAborted } from '../core/errors.js';
import type { ErrorCode } from '../core/error-codes.js';
import { assertBytes, assertNonNegativeInteger } from '../core/validate.js';
import { CODEC_RAW, CODEC_ZSTD, DEFAULT_ZSTD_LEVEL, ExtentCodec, isCodecId, MAX_CODEC_RAW_BYTES, type CodecId, type EncodedExtent, type ExtentCodecOptions } from './codec.js';
import { sha256Fingerprinter } from './fingerprint.js';
import { CODEC_WORKER_SOURCE } from './internal/codec-worker-source.js';

/**
 * Measured best worker count on this project's 2-core machine (bench/suites/codec.mjs,
 * 16 KiB extents, batches of 256): lz4 on text-like data ran at 502 MB/s in-thread,
 * 417 MB/s with 1 worker (the packing copy and messages cost ~15%) and 658 MB/s with 2
 * (1.31x, with 1.65 cores available; the machine is shared). Only compression of
 * compressible data pays: incompressible data (lz4 ~1.9 GB/s) and decompression were
 * as fast or faster in-thread.
 */
export const DEFAULT_CODEC_WORKERS = 2;

/**
 * Largest batch, in input bytes and in output bytes (16 MiB): one batch is one message
 * and one allocation on each side, so this bounds both; 16 MiB is 1024 extents of 16 KiB.
 */
export const MAX_POOL_BATCH_BYTES = 16 * 1024 * 1024;

/** Largest batch in extents: bounds the per-extent tables sent with each message. */
export const MAX_POOL_BATCH_EXTENTS = 8192;

/**
 * Default {@link CodecPoolOptions.maxPendingBatches}: one running on each of 2 workers
 * plus one ready behind each, so a worker never waits for the caller to pack its next.
 */
export const DEFAULT_MAX_PENDING_BATCHES = 4;

/** Options of {@link CodecPool.open}. */
export interface CodecPoolOptions {
  /**
   * Worker threads; 0 runs every call in the calling thread.
   * @defaultValue {@link DEFAULT_CODEC_WORKERS}
   */
  workerCount?: number;
  /**
   * Batches accepted and not yet settled (running or queued); more reject with BUSY.
   * @defaultValue {@link DEFAULT_MAX_PENDING_BATCHES}
   */
  maxPendingBatches?: number;
  /**
   * Passed to the codec: compressed output above this fraction of the raw length passes through raw.
   * @defaultValue 0.9
   */
  maxCompressedFraction?: number;
  /**
   * The codec compression emits, as {@link ExtentCodecOptions.compression}.
   * @defaultValue 'zstd' (falls back to 'lz4' where zstd-napi cannot be loaded)
   */
  compression?: 'zstd' | 'lz4';
  /** zstd level, as {@link ExtentCodecOptions.zstdLevel}. @defaultValue -1 ({@link DEFAULT_ZSTD_LEVEL}) */
  zstdLevel?: number;
}

/** One compressed extent to decode, for {@link CodecPool.decompressBatch}. */
export interface EncodedExtentInput {
  readonly codec: CodecId;
  readonly bytes: Uint8Array;
  /** Length the decoded extent must have. */
  readonly rawLength: number;
}

/** Options of each batch call. */
export interface CodecBatchOptions {
  /** Rejects the call with AbortError; work already handed to a worker still finishes. */
  signal?: AbortSignal;
}

type Op = 'compress' | 'decompress' | 'fingerprint';

interface WorkerReply {
  id: number;
  ok: boolean;
  buffer?: ArrayBuffer;
  lengths?: Uint32Array;
  codecs?: Uint8Array;
  code?: ErrorCode;
  message?: string;
  data?: Record<string, unknown>;
}

interface Task {
  id: number;
  op: Op;
  /** Transferred to the worker, unless shared. */
  buffer: ArrayBuffer | SharedArrayBuffer;
  lengths: Uint32Array;
  codecs?: Uint8Array;
  rawLengths?: Uint32Array;
  resolve(reply: WorkerReply): void;
  reject(err: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Slot {
  worker: Worker;
  task: Task | undefined;
  /** Tasks this worker answered: a worker that dies before answering any is not replaced. */
  answered: number;
}

/**
 * A pool of worker threads that compress, decompress and fingerprint batches of extents.
 * Open with {@link CodecPool.open}; release with {@link CodecPool.close}.
 */
export class CodecPool {
  /** Worker threads in the pool (0: in-thread). */
  readonly workerCount: number;
  /** Bound on batches accepted and not yet settled. */
  readonly maxPendingBatches: number;
  readonly #codec: ExtentCodec;
  readonly #workerData: Record<string, unknown>;
  readonly #slots: Slot[] = [];
  readonly #queue: Task[] = [];
  #pending = 0;
  #nextId = 1;
  #closed = false;

  private constructor(codec: ExtentCodec, workerCount: number, maxPendingBatches: number, urls: ModuleUrls, zstdLevel: number) {
    this.#codec = codec;
    this.workerCount = workerCount;
    this.maxPendingBatches = maxPendingBatches;
    this.#workerData = {
      ...urls,
      compression: codec.compression === CODEC_ZSTD ? 'zstd' : 'lz4',
      zstdLevel,
      maxCompressedFraction: codec.maxCompressedFraction,
      maxRawBytes: MAX_CODEC_RAW_BYTES,
      digestAlgorithm: sha256Fingerprinter.algorithm,
      digestBytes: sha256Fingerprinter.digestBytes,
    };
  }

  /**
   * Loads the codec and starts `workerCount` workers.
   * @throws INVALID_ARGUMENT for bad options; NOT_SUPPORTED when lz4-napi cannot be loaded
   */
  static async open(options: CodecPoolOptions = {}): Promise<CodecPool> {
    const workerCount = options.workerCount ?? DEFAULT_CODEC_WORKERS;
    const maxPendingBatches = options.maxPendingBatches ?? DEFAULT_MAX_PENDING_BATCHES;
    assertNonNegativeInteger(workerCount, 'workerCount');
    assertNonNegativeInteger(maxPendingBatches, 'maxPendingBatches');
    if (maxPendingBatches < 1) {
      throw new DrkitError('INVALID_ARGUMENT', 'maxPendingBatches must be at least 1', { data: { maxPendingBatches } });
    }
    // The in-thread codec decides (and validates) the compression; workers emit the same.
    const zstdLevel = options.zstdLevel ?? DEFAULT_ZSTD_LEVEL;
    const codec = await ExtentCodec.open({
      ...(options.compression === undefined ? {} : { compression: options.compression }),
      zstdLevel,
      ...(options.maxCompressedFraction === undefined ? {} : { maxCompressedFraction: options.maxCompressedFraction }),
    });
    const pool = new CodecPool(codec, workerCount, maxPendingBatches, workerCount === 0 ? NO_URLS : moduleUrls(codec.decodesZstd), zstdLevel);
    for (let i = 0; i < workerCount; i++) pool.#slots.push(pool.#spawn());
    return pool;
  }

  /**
   * Compresses each extent as {@link ExtentCodec.compress} does; results in input order.
   * @throws INVALID_ARGUMENT for a malformed batch or an extent over 4 MiB; BUSY past
   * `maxPendingBatches`; CLOSED after close(); ABORTED; INTERNAL if a worker dies
   */
  async compressBatch(extents: readonly Uint8Array[], options: CodecBatchOptions = {}): Promise<EncodedExtent[]> {
    this.#checkBatch(extents.length, options.signal);
    const lengths = new Uint32Array(extents.length);
    extents.forEach((data, i) => {
      assertBytes(data, `extents[${i}]`);
      if (data.byteLength > MAX_CODEC_RAW_BYTES) {
        throw new DrkitError('INVALID_ARGUMENT', `extents[${i}] of ${data.byteLength} bytes exceeds the codec limit of ${MAX_CODEC_RAW_BYTES}`, {
          data: { index: i, byteLength: data.byteLength, maxBytes: MAX_CODEC_RAW_BYTES },
        });
      }
      lengths[i] = data.byteLength;
    });
    checkBatchBytes(lengths);
    if (this.workerCount === 0) return this.#inThread(options.signal, () => extents.map((data) => this.#codec.compress(data)));
    const reply = await this.#submit('compress', pack(extents, lengths), lengths, {}, options.signal);
    const codecs = reply.codecs as Uint8Array;
    const emitted = this.#codec.compression;
    return views(reply).map((bytes, i) => ({ codec: (codecs[i] === emitted ? emitted : CODEC_RAW) as CodecId, bytes }));
  }

  /**
   * Decodes each extent as {@link ExtentCodec.decompress} does; results in input order.
   * @throws CORRUPTION for any malformed extent (the whole batch fails; `data.index` names
   * the first bad one); INVALID_ARGUMENT, BUSY, CLOSED, ABORTED, INTERNAL as compressBatch
   */
  async decompressBatch(extents: readonly EncodedExtentInput[], options: CodecBatchOptions = {}): Promise<Uint8Array[]> {
    this.#checkBatch(extents.length, options.signal);
    const lengths = new Uint32Array(extents.length);
    const codecs = new Uint8Array(extents.length);
    const rawLengths = new Uint32Array(extents.length);
    let rawTotal = 0;
    extents.forEach((e, i) => {
      assertBytes(e.bytes, `extents[${i}].bytes`);
      assertNonNegativeInteger(e.rawLength, `extents[${i}].rawLength`);
      if (!isCodecId(e.codec)) {
        throw new DrkitError('INVALID_ARGUMENT', `unknown codec id ${String(e.codec)}`, { data: { index: i, codec: String(e.codec) } });
      }
      if (e.rawLength > MAX_CODEC_RAW_BYTES) {
        throw new DrkitError('CORRUPTION', `rawLength ${e.rawLength} exceeds the codec limit of ${MAX_CODEC_RAW_BYTES}`, {
          data: { index: i, codec: e.codec, rawLength: e.rawLength },
        });
      }
      lengths[i] = e.bytes.byteLength;
      codecs[i] = e.codec;
      rawLengths[i] = e.rawLength;
      rawTotal += e.rawLength;
    });
    if (rawTotal > MAX_POOL_BATCH_BYTES) {
      throw new DrkitError('INVALID_ARGUMENT', `batch decodes to ${rawTotal} bytes, over the limit of ${MAX_POOL_BATCH_BYTES}`, {
        data: { rawBytes: rawTotal, maxBytes: MAX_POOL_BATCH_BYTES },
      });
    }
    checkBatchBytes(lengths);
    if (this.workerCount === 0) {
      return this.#inThread(options.signal, () =>
        extents.map((e, index) => {
          try {
            return this.#codec.decompress(e.codec, e.bytes, e.rawLength);
          } catch (err) {
            // Same shape as a worker's error: which extent of the batch was bad.
            const coded = err as DrkitError;
            throw new DrkitError(coded.code, coded.message, { cause: coded.cause, data: { ...coded.data, index } });
          }
        }),
      );
    }
    const buffer = pack(
      extents.map((e) => e.bytes),
      lengths,
    );
    return views(await this.#submit('decompress', buffer, lengths, { codecs, rawLengths }, options.signal));
  }

  /**
   * SHA-256 fingerprints (the default {@link sha256Fingerprinter}) of each extent, 32
   * bytes each, in input order.
   * @throws INVALID_ARGUMENT, BUSY, CLOSED, ABORTED, INTERNAL as compressBatch
   */
  async fingerprintBatch(extents: readonly Uint8Array[], options: CodecBatchOptions = {}): Promise<Uint8Array[]> {
    this.#checkBatch(extents.length, options.signal);
    const lengths = new Uint32Array(extents.length);
    extents.forEach((data, i) => {
      assertBytes(data, `extents[${i}]`);
      lengths[i] = data.byteLength;
    });
    checkBatchBytes(lengths);
    if (this.workerCount === 0) return this.#inThread(options.signal, () => extents.map((data) => sha256Fingerprinter.fingerprint(data)));
    return views(await this.#submit('fingerprint', pack(extents, lengths), lengths, {}, options.signal));
  }

  /**
   * {@link CodecPool.fingerprintBatch} of extents lying back to back from offset 0 of a
   * SharedArrayBuffer, `lengths[i]` bytes each: the worker reads them where they are (no
   * packing copy, nothing transferred), so the caller keeps using the buffer — and must
   * not write to it until the call settles.
   * @throws INVALID_ARGUMENT (lengths past the buffer), BUSY, CLOSED, ABORTED, INTERNAL as compressBatch
   */
  async fingerprintShared(buffer: SharedArrayBuffer, lengths: Uint32Array, options: CodecBatchOptions = {}): Promise<Uint8Array[]> {
    this.#checkBatch(lengths.length, options.signal);
    checkBatchBytes(lengths);
    let total = 0;
    for (const n of lengths) total += n;
    if (total > buffer.byteLength) {
      throw new DrkitError('INVALID_ARGUMENT', `lengths cover ${total} bytes of a ${buffer.byteLength}-byte buffer`, { data: { byteLength: total, bufferBytes: buffer.byteLength } });
    }
    if (this.workerCount === 0) {
      return this.#inThread(options.signal, () => {
        let at = 0;
        return Array.from(lengths, (n) => sha256Fingerprinter.fingerprint(new Uint8Array(buffer, (at += n) - n, n)));
      });
    }
    return views(await this.#submit('fingerprint', buffer, lengths, {}, options.signal));
  }

  /**
   * Stops the workers. Calls in flight or queued reject with CLOSED. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const closed = () => new DrkitError('CLOSED', 'codec pool closed');
    for (const task of this.#queue.splice(0)) this.#settle(task, undefined, closed());
    const slots = this.#slots.splice(0);
    for (const slot of slots) if (slot.task) this.#settle(slot.task, undefined, closed());
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  /** Same as {@link CodecPool.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #checkBatch(count: number, signal: AbortSignal | undefined): void {
    if (this.#closed) throw new DrkitError('CLOSED', 'codec pool closed');
    throwIfAborted(signal);
    if (count > MAX_POOL_BATCH_EXTENTS) {
      throw new DrkitError('INVALID_ARGUMENT', `batch of ${count} extents exceeds the limit of ${MAX_POOL_BATCH_EXTENTS}`, {
        data: { extentCount: count, maxExtents: MAX_POOL_BATCH_EXTENTS },
      });
    }
    if (this.#pending >= this.maxPendingBatches) {
      throw new DrkitError('BUSY', `codec pool has ${this.#pending} batches pending, its bound`, {
        data: { maxPendingBatches: this.maxPendingBatches },
      });
    }
  }

  async #inThread<T>(signal: AbortSignal | undefined, work: () => T): Promise<T> {
    // Counted like worker batches, so the BUSY bound means the same in both modes.
    this.#pending++;
    try {
      await Promise.resolve();
      throwIfAborted(signal);
      return work();
    } finally {
      this.#pending--;
    }
  }

  #submit(op: Op, buffer: ArrayBuffer | SharedArrayBuffer, lengths: Uint32Array, extra: Pick<Task, 'codecs' | 'rawLengths'>, signal: AbortSignal | undefined): Promise<WorkerReply> {
    if (this.#slots.length === 0) return Promise.reject(new DrkitError('INTERNAL', 'every codec worker died'));
    return new Promise<WorkerReply>((resolve, reject) => {
      const task: Task = { id: this.#nextId++, op, buffer, lengths, ...extra, resolve, reject, signal, onAbort: undefined };
      this.#pending++;
      if (signal) {
        task.onAbort = () => {
          const queued = this.#queue.indexOf(task);
          if (queued >= 0) this.#queue.splice(queued, 1);
          // A running task keeps its slot until the worker answers; its reply is dropped.
          this.#settle(task, undefined, new AbortError('codec batch aborted', { cause: signal.reason }));
        };
        signal.addEventListener('abort', task.onAbort, { once: true });
      }
      this.#queue.push(task);
      this.#dispatch();
    });
  }

  #dispatch(): void {
    for (const slot of this.#slots) {
      if (slot.task !== undefined) continue;
      const task = this.#queue.shift();
      if (task === undefined) return;
      slot.task = task;
      slot.worker.ref();
      const transfer = task.buffer instanceof ArrayBuffer ? [task.buffer] : [];
      slot.worker.postMessage(
        { id: task.id, op: task.op, buffer: task.buffer, lengths: task.lengths, codecs: task.codecs, rawLengths: task.rawLengths },
        transfer,
      );
    }
  }

  /** Settles a task once (a reply after an abort is ignored) and frees its pending count. */
  #settle(task: Task, reply: WorkerReply | undefined, err: unknown): void {
    if (task.resolve === noop) return;
    const { resolve, reject } = task;
    task.resolve = noop;
    task.reject = noop;
    this.#pending--;
    if (task.signal && task.onAbort) task.signal.removeEventListener('abort', task.onAbort);
    if (err !== undefined) reject(err);
    else resolve(reply as WorkerReply);
  }

  #spawn(): Slot {
    const worker = new Worker(CODEC_WORKER_SOURCE, { eval: true, workerData: this.#workerData });
    const slot: Slot = { worker, task: undefined, answered: 0 };
    worker.on('message', (reply: WorkerReply) => {
      const task = slot.task;
      if (task === undefined || task.id !== reply.id) return;
      slot.task = undefined;
      slot.answered++;
      worker.unref();
      if (reply.ok) this.#settle(task, reply, undefined);
      else this.#settle(task, undefined, new DrkitError(reply.code ?? 'INTERNAL', reply.message ?? 'codec worker failed', { data: reply.data ?? {} }));
      this.#dispatch();
    });
    const onDeath = (cause: unknown) => {
      const index = this.#slots.indexOf(slot);
      if (index < 0) return; // closed, or already replaced
      const task = slot.task;
      slot.task = undefined;
      if (task) this.#settle(task, undefined, new DrkitError('INTERNAL', 'codec worker died', { cause }));
      // Replace a worker that had worked; one that died before answering anything would
      // die again (broken environment), so it is dropped rather than respawned forever.
      if (slot.answered > 0) this.#slots[index] = this.#spawn();
      else this.#slots.splice(index, 1);
      if (this.#slots.length === 0) {
        for (const queued of this.#queue.splice(0)) this.#settle(queued, undefined, new DrkitError('INTERNAL', 'every codec worker died', { cause }));
      }
      this.#dispatch();
    };
    worker.on('error', onDeath);
    worker.on('exit', (exitCode) => onDeath(new DrkitError('INTERNAL', `codec worker exited with code ${exitCode}`)));
    // After the listeners: adding a 'message' listener refs a worker again.
    worker.unref();
    return slot;
  }
}

function noop(): void {}

/** File URLs of the native codec modules the workers import (empty: not needed or not loadable). */
interface ModuleUrls {
  readonly lz4Url: string;
  readonly zstdUrl: string;
  readonly zstdBindingUrl: string;
}

const NO_URLS: ModuleUrls = { lz4Url: '', zstdUrl: '', zstdBindingUrl: '' };

/**
 * Resolved from this module, as `import('lz4-napi')` and `import('zstd-napi')` in codec.ts
 * are, so workers load the same copies. (The CJS build gets import.meta.url from tsup's
 * shims.) zstd only where the parent could load it (`withZstd`).
 */
function moduleUrls(withZstd: boolean): ModuleUrls {
  const require = createRequire(import.meta.url);
  const url = (id: string) => pathToFileURL(require.resolve(id)).href;
  return { lz4Url: url('lz4-napi'), zstdUrl: withZstd ? url('zstd-napi') : '', zstdBindingUrl: withZstd ? url('zstd-napi/binding.js') : '' };
}

/** @throws INVALID_ARGUMENT when the batch's input exceeds {@link MAX_POOL_BATCH_BYTES} */
function checkBatchBytes(lengths: Uint32Array): void {
  let total = 0;
  for (const n of lengths) total += n;
  if (total > MAX_POOL_BATCH_BYTES) {
    throw new DrkitError('INVALID_ARGUMENT', `batch of ${total} bytes exceeds the limit of ${MAX_POOL_BATCH_BYTES}`, {
      data: { byteLength: total, maxBytes: MAX_POOL_BATCH_BYTES },
    });
  }
}

/** Copies the batch back to back into one transferable ArrayBuffer. */
function pack(extents: readonly Uint8Array[], lengths: Uint32Array): ArrayBuffer {
  let total = 0;
  for (const n of lengths) total += n;
  const packed = new Uint8Array(total);
  let byteOffset = 0;
  extents.forEach((data) => {
    packed.set(data, byteOffset);
    byteOffset += data.byteLength;
  });
  return packed.buffer;
}

/** Splits a reply's buffer into its results, in order. */
function views(reply: WorkerReply): Uint8Array[] {
  const buffer = reply.buffer as ArrayBuffer;
  const lengths = reply.lengths as Uint32Array;
  const out: Uint8Array[] = new Array(lengths.length);
  let byteOffset = 0;
  for (let i = 0; i < lengths.length; i++) {
    const n = lengths[i] as number;
    out[i] = new Uint8Array(buffer, byteOffset, n);
    byteOffset += n;
  }
  return out;
}
