/**
 * listRestorePoints: the points a protection domain can be restored or cloned to.
 *
 * A LOCAL point is one fire of the Protector (a schedule instant, or an ad-hoc
 * `snapshotNow`): every snapshot stamped with the domain's id and the same schedule and
 * fire instant, one per volume, grouped exactly as the engine recorded them in the
 * `protector.*` user metadata. Each consistency group inside it was committed atomically.
 *
 * A REMOTE-ONLY point is held at a remote site but no longer here. A remote site lists
 * only origin identity and creation time (not user metadata), so such points are grouped
 * by creation time: the members of one consistency-group commit share it exactly. Units
 * of one fire taken at different instants appear as separate remote points; their
 * consistency is `unknown` until pulled.
 *
 * An LWS point is a valid light-weight snapshot of the domain's NearSync session held in
 * this site's LWS journal (`site.lws`, so: listed at the NearSync target), kind `lws`,
 * crash-consistent across its consistency group; restore and clone materialize it from the
 * latest full snapshot at or before it plus the records up to its marker.
 */
import { DrkitError, throwIfAborted } from '../core/errors.js';
import { originKey, originOf, volumeKeyOf, type RemoteSite, type Site } from '../replication/index.js';
import type { SnapshotInfo } from '../snapshot/index.js';
import type { EntityRef } from './entity-ref.js';
import type { ProtectionDomain } from './protection-domain.js';
import { META_DOMAIN, META_FIRE, META_SCHEDULE, META_UNIT } from './internal/domain-runtime.js';
import { checkRecoveryResolvers, domainUnits } from './internal/recovery-targets.js';
import { nearSyncSessionId } from './internal/nearsync-session-id.js';

/** One volume's snapshot within a restore point. */
export interface RestorePointMember {
  /** The Protector's unit (`cg:<groupId>` or `<kind>:<id>`) the volume belongs to. */
  readonly unitKey: string;
  /** The local volume the member was taken of (its origin volume here). */
  readonly volumeId: string;
  /** Its id here, when held here. */
  readonly localSnapshotId: string | undefined;
  /** Its origin identity (`<siteId>/<snapshotId>`), the same at every site; for an LWS point `lws:<sourceSiteId>/<sessionId>@<markerSeq>`. */
  readonly originKey: string;
  /** Its id at each remote site that holds it, by site id. */
  readonly remoteSnapshotIds: Readonly<Record<string, string>>;
  readonly createdMs: number;
}

/** Consistency of a restore point: the weakest of its members; `unknown` for a remote-only point (sites do not list it). */
export type RestorePointConsistency = 'crash' | 'application' | 'unknown';

/** A point a protection domain can be restored or cloned to. */
export interface RestorePoint {
  /** `local:<scheduleId|ad-hoc>@<fireMs>` (`#<n>` for the n-th fire of one instant), `remote@<createdMs>` or `lws:<sourceSiteId>@<markerSeq>`; stable while the snapshots (the LWS) exist. */
  readonly id: string;
  /** `full`: snapshots; `lws`: a light-weight snapshot in this site's LWS journal (NearSync). */
  readonly kind: 'full' | 'lws';
  /** For an LWS point: its session and marker sequence number in the source's write log. */
  readonly lws: { readonly sourceSiteId: string; readonly sessionId: string; readonly markerSeq: number } | undefined;
  readonly domainId: string;
  /** The earliest creation time among its members (an LWS point: when the source took it). */
  readonly createdMs: number;
  /** The Protector's fire instant (local points). */
  readonly fireMs: number | undefined;
  /** The schedule that took it; undefined for ad-hoc and remote-only points. */
  readonly scheduleId: string | undefined;
  readonly consistency: RestorePointConsistency;
  /** True when every member is held at this site (an LWS point: always). */
  readonly heldLocally: boolean;
  /** Remote sites (of those asked) that hold every member, in the order asked. */
  readonly remoteSiteIds: readonly string[];
  /** True when it holds a member for every volume of every unit of the domain. */
  readonly complete: boolean;
  /** One per volume, in volume id order. */
  readonly members: readonly RestorePointMember[];
}

