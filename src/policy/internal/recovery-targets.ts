/**
 * The shared steps of restoring and cloning a protection domain: validate the request,
 * choose the volumes to recover and their restore-point members, bring every member's
 * snapshot here (pulling from a remote site only what is missing), and verify the result.
 * Everything that can be checked is checked before anything is pulled or changed, so bad
 * input changes nothing.
 */
import { DrkitError, throwIfAborted } from '../../core/errors.js';
import { originKey, originOf, type RemoteSite, type Site } from '../../replication/index.js';
import type { SnapshotInfo, VerifyProblem } from '../../snapshot/index.js';
import { checkEntityRef, entityKey, type EntityRef } from '../entity-ref.js';
import type { ProtectionDomain } from '../protection-domain.js';
import { snapshotUnits } from '../protection-domain.js';
import type { RecoveryResolvers, RestorePoint, RestorePointMember } from '../list-restore-points.js';
import { deviceDigest } from './device-digest.js';
import { defaultVolumesOf, resolveUnits, type UnitResolvers } from './resolve-units.js';
import type { SnapshotUnit } from './domain-runtime.js';

/** One volume to recover and the member it is recovered from. */
export interface RecoveryTarget {
  readonly entity: EntityRef;
  readonly volumeId: string;
  readonly member: RestorePointMember;
}

/** One recovered volume, verified. */
export interface RecoveredVolume {
  /** The volume written: the original (restore) or the new clone. */
  readonly volumeId: string;
  /** The volume of the domain it stands for. */
  readonly sourceVolumeId: string;
  /** The local snapshot it was recovered from. */
  readonly snapshotId: string;
  /** True when that snapshot was pulled from a remote site by this call. */
  readonly pulled: boolean;
  readonly byteLength: number;
  /** Hex SHA-256 of the snapshot's bytes. */
  readonly snapshotDigest: string;
  /** Hex SHA-256 of the recovered volume's bytes, read back through the tree. */
  readonly volumeDigest: string;
  /** The two digests are equal. */
  readonly verified: boolean;
}

/** What was recovered for one entity. */
export interface RecoveredEntity {
  readonly entity: EntityRef;
  readonly volumes: readonly RecoveredVolume[];
  /** Every volume verified. */
  readonly verified: boolean;
}

/** Result of a restore or clone of a domain. */
export interface RecoveryReport {
  readonly domainId: string;
  readonly restorePointId: string;
  /** Local ids of the snapshots pulled from the remote site. */
  readonly pulledSnapshotIds: readonly string[];
  readonly entities: readonly RecoveredEntity[];
  /** Problems `tree.verify()` found after the recovery (none when `ok`). */
  readonly treeProblems: readonly VerifyProblem[];
  /** Every entity verified and the tree verified clean. */
  readonly ok: boolean;
}

/** Validates the domain, the site and the resolvers. @throws INVALID_ARGUMENT */
export function checkRecoveryResolvers(domain: ProtectionDomain, options: RecoveryResolvers & { site: Site; signal?: AbortSignal }): UnitResolvers {
  if (typeof domain !== 'object' || domain === null || domain.kind !== 'protection-domain') {
    throw new DrkitError('INVALID_ARGUMENT', 'domain must be a ProtectionDomain (createProtectionDomain)', { data: { field: 'domain' } });
  }
  if (typeof options !== 'object' || options === null) throw new DrkitError('INVALID_ARGUMENT', 'options must be an object', { data: { field: 'options' } });
  if (typeof options.site !== 'object' || options.site === null || typeof options.site.siteId !== 'string') {
    throw new DrkitError('INVALID_ARGUMENT', 'options.site must be a Site', { data: { field: 'site' } });
  }
  for (const f of ['volumesOf', 'containerVolumes'] as const) {
    if (options[f] !== undefined && typeof options[f] !== 'function') throw new DrkitError('INVALID_ARGUMENT', `options.${f} must be a function`, { data: { field: f } });
  }
  throwIfAborted(options.signal);
  return { volumesOf: options.volumesOf ?? defaultVolumesOf, containerVolumes: options.containerVolumes };
}

/** The domain's atomic units with their volumes. */
export function domainUnits(domain: ProtectionDomain, resolvers: UnitResolvers): SnapshotUnit[] {
  return resolveUnits(domain, resolvers);
}

/**
 * The volumes to recover: those of `entities` (each must be protected by the domain), or
 * of every entity of the domain, each with its member of `point`.
 * @throws INVALID_ARGUMENT for a malformed point or entity, or one the domain does not
 *   protect; NOT_FOUND when the point holds no snapshot of a chosen volume
 */
