/**
 * Executes retention plans for the Protector: local (delete snapshots here) and remote
 * (prune our replicas at a site). Plans come from the pure planners; this file only
 * gathers their inputs and carries them out.
 *
 * Both sides plan per schedule and per unit, so "the latest snapshot shared with a site"
 * is found per volume lineage: a unit whose last replication failed keeps its own older
 * base even when another unit of the domain moved on.
 */
import { isDrkitError, toDrkitError, type DrkitError } from '../../core/errors.js';
import type { Clock } from '../../adapters/clock.js';
import type { RemoteSite as ReplicationRemote, Site, SiteTransferOptions } from '../../replication/index.js';
import { planRemoteRetention, planRetention } from '../plan-retention.js';
import type { ProtectorEvent } from '../protector-event.js';
import type { Schedule } from '../schedule.js';
import type { DomainRuntime } from './domain-runtime.js';
import type { CatalogEntry } from './protector-state.js';
import { nextRetentionChangeMs } from './retention-boundary.js';

/** What the runner needs of the engine. */
export interface RetentionHost {
  readonly site: Site;
  readonly clock: Clock;
  remoteFor(siteId: string): ReplicationRemote | undefined;
  transferOptions(): SiteTransferOptions;
  emit(event: ProtectorEvent): void;
  persist(rt: DomainRuntime): Promise<void>;
}

/**
 * Applies `schedule`'s local rule to its live snapshots, unit by unit, protecting every
 * snapshot queued for replication and the latest one each site holds. The caller holds
 * the domain's lock.
 */
export async function applyLocalRetention(host: RetentionHost, rt: DomainRuntime, schedule: Schedule): Promise<void> {
  const nowMs = host.clock.now();
  const tree = host.site.tree;
  const byUnit = rt.live.get(schedule.id);
  const deletedIds: string[] = [];
  let keptCount = 0;
  let failure: DrkitError | undefined;
  const replicatingIds = rt.replicatingIds();
  for (const [unitKey, snapshots] of byUnit ?? []) {
    // Snapshots deleted behind the engine's back simply leave the index.
    const present = snapshots.filter((s) => {
      try {
        tree.getSnapshot(s.id);
        return true;
      } catch {
        return false;
      }
    });
    const sites = Object.entries(rt.state.catalog).map(([siteId, entries]) => ({
      siteId,
      sharedSnapshotIds: entries.filter((e) => e.unitKey === unitKey).map((e) => e.snapshotId),
    }));
    const plan = planRetention(schedule.retention, present, nowMs, { replicatingIds, sites });
    const gone = new Set<string>();
    for (const d of plan.delete) {
      try {
        await tree.deleteSnapshot(d.id);
        gone.add(d.id);
        deletedIds.push(d.id);
      } catch (err) {
        if (isDrkitError(err, 'NOT_FOUND')) gone.add(d.id);
        else if (!isDrkitError(err, 'BUSY')) failure ??= toDrkitError(err, 'INTERNAL', 'local retention failed');
        // BUSY: a reader pins it; the next pass deletes it.
      }
    }
    keptCount += plan.keep.length;
    byUnit!.set(unitKey, present.filter((s) => !gone.has(s.id)));
  }
  const next = nextRetentionChangeMs(schedule.retention, nowMs);
  if (next === undefined) rt.retentionDue.delete(schedule.id);
  else rt.retentionDue.set(schedule.id, next);
  const base = { atMs: nowMs, domainId: rt.domain.id, scheduleId: schedule.id, side: 'local' as const, siteId: undefined };
  if (failure !== undefined) host.emit({ kind: 'retention-failed', ...base, error: failure });
  if (deletedIds.length > 0) host.emit({ kind: 'retention-applied', ...base, deletedIds, keptCount });
}

/**
 * Applies remote retention at `siteId` for every schedule of the domain replicating
 * there: lists what the site holds of our volumes, forgets catalog entries it no longer
 * holds, plans under each schedule's rule for that site, and prunes. Network calls run
 * outside the domain's lock; catalog changes inside it. One run per site at a time.
 */
export async function applyRemoteRetention(host: RetentionHost, rt: DomainRuntime, siteId: string): Promise<void> {
  if (rt.remoteRetentionRunning.has(siteId)) {
    rt.remoteRetentionAgain.add(siteId);
    return;
  }
  const remote = host.remoteFor(siteId);
  const schedules = rt.domain.schedules.filter((s) => s.remoteSiteIds.includes(siteId));
  if (remote === undefined || schedules.length === 0) return;
  rt.remoteRetentionRunning.add(siteId);
  try {
    do {
      rt.remoteRetentionAgain.delete(siteId);
      await remoteOnce(host, rt, siteId, remote, schedules);
    } while (rt.remoteRetentionAgain.has(siteId) && !rt.removed);
  } finally {
    rt.remoteRetentionRunning.delete(siteId);
  }
}

