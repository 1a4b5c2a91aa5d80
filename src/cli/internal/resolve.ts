/** Volumes and snapshots named on the command line: by id (`vol-3`, `snap-7`) or by unique name. */
import { DrkitError, isDrkitError } from '../../core/index.js';
import type { SnapshotInfo, SnapshotTree, VolumeInfo } from '../../snapshot/index.js';

/** The volume with id `ref`, else the one named `ref`. @throws NOT_FOUND, INVALID_ARGUMENT (ambiguous name) */
export function resolveVolume(tree: SnapshotTree, ref: string): VolumeInfo {
  return tree.listVolumes().find((v) => v.id === ref) ?? tree.findVolume(ref);
}

/** The snapshot with id `ref`, else the one named `ref`. @throws NOT_FOUND, INVALID_ARGUMENT (ambiguous name) */
export function resolveSnapshot(tree: SnapshotTree, ref: string): SnapshotInfo {
  return tree.listSnapshots().find((s) => s.id === ref) ?? tree.findSnapshot(ref);
}

/**
 * A volume or a snapshot named `ref` (export takes either).
 * @throws NOT_FOUND when neither is, INVALID_ARGUMENT when both are or a name is shared
 */
export function resolveVolumeOrSnapshot(tree: SnapshotTree, ref: string): { volume: VolumeInfo } | { snapshot: SnapshotInfo } {
  const volume = attempt(() => resolveVolume(tree, ref));
  const snapshot = attempt(() => resolveSnapshot(tree, ref));
  if (volume !== undefined && snapshot !== undefined) {
    throw new DrkitError('INVALID_ARGUMENT', `'${ref}' names volume ${volume.id} and snapshot ${snapshot.id}: use an id`, { data: { ids: [volume.id, snapshot.id] } });
  }
  if (volume !== undefined) return { volume };
  if (snapshot !== undefined) return { snapshot };
  throw new DrkitError('NOT_FOUND', `no volume or snapshot is named '${ref}'`, { data: { name: ref } });
}

/** `fn()`, or undefined when it fails with NOT_FOUND. */
function attempt<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (isDrkitError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
}