export function selectTargets(domain: ProtectionDomain, point: RestorePoint, entities: readonly EntityRef[] | undefined, resolvers: UnitResolvers): RecoveryTarget[] {
  if (typeof point !== 'object' || point === null || typeof point.id !== 'string' || !Array.isArray(point.members)) {
    throw new DrkitError('INVALID_ARGUMENT', 'restorePoint must be a RestorePoint (listRestorePoints)', { data: { field: 'restorePoint' } });
  }
  if (point.domainId !== domain.id) {
    throw new DrkitError('INVALID_ARGUMENT', `restore point ${point.id} belongs to domain '${point.domainId}', not '${domain.id}'`, { data: { field: 'restorePoint', domainId: domain.id, pointDomainId: point.domainId } });
  }
  const protectedEntities = domainEntities(domain, resolvers);
  const byKey = new Map(protectedEntities.map((e) => [entityKey(e), e]));
  let chosen: EntityRef[];
  if (entities === undefined) {
    chosen = protectedEntities;
  } else {
    if (!Array.isArray(entities) || entities.length === 0) throw new DrkitError('INVALID_ARGUMENT', 'entities must be a non-empty array', { data: { field: 'entities' } });
    chosen = entities.map((e, i) => {
      const ref = checkEntityRef(e, `entities[${i}]`);
      if (!byKey.has(entityKey(ref))) {
        throw new DrkitError('INVALID_ARGUMENT', `entity ${entityKey(ref)} is not protected by domain '${domain.id}'`, { data: { field: `entities[${i}]`, entity: entityKey(ref), domainId: domain.id } });
      }
      return ref;
    });
  }
  const targets: RecoveryTarget[] = [];
  const seen = new Set<string>();
  for (const entity of chosen) {
    for (const volumeId of resolvers.volumesOf(entity, domain)) {
      if (seen.has(volumeId)) continue;
      seen.add(volumeId);
      const member = point.members.find((m) => m.volumeId === volumeId);
      if (member === undefined) {
        throw new DrkitError('NOT_FOUND', `restore point ${point.id} holds no snapshot of volume ${volumeId} (entity ${entityKey(entity)})`, {
          data: { restorePointId: point.id, volumeId, entity: entityKey(entity) },
        });
      }
      targets.push({ entity, volumeId, member });
    }
  }
  return targets;
}

/** Every entity of the domain: its consistency groups' and listed entities, plus a container's volumes. */
function domainEntities(domain: ProtectionDomain, resolvers: UnitResolvers): EntityRef[] {
  const out: EntityRef[] = snapshotUnits(domain).flatMap((u) => [...u.entities]);
  if (domain.protects.kind === 'container') {
    const known = new Set(out.flatMap((e) => resolvers.volumesOf(e, domain)));
    for (const u of resolveUnits(domain, resolvers)) {
      if (u.groupId === undefined) for (const v of u.volumeIds) if (!known.has(v)) out.push({ kind: 'volume', id: v });
    }
  }
  return out;
}

/** A member's snapshot here, and whether it had to be pulled. */
export interface AcquiredSnapshot {
  readonly target: RecoveryTarget;
  readonly snapshot: SnapshotInfo;
  readonly pulled: boolean;
}

/**
 * Finds every target's snapshot here (by id, or by origin when an earlier call already
 * pulled it) and pulls the missing ones from `remote`. Checks first that every missing
 * member is held by `remote`, and runs `beforePull` on the members held here, so nothing
 * is pulled for a request that cannot complete.
 * @throws INVALID_ARGUMENT when members are missing and no remote is given; NOT_FOUND
 *   when `remote` does not hold a missing member; the pull's codes; ABORTED
 */
export async function acquireSnapshots(
  site: Site,
  targets: readonly RecoveryTarget[],
  remote: RemoteSite | undefined,
  signal: AbortSignal | undefined,
  beforePull: (held: readonly { volumeId: string; snapshot: SnapshotInfo }[]) => void = () => undefined,
): Promise<AcquiredSnapshot[]> {
  const byOrigin = new Map<string, SnapshotInfo>();
  for (const s of site.listSnapshots()) byOrigin.set(originKey(originOf(s, site.siteId)), s);
  const found = targets.map((t) => byOrigin.get(t.member.originKey));
  beforePull(targets.flatMap((t, i) => (found[i] === undefined ? [] : [{ volumeId: t.volumeId, snapshot: found[i]! }])));
  const missing = targets.filter((_, i) => found[i] === undefined);
  if (missing.length > 0) {
    const data = { volumeIds: missing.map((t) => t.volumeId), originKeys: missing.map((t) => t.member.originKey) };
    if (remote === undefined) throw new DrkitError('INVALID_ARGUMENT', `${missing.length} member(s) of the restore point are not held here: pass the remote site that holds them`, { data: { field: 'remote', ...data } });
    if (typeof remote !== 'object' || remote === null || typeof remote.siteId !== 'string') throw new DrkitError('INVALID_ARGUMENT', 'remote must be a RemoteSite', { data: { field: 'remote' } });
    const unheld = missing.filter((t) => t.member.remoteSnapshotIds[remote.siteId] === undefined);
    if (unheld.length > 0) {
      throw new DrkitError('NOT_FOUND', `remote site '${remote.siteId}' does not hold member(s) of the restore point that are missing here`, {
        data: { siteId: remote.siteId, volumeIds: unheld.map((t) => t.volumeId), originKeys: unheld.map((t) => t.member.originKey) },
      });
    }
  }
  const out: AcquiredSnapshot[] = [];
  for (const [i, target] of targets.entries()) {
    throwIfAborted(signal);
    const local = found[i];
    if (local !== undefined) {
      out.push({ target, snapshot: local, pulled: false });
      continue;
    }
    // Checked above: missing members imply a remote that holds them.
    const snapshot = await site.pull(remote!, target.member.remoteSnapshotIds[remote!.siteId]!, signal === undefined ? {} : { signal });
    out.push({ target, snapshot, pulled: true });
  }
  return out;
}