async function remoteOnce(host: RetentionHost, rt: DomainRuntime, siteId: string, remote: ReplicationRemote, schedules: readonly Schedule[]): Promise<void> {
  const localSiteId = host.site.siteId;
  // Plan from the catalog first: when it prunes nothing, the site need not be asked at all.
  if (planPrunes(host, rt, siteId, schedules, rt.state.catalog[siteId] ?? []).size === 0) return;
  const listed = [...(rt.state.catalog[siteId] ?? [])];
  const fail = (scheduleId: string, err: unknown) =>
    host.emit({ kind: 'retention-failed', atMs: host.clock.now(), domainId: rt.domain.id, scheduleId, side: 'remote', siteId, error: toDrkitError(err, 'INTERNAL', 'remote retention failed') });
  const held = new Set<string>();
  try {
    for (const volumeId of new Set(listed.map((e) => e.volumeId))) {
      for (const h of await host.site.listRemote(remote, `${localSiteId}/${volumeId}`, host.transferOptions())) {
        if (h.originSiteId === localSiteId) held.add(h.originSnapshotId);
      }
    }
  } catch (err) {
    fail(schedules[0]!.id, err);
    return;
  }
  const toPrune = new Map<string, string[]>();
  await rt.lock.run(async () => {
    if (rt.removed) return;
    // Forget what the site no longer holds (pruned before a crash, or deleted there); entries added since the listing stay.
    const listedIds = new Set(listed.map((e) => e.snapshotId));
    const catalog = (rt.state.catalog[siteId] ?? []).filter((e) => !listedIds.has(e.snapshotId) || held.has(e.snapshotId));
    rt.state.catalog[siteId] = catalog;
    for (const [scheduleId, ids] of planPrunes(host, rt, siteId, schedules, catalog)) toPrune.set(scheduleId, ids);
    if (listed.length !== catalog.length) await host.persist(rt);
  });
  for (const [scheduleId, ids] of toPrune) {
    try {
      await host.site.pruneRemote(remote, ids, host.transferOptions());
    } catch (err) {
      fail(scheduleId, err);
      continue;
    }
    await rt.lock.run(async () => {
      if (rt.removed) return;
      const gone = new Set(ids);
      const catalog = (rt.state.catalog[siteId] ?? []).filter((e) => !gone.has(e.snapshotId));
      rt.state.catalog[siteId] = catalog;
      await host.persist(rt);
      const keptCount = catalog.filter((e) => e.scheduleId === scheduleId).length;
      host.emit({ kind: 'retention-applied', atMs: host.clock.now(), domainId: rt.domain.id, scheduleId, side: 'remote', siteId, deletedIds: ids, keptCount });
    });
  }
}

/** Per schedule: the local ids whose replicas at `siteId` its rule lets go, planned unit by unit over `catalog`. */
function planPrunes(host: RetentionHost, rt: DomainRuntime, siteId: string, schedules: readonly Schedule[], catalog: readonly CatalogEntry[]): Map<string, string[]> {
  const nowMs = host.clock.now();
  const out = new Map<string, string[]>();
  const pendingIds = rt.state.pending.filter((p) => p.siteId === siteId).flatMap((p) => p.snapshotIds);
  for (const s of schedules) {
    const units = new Map<string, CatalogEntry[]>();
    for (const e of catalog) {
      if (e.scheduleId !== s.id) continue;
      const list = units.get(e.unitKey) ?? [];
      list.push(e);
      units.set(e.unitKey, list);
    }
    const ids: string[] = [];
    for (const entries of units.values()) {
      const existsHere = entries.filter((e) => {
        try {
          host.site.tree.getSnapshot(e.snapshotId);
          return true;
        } catch {
          return false;
        }
      });
      const plan = planRemoteRetention(
        s.retention,
        siteId,
        entries.map((e) => ({ id: e.snapshotId, createdMs: e.createdMs, groupId: e.groupKey ?? undefined })),
        nowMs,
        // The next replication's base is the newest replica whose original still exists here.
        { sites: [{ siteId: host.site.siteId, sharedSnapshotIds: existsHere.map((e) => e.snapshotId) }], replicatingIds: pendingIds },
      );
      ids.push(...plan.delete.map((d) => d.id));
    }
    if (ids.length > 0) out.set(s.id, ids);
  }
  return out;
}
