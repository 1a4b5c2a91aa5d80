/**
 * In-memory side of one protection domain in the Protector: its definition and
 * persisted state, the live snapshots the engine took (by schedule and unit), cached
 * next-due instants so a scheduling pass over many domains skips idle ones in O(1), and
 * the RPO arithmetic.
 */
import type { SnapshotInfo } from '../../snapshot/index.js';
import type { Consistency } from '../consistency-group.js';
import type { ProtectionDomain } from '../protection-domain.js';
import { nominalRpoMs } from '../schedule.js';
import { nextFireMs, previousFireMs } from '../schedule-math.js';
import type { DomainState, PendingItem } from './protector-state.js';
import { SerialLock } from './serial-lock.js';

/** Reserved user-metadata keys the engine stamps on the snapshots it takes. */
export const META_DOMAIN = 'protector.domain';
export const META_SCHEDULE = 'protector.schedule';
export const META_UNIT = 'protector.unit';
export const META_FIRE = 'protector.fireMs';

/** Index key of ad-hoc snapshots (no schedule; never subject to a schedule's retention). */
export const AD_HOC = '';

/** One atomic unit of a domain: a consistency group, or one entity on its own. */
export interface SnapshotUnit {
  readonly unitKey: string;
  /** The consistency group's id, for a group. */
  readonly groupId: string | undefined;
  readonly volumeIds: readonly string[];
  readonly consistency: Consistency;
}

/** RPO arithmetic of one site. */
export interface SiteRpo {
  readonly targetMs: number;
  readonly thresholdMs: number;
  /** Creation time of the oldest unit's newest complete snapshot there; undefined if any unit has none. */
  readonly newestCompleteMs: number | undefined;
  /** The instant the age counts from. */
  readonly referenceMs: number;
}

/** See the module comment. */
export class DomainRuntime {
  domain: ProtectionDomain;
  readonly state: DomainState;
  readonly lock = new SerialLock();
  /** Live engine snapshots: schedule id (AD_HOC for ad hoc) -> unit key -> snapshots, oldest first. */
  readonly live = new Map<string, Map<string, SnapshotInfo[]>>();
  /** Per schedule id: the next fire instant not yet taken. */
  readonly nextFire = new Map<string, number>();
  /** Per schedule id: when its retention may change by time alone. */
  readonly retentionDue = new Map<string, number>();
  /** Unit keys of the last successful resolution: the units RPO is measured over. */
  unitKeys: readonly string[] = [];
  /** Sites with a transfer running (one per site, oldest first, so bases chain). */
  readonly busySites = new Set<string>();
  /** Sites whose remote retention runs now, and those asked to run again after it. */
  readonly remoteRetentionRunning = new Set<string>();
  readonly remoteRetentionAgain = new Set<string>();
  /** Per remote site served by NearSync: source time of the newest LWS valid there (the whole domain, crash-consistent). */
  readonly lwsValidMs = new Map<string, number>();
  /** Earliest instant this domain needs a scheduling pass. */
  nextDueMs = 0;
  removed = false;

  constructor(domain: ProtectionDomain, state: DomainState) {
    this.domain = domain;
    this.state = state;
  }

  /** Schedules' next fires from the recorded last fires; a never-fired schedule owes its latest past fire. */
  resetFires(nowMs: number): void {
    this.nextFire.clear();
    for (const s of this.domain.schedules) {
      const last = this.state.lastFireMs[s.id];
      this.nextFire.set(s.id, last === undefined ? (previousFireMs(s, nowMs) ?? nextFireMs(s, nowMs)) : nextFireMs(s, last));
    }
  }

  /** Per remote site replicated to: the RPO target, the shortest nominal interval of its schedules. */
  targets(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.domain.schedules) {
      const rpo = nominalRpoMs(s);
      for (const siteId of s.remoteSiteIds) out.set(siteId, Math.min(out.get(siteId) ?? Infinity, rpo));
    }
    return out;
  }

  /** RPO arithmetic of `siteId` given its target and the grace rule. */
  siteRpo(siteId: string, targetMs: number, graceMs: (targetMs: number) => number): SiteRpo {
    const newestByUnit = new Map<string, number>();
    for (const e of this.state.catalog[siteId] ?? []) newestByUnit.set(e.unitKey, Math.max(newestByUnit.get(e.unitKey) ?? -Infinity, e.createdMs));
    let oldest: number | undefined;
    let missing = this.unitKeys.length === 0;
    for (const u of this.unitKeys) {
      const t = newestByUnit.get(u);
      if (t === undefined) missing = true;
      else oldest = oldest === undefined ? t : Math.min(oldest, t);
    }
    // A valid LWS there covers every unit of the domain: it counts as a complete point.
    const lws = this.lwsValidMs.get(siteId);
    const snapshotsMs = missing ? undefined : oldest;
    const newestCompleteMs = lws !== undefined && (snapshotsMs === undefined || lws > snapshotsMs) ? lws : snapshotsMs;
    // Until every unit has a complete snapshot there, the domain is exposed since protection began.
    const referenceMs = newestCompleteMs ?? Math.min(this.state.addedMs, oldest ?? Infinity);
    return { targetMs, thresholdMs: targetMs + graceMs(targetMs), newestCompleteMs, referenceMs };
  }

  /** Ids of every snapshot queued for (or in) replication to any site. */
  replicatingIds(): string[] {
    return this.state.pending.flatMap((p) => p.snapshotIds);
  }

  /** The oldest queued item of each site, in queue order. */
  heads(): PendingItem[] {
    const seen = new Set<string>();
    const out: PendingItem[] = [];
    for (const p of this.state.pending) {
      if (seen.has(p.siteId)) continue;
      seen.add(p.siteId);
      out.push(p);
    }
    return out;
  }

  /** Records a live snapshot in the index. */
  addLive(scheduleKey: string, unitKey: string, info: SnapshotInfo): void {
    let byUnit = this.live.get(scheduleKey);
    if (byUnit === undefined) this.live.set(scheduleKey, (byUnit = new Map()));
    let list = byUnit.get(unitKey);
    if (list === undefined) byUnit.set(unitKey, (list = []));
    list.push(info);
  }

  /** Recomputes {@link nextDueMs}: the next fire, retention change or RPO deadline. */
  refreshDue(graceMs: (targetMs: number) => number): void {
    let due = Infinity;
    for (const t of this.nextFire.values()) due = Math.min(due, t);
    for (const t of this.retentionDue.values()) due = Math.min(due, t);
    for (const [siteId, targetMs] of this.targets()) {
      if (this.state.breachedSinceMs[siteId] !== undefined) continue;
      const r = this.siteRpo(siteId, targetMs, graceMs);
      // Breached once the age EXCEEDS the threshold: one millisecond past it.
      due = Math.min(due, r.referenceMs + r.thresholdMs + 1);
    }
    this.nextDueMs = due;
  }
}
