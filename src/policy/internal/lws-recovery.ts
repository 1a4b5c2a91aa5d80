/**
 * Recovery to an LWS restore point: the site's LWS journal materializes the consistency
 * group at the marker (a clone of the latest full snapshot at or before it plus the
 * records up to the marker, each verified against its checksum), the clones are
 * snapshotted as one group and the staging clones deleted; restore and clone then proceed
 * from those snapshots exactly as from any other restore point (and verify against them).
 *
 * Fault model: a failure before the group snapshot leaves no snapshot (the journal removes
 * its partial clones); a crash after it leaves an ordinary snapshot named
 * `lws-<sessionId>-<seq>`, which a rerun does not reuse (it materializes again).
 */
import { DrkitError } from '../../core/errors.js';
import type { Site } from '../../replication/index.js';
import type { SnapshotInfo } from '../../snapshot/index.js';
import type { RestorePoint } from '../list-restore-points.js';
import type { AcquiredSnapshot, RecoveryTarget } from './recovery-targets.js';

/**
 * Snapshots of the chosen volumes at the LWS point `point`, materialized from `site.lws`.
 * @throws INVALID_ARGUMENT for a point that is not an LWS point or not valid; NOT_FOUND
 *   when the journal no longer holds it; CORRUPTION when a record fails its checksum
 */
export async function materializeLwsPoint(site: Site, point: RestorePoint, targets: readonly RecoveryTarget[]): Promise<AcquiredSnapshot[]> {
  const lws = point.lws;
  if (point.kind !== 'lws' || lws === undefined) throw new DrkitError('INVALID_ARGUMENT', `restore point ${point.id} is not an LWS point`, { data: { restorePointId: point.id } });
  const staging = `.drkit-staging/lws-restore-${lws.sessionId}-${lws.markerSeq}-${site.tree.listVolumes().length}/`;
  const clone = await site.lws.clone(lws.sourceSiteId, lws.sessionId, lws.markerSeq, staging);
  const sourceIds = [...clone.volumes.keys()];
  let snaps: SnapshotInfo[];
  try {
    const ids = sourceIds.map((v) => clone.volumes.get(v)!.id);
    const options = { name: `lws-${lws.sessionId}-${lws.markerSeq}`, userMetadata: { 'drkit.lws.session': lws.sessionId, 'drkit.lws.source': lws.sourceSiteId, 'drkit.lws.seq': String(lws.markerSeq) } };
    snaps = ids.length === 1 ? [await site.tree.snapshot(ids[0]!, options)] : await site.tree.snapshotGroup(ids, options);
  } finally {
    for (const v of clone.volumes.values()) await v.close().catch(() => undefined);
  }
  for (const v of clone.volumes.values()) await site.tree.deleteVolume(v.id);
  const bySource = new Map(sourceIds.map((v, i) => [v, snaps[i]!]));
  return targets.map((target) => {
    const snapshot = bySource.get(target.volumeId);
    if (snapshot === undefined) throw new DrkitError('NOT_FOUND', `LWS point ${point.id} holds no volume ${target.volumeId}`, { data: { restorePointId: point.id, volumeId: target.volumeId } });
    return { target, snapshot, pulled: false };
  });
}