/** How a domain's entities map to local volumes (the same resolvers the Protector was given). */
export interface RecoveryResolvers {
  /** Volume ids of an entity. @defaultValue a volume entity's id is the volume id; other kinds fail NOT_SUPPORTED */
  volumesOf?: (entity: EntityRef, domain: ProtectionDomain) => readonly string[];
  /** Volume ids in a container (whole-container domains). @defaultValue none: such domains fail NOT_SUPPORTED */
  containerVolumes?: (containerId: string, domain: ProtectionDomain) => readonly string[];
}

/** Options of {@link listRestorePoints}. */
export interface ListRestorePointsOptions extends RecoveryResolvers {
  /** The local site (its tree holds the domain's volumes). */
  site: Site;
  /** Remote sites to ask for what they hold. @defaultValue [] */
  remotes?: readonly RemoteSite[];
  signal?: AbortSignal;
}

/**
 * The restore points of `domain`, oldest first: local Protector fires, points held
 * only at the given remote sites (asked with `site.listRemote`, one call per volume and
 * site), and the valid LWS of the domain's NearSync sessions held here. A remote site that cannot be reached fails the call with its transport code.
 * @throws INVALID_ARGUMENT for bad options; NOT_SUPPORTED for a container domain without
 *   `containerVolumes`; transport codes from remote sites; ABORTED
 */
