/**
 * cloneDomain: new volumes, named `${namePrefix}${originalName}`, with the contents of a
 * restore point of a protection domain (seed: "clone ... with a name prefix; the
 * original entities are untouched"). Members no longer held here are pulled first.
 *
 * Promises: the domain's own volumes are never written. Names are checked for clashes
 * before anything is pulled or created. Clones are O(1) each; if one fails, the clones
 * this call created are deleted again. The clones are then read back and their SHA-256
 * compared with their snapshots', and `tree.verify()` runs; if that disagrees the call
 * rejects with CORRUPTION and leaves the clones for inspection (their ids are in
 * `data.report`).
 */
import { DrkitError, isDrkitError, throwIfAborted } from '../core/errors.js';
import type { RemoteSite, Site } from '../replication/index.js';
import type { EntityRef } from './entity-ref.js';
import type { RecoveryResolvers, RestorePoint } from './list-restore-points.js';
import type { ProtectionDomain } from './protection-domain.js';
import { acquireSnapshots, checkRecoveryResolvers, selectTargets, verifyRecovery, type RecoveryReport } from './internal/recovery-targets.js';
import { materializeLwsPoint } from './internal/lws-recovery.js';

/** Longest name prefix: 128 characters — volume names are labels (the tree caps them at 256). */
export const MAX_CLONE_PREFIX_CHARS = 128;

/** Options of {@link cloneDomain}. */
export interface CloneDomainOptions extends RecoveryResolvers {
  /** The local site the clones are created in. */
  site: Site;
  /** Where to pull members not held here from. Required only when some are missing here. */
  remote?: RemoteSite;
  /** Prefix of every clone's name (1-128 characters). */
  namePrefix: string;
  /** Clone only these entities (each protected by the domain). @defaultValue every entity of the domain */
  entities?: readonly EntityRef[];
  signal?: AbortSignal;
}

/**
 * Clones `restorePoint` of `domain` (or of `options.entities`) into new volumes named
 * `${namePrefix}${originalName}` (the original volume's name here, or its id when the
 * original no longer exists), and verifies them. `RecoveredVolume.volumeId` is the clone.
 * @throws INVALID_ARGUMENT for bad options, an entity the domain does not protect, a
 *   point of another domain or a missing `remote`; ALREADY_EXISTS when a clone's name is
 *   taken; NOT_FOUND when the point (or the remote) holds no snapshot of a chosen volume;
 *   CORRUPTION when the result does not verify; pull codes; ABORTED
 */
export async function cloneDomain(domain: ProtectionDomain, restorePoint: RestorePoint, options: CloneDomainOptions): Promise<RecoveryReport> {
  const resolvers = checkRecoveryResolvers(domain, options);
  const { site, signal, namePrefix } = options;
  if (typeof namePrefix !== 'string' || namePrefix.length === 0 || namePrefix.length > MAX_CLONE_PREFIX_CHARS) {
    throw new DrkitError('INVALID_ARGUMENT', `namePrefix must be a string of 1-${MAX_CLONE_PREFIX_CHARS} characters`, { data: { field: 'namePrefix' } });
  }
  const targets = selectTargets(domain, restorePoint, options.entities, resolvers);
  const existing = new Map(site.tree.listVolumes().map((v) => [v.id, v.name]));
  const taken = new Set(existing.values());
  const names = targets.map((t) => `${namePrefix}${existing.get(t.volumeId) ?? t.volumeId}`);
  for (const [i, name] of names.entries()) {
    if (taken.has(name)) throw new DrkitError('ALREADY_EXISTS', `a volume named '${name}' already exists`, { data: { name, volumeId: targets[i]!.volumeId } });
    taken.add(name);
  }
  const acquired = restorePoint.kind === 'lws' ? await materializeLwsPoint(site, restorePoint, targets) : await acquireSnapshots(site, targets, options.remote, signal);
  throwIfAborted(signal);

  const created: string[] = [];
  try {
    for (const [i, a] of acquired.entries()) {
      const volume = await site.tree.clone(a.snapshot.id, { name: names[i]! });
      created.push(volume.id);
      await volume.close();
    }
  } catch (err) {
    // All or nothing: remove what this call created (best effort; the original error wins).
    for (const id of created) await site.tree.deleteVolume(id).catch(() => undefined);
    const code = isDrkitError(err) ? err.code : 'INTERNAL';
    throw new DrkitError(code, `clone of domain '${domain.id}' failed; its partial clones were removed`, {
      cause: err,
      data: { restorePointId: restorePoint.id },
      ...(isDrkitError(err) ? { transient: err.transient } : {}),
    });
  }
  return verifyRecovery(site, domain.id, restorePoint.id, acquired.map((a, i) => ({ ...a, volumeId: created[i]! })), signal);
}
