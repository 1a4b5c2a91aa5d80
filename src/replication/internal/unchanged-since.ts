/**
 * Whether a volume was written after one of its snapshots: the check both a migration's
 * source (before it demotes) and a remote demotion's target (before it gives a promoted
 * lineage back) make, so writes after the hand-over point are never silently dropped.
 */
import type { SnapshotTree } from '../../snapshot/index.js';
import { GENERATION_KEY, LINEAGE_KEY } from '../origin.js';

/** Lineage suffix of the check snapshot: outside the lineage, so no base or failover choice ever picks it. */
const CHECK_SUFFIX = '~migrate-check';

/**
 * True when volume `volumeId` differs from snapshot `snapshotId` (a short-lived check
 * snapshot, stamped outside `lineage`, is taken and deleted: the tree's mutex orders it
 * after every write acknowledged before the call).
 * @throws NOT_FOUND (no such volume or snapshot), and SnapshotTree.snapshot / diff codes
 */
export async function writtenSince(tree: SnapshotTree, volumeId: string, snapshotId: string, lineage: string, generation: number, options: { signal?: AbortSignal } = {}): Promise<boolean> {
  const info = tree.getVolume(volumeId);
  const check = await tree.snapshot(volumeId, {
    name: `${info.name}-migrate-check`,
    userMetadata: { [LINEAGE_KEY]: `${lineage}${CHECK_SUFFIX}`, [GENERATION_KEY]: String(generation) },
  });
  try {
    for await (const _range of tree.diff(snapshotId, check.id, options)) return true;
    return false;
  } finally {
    await tree.deleteSnapshot(check.id);
  }
}
