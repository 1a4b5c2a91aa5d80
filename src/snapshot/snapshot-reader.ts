/**
 * SnapshotReader: a read-only BlockDevice over a snapshot. A snapshot never changes, so
 * reads return its bytes whatever happens to the volume it was taken of. While a reader
 * is open the snapshot cannot be deleted.
 */
import { DrkitError, throwIfAborted } from '../core/errors.js';
import { assertRange } from '../core/validate.js';
import type { BlockDevice, BlockDeviceCapabilities, BlockRead, IoOptions } from '../adapters/block-device.js';
import { checkReadsInto, intoOrOwn } from '../adapters/internal/device-guard.js';
import { readImage } from './internal/block-reader.js';
import type { TreeCore } from './internal/tree-core.js';

/** Read-only device over one snapshot. Obtain with `tree.openSnapshot(id)`; close it. */
export class SnapshotReader implements BlockDevice {
  readonly snapshotId: string;
  readonly byteLength: number;
  readonly blockBytes: number;
  readonly capabilities: BlockDeviceCapabilities;
  readonly #core: TreeCore;
  readonly #root: number;
  readonly #height: number;
  #closed = false;

  /** @internal use SnapshotTree.openSnapshot */
  constructor(core: TreeCore, snapshotId: string, root: number, byteLength: number, blockBytes: number, height: number) {
    this.#core = core;
    this.snapshotId = snapshotId;
    this.#root = root;
    this.byteLength = byteLength;
    this.blockBytes = blockBytes;
    this.#height = height;
    this.capabilities = Object.freeze({ durableFlush: true, discard: false, resizable: false, alignmentBytes: 1, atomicWriteBytes: blockBytes, maxConcurrency: 64 });
  }

  /** @throws OUT_OF_RANGE, INVALID_ARGUMENT, NOT_OPEN, ABORTED, CORRUPTION */
  async read(byteOffset: number, byteLength: number, options: IoOptions = {}): Promise<Uint8Array> {
    this.#check(options.signal);
    assertRange(byteOffset, byteLength, this.byteLength, `snapshot ${this.snapshotId} read`);
    this.#core.beginRead();
    try {
      return await readImage(this.#core.map, this.#core.extents, { root: this.#root, height: this.#height, blockBytes: this.blockBytes }, byteOffset, byteLength, options.signal);
    } finally {
      this.#core.endRead();
    }
  }

  async readv(reads: readonly BlockRead[], options: IoOptions = {}): Promise<Uint8Array[]> {
    checkReadsInto(reads);
    const out: Uint8Array[] = [];
    for (const r of reads) out.push(intoOrOwn(r, await this.read(r.byteOffset, r.byteLength, options)));
    return out;
  }

  /** Snapshots are immutable. @throws NOT_SUPPORTED */
  async write(): Promise<void> {
    throw this.#readOnly();
  }

  /** @throws NOT_SUPPORTED */
  async writev(): Promise<void> {
    throw this.#readOnly();
  }

  /** @throws NOT_SUPPORTED */
  async discard(): Promise<void> {
    throw this.#readOnly();
  }

  /** @throws NOT_SUPPORTED */
  async resize(): Promise<void> {
    throw this.#readOnly();
  }

  /** Nothing to make durable: the snapshot already is. */
  async flush(options: IoOptions = {}): Promise<void> {
    this.#check(options.signal);
  }

  /** Unpins the snapshot. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#core.releasePin(this.snapshotId);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #check(signal: AbortSignal | undefined): void {
    if (this.#closed) throw new DrkitError('NOT_OPEN', `snapshot reader ${this.snapshotId} is closed`);
    throwIfAborted(signal);
  }

  #readOnly(): DrkitError {
    return new DrkitError('NOT_SUPPORTED', `snapshot ${this.snapshotId} is read-only`, { data: { snapshotId: this.snapshotId } });
  }
}
