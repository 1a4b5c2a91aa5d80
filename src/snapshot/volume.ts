/**
 * Volume: a writable virtual block device (the seed's vDisk) whose contents are a
 * block map in a SnapshotTree. It implements the BlockDevice contract, so a volume, a
 * clone and a raw file are interchangeable wherever a device is expected.
 *
 * A thin handle: it validates arguments and takes the tree's lock; redirect-on-write
 * itself (read-modify-write of partial blocks, holes, dedup, the map update) lives in
 * internal/redirect-on-write.ts.
 *
 * Durability: writes are durable once `flush()` resolves (it commits the whole tree).
 */
import { DrkitError, throwIfAborted } from '../core/errors.js';
import { assertBytes, assertRange } from '../core/validate.js';
import type { BlockDevice, BlockDeviceCapabilities, BlockRead, BlockWrite, IoOptions } from '../adapters/block-device.js';
import { checkReadsInto, intoOrOwn } from '../adapters/internal/device-guard.js';
import type { BlockUpdate } from './internal/block-map.js';
import { readImage } from './internal/block-reader.js';
import { mapBlocks, type RowGeometry } from './internal/redirect-on-write.js';
import type { TreeCore } from './internal/tree-core.js';

/** One entry of {@link Volume.mapBlocks}: a block and the fingerprint it should read as (undefined = zeros). */
export interface BlockMapping {
  readonly blockIndex: number;
  readonly fingerprint: Uint8Array | undefined;
}

/** Concurrent calls a volume serves; mutations are serialised by the tree anyway. */
const VOLUME_MAX_CONCURRENCY = 64;

/** A writable handle to a volume of a SnapshotTree. Obtain with `tree.createVolume`, `tree.openVolume` or `tree.clone`. */
export class Volume implements BlockDevice {
  /** The volume's id in its tree. */
  readonly id: string;
  readonly byteLength: number;
  /** Block size: the unit of redirect-on-write, dedup and replication. */
  readonly blockBytes: number;
  readonly capabilities: BlockDeviceCapabilities;
  readonly #core: TreeCore;
  readonly #height: number;
  readonly #geometry: RowGeometry;
  #closed = false;

  /** @internal use SnapshotTree to obtain volumes */
  constructor(core: TreeCore, id: string, byteLength: number, blockBytes: number, height: number) {
    this.#core = core;
    this.id = id;
    this.byteLength = byteLength;
    this.blockBytes = blockBytes;
    this.#height = height;
    this.#geometry = { height, blockBytes };
    this.capabilities = Object.freeze({
      durableFlush: core.extents.capabilities.durableFlush,
      discard: true,
      resizable: false,
      alignmentBytes: 1,
      atomicWriteBytes: blockBytes,
      maxConcurrency: VOLUME_MAX_CONCURRENCY,
    });
  }

