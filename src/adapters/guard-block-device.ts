/**
 * The guard drkit puts around a user's BlockDevice (Kysely's `RuntimeDriver`): the user
 * adapter only does I/O; the guard validates arguments, opens and closes once, bounds
 * concurrency to what the device declares, verifies what comes back, and maps foreign
 * errors to coded DrkitErrors. Every drkit component that accepts a device may wrap it.
 */
import type { BlockDevice, BlockDeviceCapabilities, BlockRead, BlockWrite, IoOptions } from './block-device.js';
import { AbortError, DrkitError, toDrkitError } from '../core/errors.js';
import { assertPositiveInteger } from '../core/validate.js';
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

/** Options of {@link guardBlockDevice}. */
export interface GuardBlockDeviceOptions {
  /**
   * Upper bound on calls in flight on the inner device; the effective bound is the
   * smaller of this and `capabilities.maxConcurrency`.
   * @defaultValue `device.capabilities.maxConcurrency`
   */
  maxConcurrency?: number;
}

/** A guarded device: a {@link BlockDevice} that can also be disposed with `await using`. */
export type GuardedBlockDevice = BlockDevice & AsyncDisposable;

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

class Guarded implements GuardedBlockDevice {
  readonly capabilities: Readonly<BlockDeviceCapabilities>;
  readonly #inner: BlockDevice;
  readonly #limit: number;
  #active = 0;
  readonly #queue: Waiter[] = [];
  #closing: Promise<void> | undefined;
  #idle: (() => void) | undefined;

  constructor(inner: BlockDevice, limit: number, capabilities: Readonly<BlockDeviceCapabilities>) {
    this.#inner = inner;
    this.#limit = limit;
    this.capabilities = capabilities;
  }

  get byteLength(): number {
    return this.#inner.byteLength;
  }

  async read(byteOffset: number, byteLength: number, options?: IoOptions): Promise<Uint8Array> {
    this.#enter(options, 'read');
    checkExtent(this, byteOffset, byteLength, 'read');
    const out = await this.#call('read', options, () => this.#inner.read(byteOffset, byteLength, options));
    verifyRead(out, byteOffset, byteLength, 'read');
    return out;
  }

  async readv(reads: readonly BlockRead[], options?: IoOptions): Promise<Uint8Array[]> {
    this.#enter(options, 'readv');
    checkReads(this, reads);
    const out = await this.#call('readv', options, () => this.#inner.readv(reads, options));
    if (!Array.isArray(out) || out.length !== reads.length) {
      throw new DrkitError('SHORT_IO', `readv: device returned ${Array.isArray(out) ? out.length : 'no'} results for ${reads.length} reads`);
    }
    reads.forEach((r, i) => verifyRead(out[i], r.byteOffset, r.byteLength, 'readv'));
    return out;
  }

  async write(byteOffset: number, data: Uint8Array, options?: IoOptions): Promise<void> {
    this.#enter(options, 'write');
    checkWrite(this, byteOffset, data);
    await this.#call('write', options, () => this.#inner.write(byteOffset, data, options));
  }

  async writev(writes: readonly BlockWrite[], options?: IoOptions): Promise<void> {
    this.#enter(options, 'writev');
    checkWrites(this, writes);
    await this.#call('writev', options, () => this.#inner.writev(writes, options));
  }

  async discard(byteOffset: number, byteLength: number, options?: IoOptions): Promise<void> {
    this.#enter(options, 'discard');
    requireCapability(this, 'discard', 'discard');
    checkExtent(this, byteOffset, byteLength, 'discard');
    await this.#call('discard', options, () => this.#inner.discard(byteOffset, byteLength, options));
  }

  async flush(options?: IoOptions): Promise<void> {
    this.#enter(options, 'flush');
    await this.#call('flush', options, () => this.#inner.flush(options));
  }

  async resize(byteLength: number, options?: IoOptions): Promise<void> {
    this.#enter(options, 'resize');
    requireCapability(this, 'resizable', 'resize');
    checkNewLength(this, byteLength);
    await this.#call('resize', options, () => this.#inner.resize(byteLength, options));
  }

  /** Closes the inner device once, after calls in flight settle; queued calls reject with CLOSED. */
  close(): Promise<void> {
    this.#closing ??= this.#closeOnce();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #closeOnce(): Promise<void> {
    for (const w of this.#queue.splice(0)) w.reject(new DrkitError('CLOSED', 'device closed while the call was queued'));
    if (this.#active > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    try {
      await this.#inner.close();
    } catch (err) {
      throw toDrkitError(err, 'IO_ERROR', 'close failed');
    }
  }

  #enter(options: IoOptions | undefined, what: string): void {
    assertOpen(this.#closing === undefined, what);
    checkOptions(options, what);
  }

  async #call<T>(what: string, options: IoOptions | undefined, fn: () => Promise<T>): Promise<T> {
    await this.#acquire(options?.signal);
    try {
      // A user adapter may throw synchronously or return a non-promise: normalise both.
      return await fn();
    } catch (err) {
      throw toDrkitError(err, 'IO_ERROR', `${what} failed`);
    } finally {
      this.#release();
    }
  }

  #acquire(signal: AbortSignal | undefined): Promise<void> {
    if (this.#active < this.#limit) {
      this.#active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      const onAbort = (): void => {
        const i = this.#queue.indexOf(waiter);
        if (i >= 0) this.#queue.splice(i, 1);
        waiter.reject(new AbortError('operation aborted while queued', { cause: signal?.reason }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  #release(): void {
    const next = this.#queue.shift();
    // Hand the slot straight to the next waiter so the bound is never exceeded.
    if (next) next.resolve();
    else {
      this.#active--;
      if (this.#active === 0 && this.#idle) this.#idle();
    }
  }
}

function verifyRead(out: unknown, byteOffset: number, byteLength: number, what: string): asserts out is Uint8Array {
  if (!(out instanceof Uint8Array) || out.byteLength !== byteLength) {
    const got = out instanceof Uint8Array ? out.byteLength : -1;
    throw new DrkitError('SHORT_IO', `${what}: device returned ${got} bytes, asked ${byteLength}`, {
      data: { byteOffset, byteLength, returnedBytes: got },
    });
  }
}

/**
 * Wraps a user's {@link BlockDevice} so it behaves like a drkit device: arguments are
 * validated before they reach it, `close()` is idempotent and waits for calls in
 * flight, at most `maxConcurrency` calls run on it at once (more are queued, and an
 * abort removes a queued call), reads that return the wrong length fail, and foreign
 * errors become DrkitErrors (`IO_ERROR` unless an fs code maps better; the original is
 * `cause`).
 * @throws INVALID_ARGUMENT when the device or its capabilities are malformed
 */
export function guardBlockDevice(device: BlockDevice, options: GuardBlockDeviceOptions = {}): GuardedBlockDevice {
  if (device === null || typeof device !== 'object') {
    throw new DrkitError('INVALID_ARGUMENT', 'guardBlockDevice: device must be an object');
  }
  for (const m of ['read', 'readv', 'write', 'writev', 'discard', 'flush', 'resize', 'close'] as const) {
    if (typeof device[m] !== 'function') {
      throw new DrkitError('INVALID_ARGUMENT', `guardBlockDevice: device.${m} must be a function`);
    }
  }
  const capabilities = freezeCapabilities(device.capabilities);
  const limit = options.maxConcurrency ?? capabilities.maxConcurrency;
  assertPositiveInteger(limit, 'maxConcurrency');
  return new Guarded(device, Math.min(limit, capabilities.maxConcurrency), capabilities);
}
