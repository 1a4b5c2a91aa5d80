/**
 * Maps a protection domain's atomic units (its consistency groups, then each protected
 * entity in no group) to the volume ids of the snapshot tree, through the resolvers the
 * user gave the Protector. Resolved at every fire, so volumes created later are seen.
 */
import { DrkitError } from '../../core/errors.js';
import type { EntityRef } from '../entity-ref.js';
import { entityKey } from '../entity-ref.js';
import type { ProtectionDomain } from '../protection-domain.js';
import { snapshotUnits } from '../protection-domain.js';
import type { SnapshotUnit } from './domain-runtime.js';

/** How entities and containers map to volumes of the local tree. */
export interface UnitResolvers {
  /** Volume ids of an entity (a volume group has several). */
  readonly volumesOf: (entity: EntityRef, domain: ProtectionDomain) => readonly string[];
  /** Volume ids in a container, for a whole-container domain. */
  readonly containerVolumes: ((containerId: string, domain: ProtectionDomain) => readonly string[]) | undefined;
}

/**
 * The units of `domain`, each with its volumes.
 * @throws NOT_SUPPORTED for a container domain without `containerVolumes`; INVALID_ARGUMENT
 *   when a unit resolves to no volume or a volume appears in two units
 */
export function resolveUnits(domain: ProtectionDomain, resolvers: UnitResolvers): SnapshotUnit[] {
  const units: SnapshotUnit[] = [];
  const owner = new Map<string, string>();
  const add = (unitKey: string, groupId: string | undefined, volumeIds: readonly string[], consistency: SnapshotUnit['consistency']) => {
    if (volumeIds.length === 0) throw new DrkitError('INVALID_ARGUMENT', `unit '${unitKey}' of domain '${domain.id}' resolves to no volume`, { data: { domainId: domain.id, unitKey } });
    for (const v of volumeIds) {
      const other = owner.get(v);
      if (other !== undefined) throw new DrkitError('INVALID_ARGUMENT', `volume ${v} is in units '${other}' and '${unitKey}' of domain '${domain.id}'`, { data: { domainId: domain.id, volumeId: v } });
      owner.set(v, unitKey);
    }
    units.push({ unitKey, groupId, volumeIds: [...new Set(volumeIds)], consistency });
  };
  for (const u of snapshotUnits(domain)) {
    const volumeIds = u.entities.flatMap((e) => resolvers.volumesOf(e, domain));
    if (u.groupId !== undefined) {
      const group = domain.consistencyGroups.find((g) => g.id === u.groupId)!;
      add(`cg:${u.groupId}`, u.groupId, volumeIds, group.consistency);
    } else {
      add(entityKey(u.entities[0]!), undefined, volumeIds, 'crash');
    }
  }
  if (domain.protects.kind === 'container') {
    if (resolvers.containerVolumes === undefined) {
      throw new DrkitError('NOT_SUPPORTED', `domain '${domain.id}' protects a container: give the Protector containerVolumes`, { data: { domainId: domain.id } });
    }
    for (const v of resolvers.containerVolumes(domain.protects.containerId, domain)) if (!owner.has(v)) add(entityKey({ kind: 'volume', id: v }), undefined, [v], 'crash');
  }
  return units;
}

/** The default `volumesOf`: a volume entity's id is its volume id; other kinds need a resolver. */
export function defaultVolumesOf(entity: EntityRef): readonly string[] {
  if (entity.kind === 'volume') return [entity.id];
  throw new DrkitError('NOT_SUPPORTED', `entities of kind '${entity.kind}' need a volumesOf resolver`, { data: { entity: entityKey(entity) } });
}
