/**
 * DirtyRegions: the durable write-intent bitmap of one side of a Metro pair (DRBD's
 * activity log and bitmap in one): one bit per region of the volume, set for every region
 * that may differ from the peer.
 *
 * Durability promise: `mark()` resolves only once the bits are durable on the metadata
 * device (written, then flushed), and the mirrored volume calls it BEFORE it writes the
 * region locally, so a crash at any moment loses no dirty bit: after a restart every
 * region that may hold a write the peer lacks (acknowledged in degraded mode, or in
 * flight when the process died) is still marked. `clear()` is durable the same way and is
 * called only for regions both sides are known to hold identically.
 *
 * Layout on the metadata device: bytes [0, 8 KiB) are the state record's two slots
 * (internal/state-record.ts); the bitmap starts at {@link BITMAP_BYTE_OFFSET}, bit i of
 * byte i>>3 (LSB first) for region i. Memory: one bit per region (a 1 TiB volume at the
 * default 64 KiB regions is 2 MiB).
 */
import { DrkitError } from '../core/errors.js';
import { assertPositiveInteger } from '../core/validate.js';
import type { BlockDevice } from '../adapters/block-device.js';

/** Where the bitmap starts on the metadata device (after the two 4 KiB state slots). */
export const BITMAP_BYTE_OFFSET = 8192;

/** Default region: 64 KiB, so a 4 KiB write in degraded mode resyncs at most 64 KiB. */
export const DEFAULT_REGION_BYTES = 64 * 1024;

/** Largest region: 4 MiB (DRBD's activity-log extent); it must fit one frame. */
export const MAX_REGION_BYTES = 4 * 1024 * 1024;

/** Options of {@link DirtyRegions.open}. */
export interface DirtyRegionsOptions {
  /** The metadata device (shared with the state record). */
  readonly device: BlockDevice;
  /** Bytes of the mirrored volume. */
  readonly volumeByteLength: number;
  /** Bytes per region (a power of two, 4 KiB..4 MiB). @defaultValue DEFAULT_REGION_BYTES */
  readonly regionBytes?: number;
}

/** The durable set of regions that may differ from the peer. */
export class DirtyRegions {
  readonly regionBytes: number;
  readonly regionCount: number;
  readonly #device: BlockDevice;
  readonly #bits: Uint8Array;
  #count = 0;
  /** Bitmap writes run one at a time, so a call that changes nothing still waits for the bits an earlier call is making durable. */
  #tail: Promise<void> = Promise.resolve();

  private constructor(device: BlockDevice, regionBytes: number, regionCount: number, bits: Uint8Array) {
    this.#device = device;
    this.regionBytes = regionBytes;
    this.regionCount = regionCount;
    this.#bits = bits;
    for (let i = 0; i < regionCount; i++) if (this.has(i)) this.#count++;
  }

  /**
   * Reads the bitmap from the metadata device.
   * @throws INVALID_ARGUMENT (region size, or a device too small for the bitmap), IO_ERROR
   */
  static async open(options: DirtyRegionsOptions): Promise<DirtyRegions> {
    const regionBytes = options.regionBytes ?? DEFAULT_REGION_BYTES;
    assertPositiveInteger(regionBytes, 'regionBytes');
    assertPositiveInteger(options.volumeByteLength, 'volumeByteLength');
    if ((regionBytes & (regionBytes - 1)) !== 0 || regionBytes < 4096 || regionBytes > MAX_REGION_BYTES) {
      throw new DrkitError('INVALID_ARGUMENT', `regionBytes must be a power of two in [4096, ${MAX_REGION_BYTES}], got ${regionBytes}`);
    }
    const regionCount = Math.ceil(options.volumeByteLength / regionBytes);
    const bitmapBytes = bitmapBytesFor(regionCount);
    if (options.device.byteLength < BITMAP_BYTE_OFFSET + bitmapBytes) {
      throw new DrkitError('INVALID_ARGUMENT', `metadata device of ${options.device.byteLength} bytes cannot hold a bitmap of ${regionCount} regions (needs ${metadataBytesFor(options.volumeByteLength, regionBytes)})`);
    }
    const bits = await options.device.read(BITMAP_BYTE_OFFSET, bitmapBytes);
    return new DirtyRegions(options.device, regionBytes, regionCount, bits);
  }

  /** Regions currently marked. */
  get count(): number {
    return this.#count;
  }

  /** Whether region `regionIndex` is marked. */
  has(regionIndex: number): boolean {
    return (this.#bits[regionIndex >> 3]! & (1 << (regionIndex & 7))) !== 0;
  }

  /** The marked regions, ascending. */
  list(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.regionCount; i++) if (this.has(i)) out.push(i);
    return out;
  }

  /** Regions touched by the byte range. */
  regionsOf(byteOffset: number, byteLength: number): number[] {
    if (byteLength === 0) return [];
    const first = Math.floor(byteOffset / this.regionBytes);
    const last = Math.floor((byteOffset + byteLength - 1) / this.regionBytes);
    const out: number[] = [];
    for (let i = first; i <= last; i++) out.push(i);
    return out;
  }

  /** Marks regions durably (no device I/O when all are marked already). @throws OUT_OF_RANGE, IO_ERROR */
  async mark(regionIndexes: readonly number[]): Promise<void> {
    await this.#set(regionIndexes, true);
  }

  /** Clears regions durably. @throws OUT_OF_RANGE, IO_ERROR */
  async clear(regionIndexes: readonly number[]): Promise<void> {
    await this.#set(regionIndexes, false);
  }

  #set(regionIndexes: readonly number[], value: boolean): Promise<void> {
    for (const i of regionIndexes) {
      if (!Number.isSafeInteger(i) || i < 0 || i >= this.regionCount) return Promise.reject(new DrkitError('OUT_OF_RANGE', `region ${i} is outside [0, ${this.regionCount})`, { data: { regionIndex: i } }));
    }
    const run = this.#tail.then(() => this.#write(regionIndexes, value));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #write(regionIndexes: readonly number[], value: boolean): Promise<void> {
    let lowByte = Infinity;
    let highByte = -1;
    for (const i of regionIndexes) {
      if (this.has(i) === value) continue;
      if (value) this.#bits[i >> 3]! |= 1 << (i & 7);
      else this.#bits[i >> 3]! &= ~(1 << (i & 7));
      this.#count += value ? 1 : -1;
      lowByte = Math.min(lowByte, i >> 3);
      highByte = Math.max(highByte, i >> 3);
    }
    if (highByte < 0) return;
    await this.#device.write(BITMAP_BYTE_OFFSET + lowByte, this.#bits.slice(lowByte, highByte + 1));
    await this.#device.flush();
  }
}

function bitmapBytesFor(regionCount: number): number {
  return Math.ceil(regionCount / 8);
}

/** Bytes a metadata device needs for a volume of `volumeByteLength` at `regionBytes` regions. */
export function metadataBytesFor(volumeByteLength: number, regionBytes: number = DEFAULT_REGION_BYTES): number {
  return BITMAP_BYTE_OFFSET + bitmapBytesFor(Math.ceil(volumeByteLength / regionBytes));
}
