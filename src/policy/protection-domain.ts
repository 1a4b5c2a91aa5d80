/**
 * ProtectionDomain (PD): a macro group of entities protected together on its own
 * schedules (seed: "Protection Domain"; one PD per service tier and RPO). It protects a
 * whole container or selected entities, holds its consistency groups, its schedules
 * (each with its retention) and the remote sites it replicates to.
 *
 * Seed rule: a remote retention or replication needs a configured remote site — every
 * site a schedule replicates to, or keeps remote retention for, must be one of the PD's
 * `remoteSites`. Across PDs, an entity belongs to at most one: see
 * {@link findMembershipViolations}.
 */
import { createConsistencyGroup, type ConsistencyGroup, type ConsistencyGroupSpec } from './consistency-group.js';
import { checkEntityRef, entityKey, type EntityRef } from './entity-ref.js';
import { deepFreeze, id, invalid, join, kindTag, list, object, oneOf, text, unique } from './internal/fields.js';
import { createMetroRelation, type MetroRelation, type MetroRelationSpec } from './metro-relation.js';
import { createRemoteSite, type RemoteSite, type RemoteSiteSpec } from './remote-site.js';
import { createSchedule, type Schedule, type ScheduleSpec } from './schedule.js';

/** Most schedules per PD: 32 — the seed's use is one or two (hourly local, daily remote). */
export const MAX_SCHEDULES_PER_DOMAIN = 32;

/** Most remote sites per PD: 64 — replication fans out once per site per fire. */
export const MAX_REMOTE_SITES_PER_DOMAIN = 64;

/** What a PD protects: a whole container, or the listed entities. */
export type ProtectedScope =
  | { readonly kind: 'container'; readonly containerId: string }
  | { readonly kind: 'entities'; readonly entities: readonly EntityRef[] };

/** A protection domain. Frozen plain data. */
export interface ProtectionDomain {
  readonly kind: 'protection-domain';
  readonly id: string;
  readonly name: string;
  readonly protects: ProtectedScope;
  /** @defaultValue [] */
  readonly consistencyGroups: readonly ConsistencyGroup[];
  /** @defaultValue [] */
  readonly schedules: readonly Schedule[];
  /** @defaultValue [] */
  readonly remoteSites: readonly RemoteSite[];
  /** The synchronous (Metro) relation to one of `remoteSites`, if any. */
  readonly metro?: MetroRelation;
}

/** Input of {@link createProtectionDomain}. */
export interface ProtectionDomainSpec {
  kind?: 'protection-domain';
  id: string;
  /** @defaultValue the id */
  name?: string;
  protects: { kind: 'container'; containerId: string } | { kind: 'entities'; entities: readonly EntityRef[] };
  consistencyGroups?: readonly ConsistencyGroupSpec[];
  schedules?: readonly ScheduleSpec[];
  remoteSites?: readonly RemoteSiteSpec[];
  metro?: MetroRelationSpec;
}

function checkScope(value: unknown, field: string): ProtectedScope {
  const kind = oneOf(object(value, field, ['kind', 'containerId', 'entities']).kind, join(field, 'kind'), ['container', 'entities'] as const);
  if (kind === 'container') {
    const f = object(value, field, ['kind', 'containerId']);
    return { kind, containerId: id(f.containerId, join(field, 'containerId')) };
  }
  const f = object(value, field, ['kind', 'entities']);
  const entities = list(f.entities, join(field, 'entities'), checkEntityRef);
  if (entities.length === 0) invalid(join(field, 'entities'), 'must list at least one entity');
  unique(entities.map(entityKey), join(field, 'entities'), 'entity');
  return { kind, entities };
}

/**
 * Validates and freezes a protection domain. Checks: ids unique among its groups,
 * schedules and sites; a consistency group's entities are protected by this PD (for a
 * container PD membership of the container cannot be known here and is not checked) and
 * belong to at most one group; every site a schedule replicates to or keeps remote
 * retention for is configured.
 * @throws INVALID_ARGUMENT with `data.field` naming the bad field
 */