export async function listRestorePoints(domain: ProtectionDomain, options: ListRestorePointsOptions): Promise<RestorePoint[]> {
  const resolvers = checkRecoveryResolvers(domain, options);
  const remotes = options.remotes ?? [];
  if (!Array.isArray(remotes)) throw new DrkitError('INVALID_ARGUMENT', 'remotes must be an array of RemoteSite', { data: { field: 'remotes' } });
  const site = options.site;
  const units = domainUnits(domain, resolvers);
  const unitOfVolume = new Map(units.flatMap((u) => u.volumeIds.map((v) => [v, u.unitKey] as const)));

  // Local points: the Protector's fires, by schedule and fire instant.
  const local = new Map<string, { scheduleId: string | undefined; fireMs: number; members: Map<string, SnapshotInfo> }>();
  const localOrigins = new Set<string>();
  for (const s of site.listSnapshots()) {
    const origin = originOf(s, site.siteId);
    localOrigins.add(originKey(origin));
    const m = s.userMetadata;
    if (m[META_DOMAIN] !== domain.id || m[META_FIRE] === undefined || m[META_UNIT] === undefined) continue;
    const fireMs = Number(m[META_FIRE]);
    if (!Number.isSafeInteger(fireMs)) continue;
    const volumeId = origin.siteId === site.siteId ? origin.volumeId : s.volumeId;
    const originId = originKey(origin);
    // Two ad-hoc fires in one millisecond share an instant: a volume already in a point
    // starts the next point of that instant (snapshots are listed in creation order).
    const base = `local:${m[META_SCHEDULE] ?? 'ad-hoc'}@${fireMs}`;
    for (let n = 1; ; n++) {
      const key = n === 1 ? base : `${base}#${n}`;
      let point = local.get(key);
      if (point === undefined) local.set(key, (point = { scheduleId: m[META_SCHEDULE], fireMs, members: new Map() }));
      const there = point.members.get(volumeId);
      if (there !== undefined && originKey(originOf(there, site.siteId)) === originId) break; // a second copy of the same snapshot adds nothing
      if (there === undefined) {
        point.members.set(volumeId, s);
        break;
      }
    }
  }

  // What each remote holds of every volume lineage of the domain.
  const volumeIds = new Set<string>([...unitOfVolume.keys()]);
  for (const p of local.values()) for (const v of p.members.keys()) volumeIds.add(v);
  const held = new Map<string, Map<string, string>>(); // originKey -> siteId -> remote snapshot id
  const remoteOnly = new Map<string, Map<string, { originKey: string; createdMs: number; remoteIds: Map<string, string> }>>(); // point id -> volume -> member
  for (const remote of remotes) {
    for (const volumeId of [...volumeIds].sort()) {
      throwIfAborted(options.signal);
      const volumeKey = volumeKeyOf({ siteId: site.siteId, snapshotId: '', volumeId });
      const list = await site.listRemote(remote, volumeKey, options.signal === undefined ? {} : { signal: options.signal });
      for (const h of list) {
        const key = `${h.originSiteId}/${h.originSnapshotId}`;
        let sites = held.get(key);
        if (sites === undefined) held.set(key, (sites = new Map()));
        sites.set(remote.siteId, h.snapshotId);
        if (localOrigins.has(key)) continue;
        const pointId = `remote@${h.createdMs}`;
        let byVolume = remoteOnly.get(pointId);
        if (byVolume === undefined) remoteOnly.set(pointId, (byVolume = new Map()));
        const existing = byVolume.get(volumeId);
        if (existing === undefined) byVolume.set(volumeId, { originKey: key, createdMs: h.createdMs, remoteIds: new Map([[remote.siteId, h.snapshotId]]) });
        else if (existing.originKey === key) existing.remoteIds.set(remote.siteId, h.snapshotId);
      }
    }
  }

  const isComplete = (volumes: Iterable<string>) => {
    const have = new Set(volumes);
    return units.length > 0 && units.every((u) => u.volumeIds.every((v) => have.has(v)));
  };
  const holders = (members: readonly RestorePointMember[]) => remotes.map((r) => r.siteId).filter((id) => members.every((m) => m.remoteSnapshotIds[id] !== undefined));
  const out: RestorePoint[] = [];
  for (const [id, p] of local) {
    const members = [...p.members.entries()].sort(([a], [b]) => compareIds(a, b)).map(([volumeId, s]): RestorePointMember => {
      const key = originKey(originOf(s, site.siteId));
      return {
        unitKey: s.userMetadata[META_UNIT] ?? unitOfVolume.get(volumeId) ?? `volume:${volumeId}`,
        volumeId, localSnapshotId: s.id, originKey: key, remoteSnapshotIds: Object.freeze(Object.fromEntries(held.get(key) ?? [])), createdMs: s.createdMs,
      };
    });
    const infos = [...p.members.values()];
    out.push(freezePoint({
      id, kind: 'full', lws: undefined, domainId: domain.id, createdMs: Math.min(...infos.map((s) => s.createdMs)), fireMs: p.fireMs, scheduleId: p.scheduleId,
      consistency: infos.every((s) => s.consistency === 'application') ? 'application' : 'crash',
      heldLocally: true, remoteSiteIds: holders(members), complete: isComplete(p.members.keys()), members,
    }));
  }
  for (const [id, byVolume] of remoteOnly) {
    const members = [...byVolume.entries()].sort(([a], [b]) => compareIds(a, b)).map(([volumeId, m]): RestorePointMember => ({
      unitKey: unitOfVolume.get(volumeId) ?? `volume:${volumeId}`, volumeId, localSnapshotId: undefined, originKey: m.originKey,
      remoteSnapshotIds: Object.freeze(Object.fromEntries(m.remoteIds)), createdMs: m.createdMs,
    }));
    out.push(freezePoint({
      id, kind: 'full', lws: undefined, domainId: domain.id, createdMs: members[0]!.createdMs, fireMs: undefined, scheduleId: undefined, consistency: 'unknown',
      heldLocally: false, remoteSiteIds: holders(members), complete: isComplete(byVolume.keys()), members,
    }));
  }
  // LWS points: the domain's NearSync session(s) in this site's journal, from any source site.
  for (const p of await site.lws.points({ sessionId: nearSyncSessionId(domain.id) })) {
    if (!p.valid) continue;
    const key = `lws:${p.sourceSiteId}/${p.sessionId}@${p.seq}`;
    const members = [...p.volumeIds].sort(compareIds).map((volumeId): RestorePointMember => ({
      unitKey: unitOfVolume.get(volumeId) ?? `volume:${volumeId}`, volumeId, localSnapshotId: undefined, originKey: key, remoteSnapshotIds: Object.freeze({}), createdMs: p.timeMs,
    }));
    out.push(freezePoint({
      id: `lws:${p.sourceSiteId}@${p.seq}`, kind: 'lws', lws: Object.freeze({ sourceSiteId: p.sourceSiteId, sessionId: p.sessionId, markerSeq: p.seq }), domainId: domain.id,
      createdMs: p.timeMs, fireMs: undefined, scheduleId: undefined, consistency: 'crash', heldLocally: true, remoteSiteIds: [], complete: isComplete(p.volumeIds), members,
    }));
  }
  return out.sort((a, b) => a.createdMs - b.createdMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Orders ids like `vol-2` before `vol-10`. */
function compareIds(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

function freezePoint(p: RestorePoint): RestorePoint {
  return Object.freeze({ ...p, remoteSiteIds: Object.freeze([...p.remoteSiteIds]), members: Object.freeze(p.members.map((m) => Object.freeze(m))) });
}
