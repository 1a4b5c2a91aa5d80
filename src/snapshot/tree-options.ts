/** Options and results of SnapshotTree calls. */
import type { BlockDevice } from '../adapters/block-device.js';
import type { Clock } from '../adapters/clock.js';
import type { ExtentStore } from '../adapters/extent-store.js';
import type { MetaStore } from '../adapters/meta-store.js';
import type { Fingerprinter } from '../dedup/fingerprint.js';
import type { QuiesceHooks } from './quiesce.js';
import type { ConsistencyLevel } from './records.js';

/** Options of {@link SnapshotTree.open}. */
export interface SnapshotTreeOptions {
  /** Where every metadata record lives. */
  meta: MetaStore;
  /** Where block contents live; the tree must be its only user (it counts references). */
  extents: ExtentStore;
  /** Key prefix in `meta`, so several trees can share one MetaStore. @defaultValue 'st/' */
  keyPrefix?: string;
  /** Content fingerprint. Must match the one the tree was created with. @defaultValue sha256Fingerprinter */
  fingerprinter?: Fingerprinter;
  /** Source of snapshot times and quiesce deadlines. @defaultValue new SystemClock() */
  clock?: Clock;
  /**
   * Byte budget of the block-map caches (decoded nodes, node and extent reference counts).
   * Uncommitted changes are held beside it, bounded by an automatic commit at 2 MiB.
   * @defaultValue 24 MiB (`DEFAULT_TREE_CACHE_BYTES`)
   */
  cacheBytes?: number;
  /**
   * A device for the write log (e.g. a `RawFileBlockDevice` of 64 MiB or more). With it,
   * writes smaller than 256 KiB or not block-aligned are appended to the log and
   * acknowledged at once, made durable by `flush()` with one device flush, and drained
   * into the block map (coalesced into whole blocks: a block rewritten before a drain
   * costs one extent) in the background and before any operation that needs the block
   * map current (snapshots, restore, mapBlocks, volume deletion). Without it every write
   * goes redirect-on-write at once. The device is not closed by the tree.
   * @defaultValue undefined (no log)
   */
  writeLog?: BlockDevice;
  /**
   * Called when a hold on the write log ({@link SnapshotTree.holdWriteLog}) is dropped
   * because the records it keeps passed half of the ring: that holder (a NearSync
   * session) has fallen too far behind and must fall back and re-seed.
   * @defaultValue undefined
   */
  onWriteLogHoldDropped?: (holderId: string, reason: 'bound' | 'unreadable') => void;
}

/** Options of {@link SnapshotTree.createVolume}. */
export interface CreateVolumeOptions {
  name: string;
  /** Logical length; a multiple of blockBytes. */
  byteLength: number;
  /** Block size, a power of two in [512, 1 MiB]. @defaultValue 16384 */
  blockBytes?: number;
}

/** Options of {@link SnapshotTree.snapshot} and {@link SnapshotTree.snapshotGroup}. */
export interface SnapshotOptions {
  name: string;
  userMetadata?: Record<string, string>;
  /** Ask for application consistency: run these hooks around the commit. */
  quiesce?: QuiesceHooks;
  /** Deadline of preFreeze. @defaultValue 30000 */
  quiesceTimeoutMs?: number;
  /** Extra user metadata per volume id (merged over `userMetadata`), e.g. per-member origin ids of a replicated group. */
  userMetadataByVolume?: Record<string, Record<string, string>>;
  /**
   * Record another site's facts instead of this moment's: replication targets keep the
   * source snapshot's creation time and consistency. Not combinable with `quiesce`.
   */
  imported?: { createdMs: number; consistency: ConsistencyLevel; fallbackReason?: string };
}

/** One changed run of blocks between two snapshots. */
export interface DiffRange {
  readonly blockIndex: number;
  readonly blockCount: number;
  readonly byteOffset: number;
  readonly byteLength: number;
  /** The blocks' fingerprints in the newer snapshot; undefined = the block is zero there. */
  readonly fingerprints: readonly (Uint8Array | undefined)[];
}

/** Result of one {@link SnapshotTree.reclaim} call. */
export interface ReclaimResult {
  readonly nodesReclaimed: number;
  readonly extentsDeleted: number;
  /** True when nothing is left to reclaim. */
  readonly done: boolean;
}

/** A place in a tree's write log: a record's sequence number and where it starts in the ring. */
export interface LogPosition {
  readonly seq: number;
  readonly offset: number;
}

/** A record read back from the write log ({@link SnapshotTree.readWriteLog}). */
export type WriteLogEntry =
  | { readonly kind: 'write'; readonly seq: number; readonly volumeId: string; readonly byteOffset: number; readonly data: Uint8Array }
  | { readonly kind: 'marker'; readonly seq: number; readonly volumeIds: readonly string[] }
  | { readonly kind: 'flush'; readonly seq: number };
