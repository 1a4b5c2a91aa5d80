/**
 * Persistent records of a SnapshotTree: the tree itself, its volumes and its
 * snapshots. Stored as versioned JSON values in the MetaStore (see internal/keys.ts).
 */
import type { WriteLogState } from './internal/write-log.js';

/** How consistent a snapshot is. */
export type ConsistencyLevel = 'crash' | 'application';

/** A snapshot, as listed. Immutable: a snapshot never changes after creation. */
export interface SnapshotInfo {
  /** Unique id within the tree (`snap-<n>`). */
  readonly id: string;
  /** User-facing name (not necessarily unique). */
  readonly name: string;
  /** The volume it was taken of. */
  readonly volumeId: string;
  /** The snapshot the volume descended from when this one was taken (lineage), if any. */
  readonly parentSnapshotId: string | undefined;
  /** Creation time, ms since the epoch, from the tree's clock. */
  readonly createdMs: number;
  /** Logical length of the snapshotted volume. */
  readonly byteLength: number;
  /** Block size of the volume. */
  readonly blockBytes: number;
  /** What was achieved: `application` only when every quiesce hook succeeded in time. */
  readonly consistency: ConsistencyLevel;
  /** Set for snapshots taken together as a consistency group. */
  readonly groupId: string | undefined;
  /** Why an application-consistent request fell back to crash consistency. */
  readonly fallbackReason: string | undefined;
  /** Free-form user metadata (JSON-serialisable strings). */
  readonly userMetadata: Readonly<Record<string, string>>;
}

/** A volume, as listed. */
export interface VolumeInfo {
  readonly id: string;
  readonly name: string;
  readonly byteLength: number;
  readonly blockBytes: number;
  /** The snapshot this volume last descended from (clone source or restore point). */
  readonly parentSnapshotId: string | undefined;
  readonly createdMs: number;
}

/** @internal stored form of a snapshot */
export interface SnapshotRecord extends SnapshotInfo {
  readonly formatVersion: 1;
  readonly root: number;
}

/** @internal stored form of a volume */
export interface VolumeRecord extends VolumeInfo {
  readonly formatVersion: 1;
  root: number;
}

/** @internal stored form of the tree record */
export interface TreeRecord {
  readonly formatVersion: 1;
  readonly fingerprintAlgorithm: string;
  readonly digestBytes: number;
  nextNodeId: number;
  nextVolumeSeq: number;
  nextSnapshotSeq: number;
  nextGroupSeq: number;
  /** Where the write log starts (absent: the tree has never used one). */
  writeLog?: WriteLogState;
}

/** Current format version of every record. */
export const RECORD_FORMAT_VERSION = 1;
