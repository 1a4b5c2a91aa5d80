/**
 * drkit/snapshot: redirect-on-write volumes, snapshots, clones, consistency groups,
 * diff, space reclamation and verification.
 * @packageDocumentation
 */
export { SnapshotTree, DEFAULT_BLOCK_BYTES, DEFAULT_TREE_CACHE_BYTES, MIN_BLOCK_BYTES, MAX_BLOCK_BYTES } from './snapshot-tree.js';
export type { SnapshotTreeOptions, CreateVolumeOptions, SnapshotOptions, DiffRange, ReclaimResult, LogPosition, WriteLogEntry } from './tree-options.js';
export { Volume, type BlockMapping } from './volume.js';
export { SnapshotReader } from './snapshot-reader.js';
export type { SnapshotInfo, VolumeInfo, ConsistencyLevel } from './records.js';
export type { QuiesceHooks } from './quiesce.js';
export type { VerifyReport, VerifyProblem, VerifyProblemCode, VerifyOptions } from './verifier.js';