export function createProtectionDomain(spec: ProtectionDomainSpec, field = ''): ProtectionDomain {
  const f = object(spec, field, ['kind', 'id', 'name', 'protects', 'consistencyGroups', 'schedules', 'remoteSites', 'metro']);
  kindTag(f, field, 'protection-domain');
  const domainId = id(f.id, join(field, 'id'));
  const protects = checkScope(f.protects, join(field, 'protects'));
  const remoteSites = f.remoteSites === undefined
    ? []
    : list(f.remoteSites, join(field, 'remoteSites'), (s, sf) => createRemoteSite(s as RemoteSiteSpec, sf), MAX_REMOTE_SITES_PER_DOMAIN);
  unique(remoteSites.map((s) => s.id), join(field, 'remoteSites'), 'site id');
  const consistencyGroups = f.consistencyGroups === undefined
    ? []
    : list(f.consistencyGroups, join(field, 'consistencyGroups'), (g, gf) => createConsistencyGroup(g as ConsistencyGroupSpec, gf));
  unique(consistencyGroups.map((g) => g.id), join(field, 'consistencyGroups'), 'group id');
  const schedules = f.schedules === undefined
    ? []
    : list(f.schedules, join(field, 'schedules'), (s, sf) => createSchedule(s as ScheduleSpec, sf), MAX_SCHEDULES_PER_DOMAIN);
  unique(schedules.map((s) => s.id), join(field, 'schedules'), 'schedule id');

  const protectedKeys = protects.kind === 'entities' ? new Set(protects.entities.map(entityKey)) : undefined;
  const groupOf = new Map<string, string>();
  consistencyGroups.forEach((g, gi) => {
    g.entities.forEach((e, ei) => {
      const key = entityKey(e);
      const ef = join(field, `consistencyGroups[${gi}].entities[${ei}]`);
      if (protectedKeys !== undefined && !protectedKeys.has(key)) invalid(ef, `names ${key}, which this protection domain does not protect`, { entity: key });
      const other = groupOf.get(key);
      if (other !== undefined) invalid(ef, `names ${key}, already in consistency group '${other}'`, { entity: key, groupId: other });
      groupOf.set(key, g.id);
    });
  });

  const siteIds = new Set(remoteSites.map((s) => s.id));
  schedules.forEach((s, si) => {
    s.remoteSiteIds.forEach((siteId, i) => {
      if (!siteIds.has(siteId)) {
        invalid(join(field, `schedules[${si}].remoteSiteIds[${i}]`), `replicates to remote site '${siteId}', which is not configured on this protection domain`, { siteId });
      }
    });
    s.retention.remote.forEach((r, i) => {
      if (!siteIds.has(r.siteId)) {
        invalid(join(field, `schedules[${si}].retention.remote[${i}].siteId`), `keeps remote retention at '${r.siteId}', which is not configured on this protection domain`, { siteId: r.siteId });
      }
    });
  });

  const metro = f.metro === undefined ? undefined : createMetroRelation(f.metro as MetroRelationSpec, join(field, 'metro'));
  if (metro !== undefined) {
    const site = remoteSites.find((s) => s.id === metro.siteId);
    if (site === undefined) invalid(join(field, 'metro.siteId'), `is Metro to '${metro.siteId}', which is not configured on this protection domain`, { siteId: metro.siteId });
    if (site.options.storageOnly) invalid(join(field, 'metro.siteId'), `'${metro.siteId}' is storage-only and cannot take over as a Metro peer`, { siteId: metro.siteId });
    schedules.forEach((s, si) => {
      const i = s.remoteSiteIds.indexOf(metro.siteId);
      if (i >= 0) invalid(join(field, `schedules[${si}].remoteSiteIds[${i}]`), `replicates asynchronously to '${metro.siteId}', the Metro site of this protection domain (the mirror holds every write there already)`, { siteId: metro.siteId });
    });
  }

  return deepFreeze({
    kind: 'protection-domain',
    id: domainId,
    name: f.name === undefined ? domainId : text(f.name, join(field, 'name'), true),
    protects,
    consistencyGroups,
    schedules,
    remoteSites,
    ...(metro === undefined ? {} : { metro }),
  });
}

/**
 * The units a PD snapshots atomically: each consistency group, then (for an entity PD)
 * each protected entity in no group as a unit of its own. A container PD's ungrouped
 * entities are found by the engine, which knows the container's contents.
 */
export function snapshotUnits(domain: ProtectionDomain): readonly { readonly groupId: string | undefined; readonly entities: readonly EntityRef[] }[] {
  const units: { groupId: string | undefined; entities: readonly EntityRef[] }[] = domain.consistencyGroups.map((g) => ({ groupId: g.id, entities: g.entities }));
  if (domain.protects.kind === 'entities') {
    const grouped = new Set(domain.consistencyGroups.flatMap((g) => g.entities.map(entityKey)));
    for (const e of domain.protects.entities) if (!grouped.has(entityKey(e))) units.push({ groupId: undefined, entities: [e] });
  }
  return units;
}
