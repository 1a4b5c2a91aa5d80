/**
 * Taking one unit's snapshots for a fire (or an ad-hoc request) and queueing their
 * replication. A fire interrupted by a crash is completed, not repeated: snapshots the
 * engine already took for that fire are found by their metadata and reused.
 */
import { DrkitError, toDrkitError } from '../../core/errors.js';
import type { QuiesceHooks, SnapshotInfo } from '../../snapshot/index.js';
import type { Schedule } from '../schedule.js';
import { AD_HOC, META_DOMAIN, META_FIRE, META_SCHEDULE, META_UNIT, type DomainRuntime, type SnapshotUnit } from './domain-runtime.js';
import type { RetentionHost } from './retention-runner.js';

/**
 * Queued replications per domain and site before the oldest is dropped: 256 — ten days
 * of an hourly schedule during an outage; past that the backlog only grows and the
 * oldest restore points matter least.
 */
export const MAX_PENDING_PER_SITE = 256;

/** What taking a unit needs of the engine. */
export interface TakeHost extends RetentionHost {
  readonly quiesce: ((domainId: string, groupId: string) => QuiesceHooks | undefined) | undefined;
  readonly quiesceTimeoutMs: number;
}

/** Snapshots one unit (unless a crash already did for this fire) and queues it for `siteIds`. */
export async function takeUnit(host: TakeHost, rt: DomainRuntime, schedule: Schedule | undefined, fireMs: number, unit: SnapshotUnit, siteIds: readonly string[], adHoc: boolean): Promise<SnapshotInfo[]> {
  const scheduleKey = schedule?.id ?? AD_HOC;
  const domainId = rt.domain.id;
  let infos = adHoc ? undefined : (rt.live.get(scheduleKey)?.get(unit.unitKey) ?? []).filter((s) => s.userMetadata[META_FIRE] === String(fireMs));
  if (infos === undefined || infos.length === 0) {
    const userMetadata: Record<string, string> = { [META_DOMAIN]: domainId, [META_UNIT]: unit.unitKey, [META_FIRE]: String(fireMs) };
    if (schedule !== undefined) userMetadata[META_SCHEDULE] = schedule.id;
    const quiesce = unit.consistency === 'application' ? (host.quiesce?.(domainId, unit.groupId ?? unit.unitKey) ?? NO_HOOKS) : undefined;
    const name = `protector ${domainId} ${schedule?.id ?? 'ad-hoc'} ${new Date(fireMs).toISOString()}`.slice(0, 256);
    const opts = { name, userMetadata, ...(quiesce === undefined ? {} : { quiesce, quiesceTimeoutMs: host.quiesceTimeoutMs }) };
    try {
      const tree = host.site.tree;
      infos = unit.volumeIds.length === 1 ? [await tree.snapshot(unit.volumeIds[0]!, opts)] : await tree.snapshotGroup(unit.volumeIds, opts);
    } catch (err) {
      host.emit({ kind: 'snapshot-failed', atMs: host.clock.now(), domainId, scheduleId: schedule?.id, fireMs, unitKey: unit.unitKey, error: toDrkitError(err, 'INTERNAL', 'snapshot failed') });
      return [];
    }
    for (const info of infos) rt.addLive(scheduleKey, unit.unitKey, info);
    host.emit({
      kind: 'snapshot-taken', atMs: host.clock.now(), domainId, scheduleId: schedule?.id, fireMs, unitKey: unit.unitKey,
      snapshotIds: infos.map((i) => i.id), consistency: infos[0]!.consistency, fallbackReason: infos[0]!.fallbackReason,
    });
  }
  for (const siteId of siteIds) enqueue(host, rt, siteId, schedule?.id ?? null, unit.unitKey, infos);
  return infos;
}

function enqueue(host: TakeHost, rt: DomainRuntime, siteId: string, scheduleId: string | null, unitKey: string, infos: readonly SnapshotInfo[]): void {
  const key = `${siteId}\u0000${infos.map((i) => i.id).join(',')}`;
  if (rt.state.pending.some((p) => p.key === key)) return;
  const ofSite = rt.state.pending.filter((p) => p.siteId === siteId);
  if (ofSite.length >= MAX_PENDING_PER_SITE) {
    // Drop the oldest that is not being sent right now.
    const victim = ofSite.find((p, i) => !(i === 0 && rt.busySites.has(siteId)));
    if (victim !== undefined) {
      rt.state.pending.splice(rt.state.pending.indexOf(victim), 1);
      host.emit({ kind: 'replication-dropped', atMs: host.clock.now(), domainId: rt.domain.id, siteId, unitKey: victim.unitKey, snapshotIds: victim.snapshotIds, reason: 'queue-full' });
    }
  }
  const first = infos[0]!;
  rt.state.pending.push({
    key, siteId, scheduleId, unitKey, snapshotIds: infos.map((i) => i.id), volumeIds: infos.map((i) => i.volumeId),
    createdMs: first.createdMs, groupKey: first.groupId ?? null, attempts: 0, nextAttemptMs: host.clock.now(),
  });
}

/** Stands in for missing hooks of an application-consistent group: the snapshot falls back to crash consistency and says why. */
const NO_HOOKS: QuiesceHooks = {
  preFreeze: () => Promise.reject(new DrkitError('NOT_SUPPORTED', 'no quiesce hooks are configured for this consistency group')),
  postThaw: () => Promise.resolve(),
};
