/**
 * What a Volume or SnapshotReader handle needs from its SnapshotTree. Keeps the handles
 * in their own files without exposing the tree's internals publicly.
 */
import type { ExtentStore } from '../../adapters/extent-store.js';
import type { Fingerprinter } from '../../dedup/fingerprint.js';
import type { VolumeRecord } from '../records.js';
import type { MapStore } from './map-store.js';

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
  /** Called under the mutex after each write, to bound uncommitted metadata. */
  afterWrite(): Promise<void>;
  flush(signal?: AbortSignal): Promise<void>;
  beginRead(): void;
  endRead(): void;
  releaseHandle(volumeId: string): void;
  releasePin(snapshotId: string): void;
}
