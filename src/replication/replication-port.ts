/**
 * What a replication sender asks of a receiver. Over the network it is implemented by a
 * protocol channel; in process (tests, local copies) directly by a ReceiverState. Every
 * call is idempotent, which is what makes transfers resumable.
 */
import type { ConsistencyLevel } from '../snapshot/index.js';

/** A snapshot the receiver holds, by origin. */
export interface HeldSnapshot {
  readonly originSiteId: string;
  readonly originSnapshotId: string;
  /** The receiver's own id for it. */
  readonly snapshotId: string;
  readonly createdMs: number;
}

/** Starts (or resumes) receiving one snapshot. */
export interface BeginRequest {
  readonly sessionId: string;
  readonly volumeKey: string;
  readonly originSiteId: string;
  readonly originSnapshotId: string;
  readonly originVolumeId: string;
  /** The origin snapshot id of the base the diff is against, if incremental. */
  readonly baseOriginSnapshotId?: string;
  /** The base's origin site when it differs from `originSiteId` (a promoted lineage's common base). */
  readonly baseOriginSiteId?: string;
  readonly byteLength: number;
  readonly blockBytes: number;
  readonly snapshot: {
    readonly name: string;
    readonly createdMs: number;
    readonly consistency: ConsistencyLevel;
    readonly fallbackReason?: string;
    readonly userMetadata: Readonly<Record<string, string>>;
  };
  /** Set when the snapshot is a member of a consistency group committed together. */
  readonly groupKey?: string;
}

/** The receiver's answer to a begin. */
export interface BeginResponse {
  /** First block the sender still has to send (0 for a new session). */
  readonly resumeBlock: number;
  /** False when the receiver lacks the named base: the sender must send in full. */
  readonly baseFound: boolean;
  /** Set when the snapshot is already committed there (nothing left to do). */
  readonly committedSnapshotId?: string;
}

/** One extent on the wire. */
export interface WireExtent {
  readonly fingerprint: Uint8Array;
  /** xxh64 of the uncompressed data. */
  readonly checksum: bigint;
  /** 0 raw, 1 lz4. */
  readonly codec: number;
  readonly rawLength: number;
  readonly data: Uint8Array;
}

/** One block mapping on the wire (fingerprint undefined = zeros). */
export interface WireBlock {
  readonly blockIndex: number;
  readonly fingerprint: Uint8Array | undefined;
}

/** The receiver side of a replication, as the sender sees it. */
export interface ReplicationPort {
  /**
   * True when the port is done with the `data` of every extent of an `extents()` call by
   * the time the call resolves (it copied them, as a connection's port does into its
   * frame): the sender then compresses later calls into the same memory instead of a
   * fresh buffer per extent. A port that keeps views (a receiver in this process, whose
   * store may hold the bytes until it writes them) leaves it unset.
   * @defaultValue false
   */
  readonly releasesExtentData?: boolean;
  list(volumeKey: string): Promise<HeldSnapshot[]>;
  begin(request: BeginRequest): Promise<BeginResponse>;
  have(fingerprints: readonly Uint8Array[]): Promise<boolean[]>;
  /** Stores extents; rejects with CORRUPTION if any fails verification (none of that batch is mapped). */
  extents(extents: readonly WireExtent[]): Promise<void>;
  /** Applies block mappings of a session; returns the session's new cursor. */
  blocks(sessionId: string, cursorAfter: number, blocks: readonly WireBlock[]): Promise<number>;
  /** Commits sessions as snapshots, all in one atomic commit; returns their ids in order. */
  commit(sessionIds: readonly string[]): Promise<string[]>;
}