  /** @throws OUT_OF_RANGE, INVALID_ARGUMENT, NOT_OPEN, ABORTED, CORRUPTION */
  async read(byteOffset: number, byteLength: number, options: IoOptions = {}): Promise<Uint8Array> {
    this.#check('read', byteOffset, byteLength, options.signal);
    this.#core.beginRead();
    try {
      const overlay = this.#core.overlayPending(this.id);
      const record = this.#core.volume(this.id);
      const out = await readImage(this.#core.map, this.#core.extents, { root: record.root, height: this.#height, blockBytes: this.blockBytes }, byteOffset, byteLength, options.signal);
      overlay(byteOffset, out);
      return out;
    } finally {
      this.#core.endRead();
    }
  }

  /** Reads in request order. */
  async readv(reads: readonly BlockRead[], options: IoOptions = {}): Promise<Uint8Array[]> {
    checkReadsInto(reads);
    const out: Uint8Array[] = [];
    for (const r of reads) out.push(intoOrOwn(r, await this.read(r.byteOffset, r.byteLength, options)));
    return out;
  }

  /** @throws OUT_OF_RANGE, INVALID_ARGUMENT, NOT_OPEN, ABORTED */
  async write(byteOffset: number, data: Uint8Array, options: IoOptions = {}): Promise<void> {
    assertBytes(data, 'data');
    this.#check('write', byteOffset, data.length, options.signal);
    if (data.length === 0) return;
    await this.#core.run(() => this.#apply(byteOffset, data.length, data));
  }

  /** Writes in order under one lock acquisition. */
  async writev(writes: readonly BlockWrite[], options: IoOptions = {}): Promise<void> {
    for (const w of writes) {
      assertBytes(w.data, 'data');
      this.#check('write', w.byteOffset, w.data.length, options.signal);
    }
    await this.#core.run(async () => {
      for (const w of writes) if (w.data.length > 0) await this.#apply(w.byteOffset, w.data.length, w.data);
    });
  }

  /** Makes the range read as zero; whole blocks become holes and free their extents' references. */
  async discard(byteOffset: number, byteLength: number, options: IoOptions = {}): Promise<void> {
    this.#check('discard', byteOffset, byteLength, options.signal);
    if (byteLength === 0) return;
    await this.#core.run(() => this.#apply(byteOffset, byteLength, undefined));
  }

  /**
   * Points blocks at extents the tree already stores, moving no data: how a replication
   * target applies a received block map, and how bulk imports reuse known content.
   * Later entries for the same block win.
   * @throws OUT_OF_RANGE for a block past the end, EXTENT_NOT_FOUND for a fingerprint the
   *   ExtentStore does not hold, INVALID_ARGUMENT for a malformed fingerprint
   */
  async mapBlocks(updates: readonly BlockMapping[], options: IoOptions = {}): Promise<void> {
    this.#check('mapBlocks', 0, 0, options.signal);
    const blockCount = this.byteLength / this.blockBytes;
    const byBlock = new Map<number, Uint8Array | undefined>();
    for (const u of updates) {
      if (!Number.isSafeInteger(u.blockIndex) || u.blockIndex < 0 || u.blockIndex >= blockCount) {
        throw new DrkitError('OUT_OF_RANGE', `block ${u.blockIndex} is outside volume ${this.id} (${blockCount} blocks)`, { data: { blockIndex: u.blockIndex, blockCount } });
      }
      if (u.fingerprint !== undefined && (!(u.fingerprint instanceof Uint8Array) || u.fingerprint.length !== this.#core.fingerprinter.digestBytes)) {
        throw new DrkitError('INVALID_ARGUMENT', `fingerprint of block ${u.blockIndex} must be ${this.#core.fingerprinter.digestBytes} bytes`);
      }
      byBlock.set(u.blockIndex, u.fingerprint);
    }
    const sorted: BlockUpdate[] = [...byBlock.entries()].sort((a, b) => a[0] - b[0]).map(([blockIndex, fingerprint]) => ({ blockIndex, fingerprint }));
    const core = this.#core;
    await core.run(async () => {
      await core.drainLog();
      await mapBlocks(core, core.volume(this.id), this.#geometry, sorted, options);
      core.markVolumeDirty(this.id);
      await core.afterWrite();
    });
  }

  /** Commits the tree durably (every volume of it). */
  async flush(options: IoOptions = {}): Promise<void> {
    this.#check('flush', 0, 0, options.signal);
    await this.#core.flush(options.signal);
  }

  /** Volumes have a fixed length. @throws NOT_SUPPORTED */
  async resize(_byteLength: number, options: IoOptions = {}): Promise<void> {
    this.#check('resize', 0, 0, options.signal);
    throw new DrkitError('NOT_SUPPORTED', 'volumes cannot be resized', { data: { volumeId: this.id } });
  }

  /** Releases this handle (no implicit flush). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#core.releaseHandle(this.id);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #check(what: string, byteOffset: number, byteLength: number, signal: AbortSignal | undefined): void {
    if (this.#closed) throw new DrkitError('NOT_OPEN', `volume ${this.id} handle is closed`, { data: { volumeId: this.id } });
    throwIfAborted(signal);
    assertRange(byteOffset, byteLength, this.byteLength, `volume ${this.id} ${what}`);
  }

  /** Redirects the range (`data` undefined = zeros). Runs under the tree mutex. */
  async #apply(byteOffset: number, byteLength: number, data: Uint8Array | undefined): Promise<void> {
    await this.#core.write(this.id, this.#geometry, byteOffset, byteLength, data);
  }
}
