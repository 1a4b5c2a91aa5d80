/**
 * What a Volume or SnapshotReader handle needs from its SnapshotTree. Keeps the handles
 * in their own files without exposing the tree's internals publicly.
 */
import type { ExtentStore } from '../../adapters/extent-store.js';
import type { Fingerprinter } from '../../dedup/fingerprint.js';
import type { VolumeRecord } from '../records.js';
import type { MapStore } from './map-store.js';
import type { RowGeometry } from './redirect-on-write.js';

/** @internal */
export interface TreeCore {
  readonly map: MapStore;
  readonly extents: ExtentStore;
  readonly fingerprinter: Fingerprinter;
  /** Runs a mutation under the tree's mutex. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** The current record of a volume. @throws NOT_FOUND */
  volume(volumeId: string): VolumeRecord;
  markVolumeDirty(volumeId: string): void;
  /**
   * Changes a volume's content (under the mutex): through the write log when the tree has
   * one and the write is small, else redirect-on-write at once. `data` undefined = zeros.
   */
  write(volumeId: string, geometry: RowGeometry, byteOffset: number, byteLength: number, data: Uint8Array | undefined): Promise<void>;
  /** Applies the writes still in the write log over a read of the volume (no-op without a log). */
  overlayPending(volumeId: string): (byteOffset: number, out: Uint8Array) => void;
  /** Drains the write log into the block map (under the mutex). */
  drainLog(): Promise<void>;
  /** Called under the mutex after each write, to bound uncommitted metadata. */
  afterWrite(): Promise<void>;
  flush(signal?: AbortSignal): Promise<void>;
  beginRead(): void;
  endRead(): void;
  releaseHandle(volumeId: string): void;
  releasePin(snapshotId: string): void;
}
