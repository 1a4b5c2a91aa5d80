/**
 * restoreDomain: reverts a protection domain (or chosen entities of it) IN PLACE to a
 * restore point, pulling from a remote site whatever members are no longer held here.
 *
 * Promises:
 * - Bad input changes nothing: entities, restore point, remote and every volume's
 *   geometry are checked before anything is pulled or restored (geometry of a pulled
 *   member is checked after its pull, still before any volume is touched).
 * - A pull moves only what this site lacks (the replication protocol's dedup); a pulled
 *   snapshot stays here as an ordinary snapshot, so a rerun reuses it.
 * - Each volume's restore is one atomic metadata commit (O(1), no data copied). The
 *   volumes of a point are restored one after another and the signal is not consulted
 *   between them, so an abort never leaves a consistency group half-restored; a storage
 *   failure between them can, and the error names what was and was not restored. The
 *   operation is idempotent: rerun it.
 * - What was restored is read back through the tree and its SHA-256 compared with the
 *   snapshot's, then `tree.verify()` runs; any disagreement rejects with CORRUPTION.
 * Writers of the restored volumes should be stopped for the duration: writes made
 * during the restore are discarded or make verification fail.
 */
import { DrkitError, isDrkitError, throwIfAborted } from '../core/errors.js';
import type { RemoteSite, Site } from '../replication/index.js';
import type { EntityRef } from './entity-ref.js';
import type { RecoveryResolvers, RestorePoint } from './list-restore-points.js';
import type { ProtectionDomain } from './protection-domain.js';
import { acquireSnapshots, checkGeometry, checkRecoveryResolvers, selectTargets, verifyRecovery, type RecoveryReport } from './internal/recovery-targets.js';
import { materializeLwsPoint } from './internal/lws-recovery.js';

export type { RecoveredEntity, RecoveredVolume, RecoveryReport } from './internal/recovery-targets.js';

/** Options of {@link restoreDomain}. */
export interface RestoreDomainOptions extends RecoveryResolvers {
  /** The local site holding the domain's volumes. */
  site: Site;
  /** Where to pull members not held here from. Required only when some are missing here. */
  remote?: RemoteSite;
  /** Restore only these entities (each protected by the domain). @defaultValue every entity of the domain */
  entities?: readonly EntityRef[];
  /** Cancels pulls and verification; never interrupts the restore commits themselves. */
  signal?: AbortSignal;
}

/**
 * Restores `domain` (or `options.entities`) in place to `restorePoint`, overwriting the
 * volumes' current contents, and verifies the result.
 * @throws INVALID_ARGUMENT for bad options, an entity the domain does not protect, a
 *   point of another domain, a missing `remote`, or a geometry mismatch (`data.reason:
 *   'geometry'`); NOT_FOUND when a volume is gone or the point (or the remote) holds no
 *   snapshot of a chosen volume; CORRUPTION when the result does not verify; pull codes; ABORTED
 */
export async function restoreDomain(domain: ProtectionDomain, restorePoint: RestorePoint, options: RestoreDomainOptions): Promise<RecoveryReport> {
  const resolvers = checkRecoveryResolvers(domain, options);
  const { site, signal } = options;
  const targets = selectTargets(domain, restorePoint, options.entities, resolvers);
  for (const t of targets) site.tree.getVolume(t.volumeId); // NOT_FOUND before anything moves
  const acquired = restorePoint.kind === 'lws' ? await materializeLwsPoint(site, restorePoint, targets) : await acquireSnapshots(site, targets, options.remote, signal, (held) => checkGeometry(site, held));
  checkGeometry(site, acquired.map((a) => ({ volumeId: a.target.volumeId, snapshot: a.snapshot })));
  throwIfAborted(signal);

  const restored: string[] = [];
  for (const a of acquired) {
    try {
      await site.tree.restore(a.target.volumeId, a.snapshot.id);
    } catch (err) {
      const code = isDrkitError(err) ? err.code : 'INTERNAL';
      throw new DrkitError(code, `restore of domain '${domain.id}' stopped after ${restored.length} of ${acquired.length} volumes; rerun it`, {
        cause: err,
        data: { restorePointId: restorePoint.id, restoredVolumeIds: [...restored], notRestoredVolumeIds: acquired.slice(restored.length).map((x) => x.target.volumeId) },
        ...(isDrkitError(err) ? { transient: err.transient } : {}),
      });
    }
    restored.push(a.target.volumeId);
  }
  return verifyRecovery(site, domain.id, restorePoint.id, acquired.map((a) => ({ ...a, volumeId: a.target.volumeId })), signal);
}