/** @throws INVALID_ARGUMENT (with `data.reason: 'geometry'`) when a snapshot cannot be restored onto its volume */
export function checkGeometry(site: Site, acquired: readonly { volumeId: string; snapshot: Pick<SnapshotInfo, 'id' | 'byteLength' | 'blockBytes'> }[]): void {
  for (const a of acquired) {
    const v = site.tree.getVolume(a.volumeId);
    if (v.byteLength !== a.snapshot.byteLength || v.blockBytes !== a.snapshot.blockBytes) {
      throw new DrkitError('INVALID_ARGUMENT', `snapshot ${a.snapshot.id} (${a.snapshot.byteLength} bytes, ${a.snapshot.blockBytes}-byte blocks) does not fit volume ${a.volumeId} (${v.byteLength} bytes, ${v.blockBytes}-byte blocks)`, {
        data: { reason: 'geometry', volumeId: a.volumeId, snapshotId: a.snapshot.id, volumeByteLength: v.byteLength, snapshotByteLength: a.snapshot.byteLength, volumeBlockBytes: v.blockBytes, snapshotBlockBytes: a.snapshot.blockBytes },
      });
    }
  }
}

/**
 * Reads every recovered volume and its source snapshot back through the tree, compares
 * their SHA-256 digests, then runs `tree.verify()`. Throws when anything disagrees.
 * @throws CORRUPTION (with `data.report`) when a digest differs or the tree has problems; read codes; ABORTED
 */
export async function verifyRecovery(site: Site, domainId: string, restorePointId: string, recovered: readonly { target: RecoveryTarget; volumeId: string; snapshot: SnapshotInfo; pulled: boolean }[], signal: AbortSignal | undefined): Promise<RecoveryReport> {
  const tree = site.tree;
  const volumes: { entity: EntityRef; volume: RecoveredVolume }[] = [];
  for (const r of recovered) {
    const reader = tree.openSnapshot(r.snapshot.id);
    let snapshotDigest: string;
    try {
      snapshotDigest = await deviceDigest(reader, signal);
    } finally {
      await reader.close();
    }
    const volume = await tree.openVolume(r.volumeId);
    let volumeDigest: string;
    try {
      volumeDigest = await deviceDigest(volume, signal);
    } finally {
      await volume.close();
    }
    volumes.push({
      entity: r.target.entity,
      volume: Object.freeze({ volumeId: r.volumeId, sourceVolumeId: r.target.volumeId, snapshotId: r.snapshot.id, pulled: r.pulled, byteLength: r.snapshot.byteLength, snapshotDigest, volumeDigest, verified: snapshotDigest === volumeDigest }),
    });
  }
  const treeReport = await tree.verify();
  const entities = new Map<string, { entity: EntityRef; volumes: RecoveredVolume[] }>();
  for (const v of volumes) {
    const key = entityKey(v.entity);
    let e = entities.get(key);
    if (e === undefined) entities.set(key, (e = { entity: v.entity, volumes: [] }));
    e.volumes.push(v.volume);
  }
  const entityReports = [...entities.values()].map((e) => Object.freeze({ entity: e.entity, volumes: Object.freeze(e.volumes), verified: e.volumes.every((v) => v.verified) }));
  const report: RecoveryReport = Object.freeze({
    domainId, restorePointId,
    pulledSnapshotIds: Object.freeze(recovered.filter((r) => r.pulled).map((r) => r.snapshot.id)),
    entities: Object.freeze(entityReports), treeProblems: treeReport.problems,
    ok: treeReport.ok && entityReports.every((e) => e.verified),
  });
  if (!report.ok) {
    throw new DrkitError('CORRUPTION', `recovery of domain '${domainId}' to ${restorePointId} did not verify`, {
      data: { report, unverifiedVolumeIds: volumes.filter((v) => !v.volume.verified).map((v) => v.volume.volumeId), treeProblemCodes: treeReport.problems.map((p) => p.code) },
    });
  }
  return report;
}
