/**
 * planRetention: which restore points a retention policy deletes, and why every other one
 * is kept. Pure: the engine executes the plan.
 *
 * Restore points. Snapshots sharing a `groupId` (one consistency-group commit) form ONE
 * restore point: it counts once towards keep-last and the tiers, its time is its newest
 * member's, and its members are kept or deleted together — a group is never split, since
 * a partial group cannot be recovered consistently. A snapshot without `groupId` is a
 * restore point of its own.
 *
 * A restore point is kept when any of these holds (each becomes a reason):
 * - it is among the newest `keepLast` (newest first; equal times by id);
 * - it is the newest in one of a tier's buckets: the `count` most recent calendar buckets
 *   (hour, day, week starting Monday, month, year) in the policy's time zone, ending with
 *   the bucket holding `nowMs` (see internal/retention-buckets.ts for daylight-saving
 *   days); one restore point may satisfy several tiers;
 * - protected: a member is the latest snapshot shared with a site in `context.sites`
 *   (the next incremental replication's base) or that site's declared `baseSnapshotId`,
 *   is being replicated (`context.replicatingIds`), or is held (`context.holds`);
 * - it was created after `nowMs` (a clock behind the snapshot's; never delete the future).
 * Protections come on top of the counts: keep-last N keeps exactly min(N, restore points)
 * plus the protected ones. Planning again after applying a plan deletes nothing more.
 */
import { MAX_ID_CHARS, id, integer, invalid, join, list, object, text } from './internal/fields.js';
import { bucketName, bucketWallStart, windowStartMs } from './internal/retention-buckets.js';
import { wallMs } from './internal/zoned-time.js';
import { remoteRuleFor, type RetentionPolicy, type RetentionRule, type RetentionUnit } from './retention-policy.js';

/** Most snapshots one plan accepts: 1,000,000 — a minutely schedule for two years; bounds memory of a pure call. */
export const MAX_PLANNED_SNAPSHOTS = 1_000_000;

/** What planning needs of a snapshot. drkit's `SnapshotInfo` fits. */
export interface RetentionSnapshot {
  readonly id: string;
  readonly createdMs: number;
  readonly groupId?: string | undefined;
}

/** What the side being planned knows about other sites and in-flight work. */
export interface RetentionContext {
  /** Snapshots currently being sent or received: never deleted. */
  replicatingIds?: readonly string[];
  /** Snapshots held by an operator or a legal hold, with why. */
  holds?: readonly { snapshotId: string; reason: string }[];
  /**
   * Per other site: the ids of this side's snapshots that site also holds, and/or the
   * declared base of the next replication. The latest shared one (by time, then id) and
   * the declared base are never deleted.
   */
  sites?: readonly { siteId: string; sharedSnapshotIds?: readonly string[]; baseSnapshotId?: string }[];
}

/** Why a snapshot is kept. */
export type KeepReason =
  | { readonly kind: 'keep-last'; readonly rank: number; readonly count: number; readonly description: string }
  | { readonly kind: 'tier'; readonly unit: RetentionUnit; readonly count: number; readonly bucket: string; readonly description: string }
  | { readonly kind: 'replication-base'; readonly siteId: string; readonly snapshotId: string; readonly description: string }
  | { readonly kind: 'replicating'; readonly snapshotId: string; readonly description: string }
  | { readonly kind: 'held'; readonly snapshotId: string; readonly reason: string; readonly description: string }
  | { readonly kind: 'created-after-now'; readonly description: string };

/** The plan. Every input snapshot is in exactly one list; both lists are oldest first. */
export interface RetentionPlan {
  readonly delete: readonly { readonly id: string; readonly reason: string }[];
  readonly keep: readonly { readonly id: string; readonly reasons: readonly KeepReason[] }[];
}

interface Unit {
  readonly key: string;
  timeMs: number;
  readonly members: RetentionSnapshot[];
  readonly reasons: KeepReason[];
}

const byNewest = (a: Unit, b: Unit): number => b.timeMs - a.timeMs || (a.key < b.key ? 1 : a.key > b.key ? -1 : 0);

const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const isId = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_ID_CHARS && !CONTROL_CHARS.test(v);

function checkSnapshots(snapshots: unknown): RetentionSnapshot[] {
  const seen = new Set<string>();
  return list(snapshots, 'snapshots', (s, sf) => {
    if (typeof s !== 'object' || s === null) invalid(sf, 'must be an object');
    const o = s as Record<string, unknown>;
    // Fast path without building field paths; the slow path below produces the coded error.
    const ok = isId(o.id) && Number.isSafeInteger(o.createdMs) && (o.createdMs as number) >= 0 && (o.groupId === undefined || isId(o.groupId));
    if (!ok) {
      id(o.id, join(sf, 'id'));
      integer(o.createdMs, join(sf, 'createdMs'), 0, Number.MAX_SAFE_INTEGER);
      id(o.groupId, join(sf, 'groupId'));
    }
    const snap = { id: o.id as string, createdMs: o.createdMs as number, groupId: o.groupId as string | undefined };
    if (seen.has(snap.id)) invalid(join(sf, 'id'), `repeats snapshot id '${snap.id}'`, { value: snap.id });
    seen.add(snap.id);
    return snap;
  }, MAX_PLANNED_SNAPSHOTS);
}

/** Core of both sides: applies `rule` in `timeZone`. */
function plan(rule: RetentionRule, timeZone: string, snapshotsIn: readonly RetentionSnapshot[], nowMs: number, context: RetentionContext): RetentionPlan {
  integer(nowMs, 'nowMs', 0, Number.MAX_SAFE_INTEGER);
  const snapshots = checkSnapshots(snapshotsIn);
  const cf = object(context, 'context', ['replicatingIds', 'holds', 'sites']);

  const unitBySnapshot = new Map<string, Unit>();
  const units = new Map<string, Unit>();
  for (const s of snapshots) {
    const key = s.groupId === undefined ? `s\u0000${s.id}` : `g\u0000${s.groupId}`;
    let u = units.get(key);
    if (u === undefined) {
      u = { key, timeMs: s.createdMs, members: [], reasons: [] };
      units.set(key, u);
    }
    // Time of a unit: its newest member (members of one commit share a time anyway).
    u.timeMs = Math.max(u.timeMs, s.createdMs);
    u.members.push(s);
    unitBySnapshot.set(s.id, u);
  }
  const finalUnits = [...units.values()];

  // Protections.
  const replicating = cf.replicatingIds === undefined ? [] : list(cf.replicatingIds, 'context.replicatingIds', id);
  for (const snapshotId of replicating) {
    unitBySnapshot.get(snapshotId)?.reasons.push({ kind: 'replicating', snapshotId, description: `${snapshotId} is being replicated` });
  }
  const holds = cf.holds === undefined ? [] : list(cf.holds, 'context.holds', (h, hf) => {
    const o = object(h, hf, ['snapshotId', 'reason']);
    return { snapshotId: id(o.snapshotId, join(hf, 'snapshotId')), reason: text(o.reason, join(hf, 'reason')) };
  });
  for (const h of holds) {
    unitBySnapshot.get(h.snapshotId)?.reasons.push({ kind: 'held', snapshotId: h.snapshotId, reason: h.reason, description: `${h.snapshotId} is held: ${h.reason}` });
  }
  const sites = cf.sites === undefined ? [] : list(cf.sites, 'context.sites', (s, sf) => {
    const o = object(s, sf, ['siteId', 'sharedSnapshotIds', 'baseSnapshotId']);
    return {
      siteId: id(o.siteId, join(sf, 'siteId')),
      shared: o.sharedSnapshotIds === undefined ? [] : list(o.sharedSnapshotIds, join(sf, 'sharedSnapshotIds'), id, MAX_PLANNED_SNAPSHOTS),
      base: o.baseSnapshotId === undefined ? undefined : id(o.baseSnapshotId, join(sf, 'baseSnapshotId')),
    };
  });
  const snapshotById = new Map(snapshots.map((s) => [s.id, s]));
  for (const site of sites) {
    let latest: RetentionSnapshot | undefined;
    for (const sid of site.shared) {
      const s = snapshotById.get(sid);
      if (s !== undefined && (latest === undefined || s.createdMs > latest.createdMs || (s.createdMs === latest.createdMs && s.id > latest.id))) latest = s;
    }
    const bases = new Set([latest?.id, site.base].filter((x): x is string => x !== undefined && snapshotById.has(x)));
    for (const snapshotId of bases) {
      unitBySnapshot.get(snapshotId)!.reasons.push({
        kind: 'replication-base', siteId: site.siteId, snapshotId,
        description: snapshotId === site.base ? `${snapshotId} is the declared replication base with site '${site.siteId}'` : `${snapshotId} is the latest snapshot shared with site '${site.siteId}' (the next replication's base)`,
      });
    }
  }
  for (const u of finalUnits) {
    if (u.timeMs > nowMs) u.reasons.push({ kind: 'created-after-now', description: `created ${u.timeMs - nowMs} ms after the planning time` });
  }

  // Counts.
  const newestFirst = [...finalUnits].sort(byNewest);
  newestFirst.slice(0, rule.keepLast).forEach((u, i) => {
    u.reasons.push({ kind: 'keep-last', rank: i + 1, count: rule.keepLast, description: `#${i + 1} of the newest ${rule.keepLast} restore points` });
  });
  const past = newestFirst.filter((u) => u.timeMs <= nowMs);
  const oldestMs = past.length === 0 ? nowMs : past[past.length - 1]!.timeMs;
  const walls = new Map<Unit, number>();
  for (const tier of rule.tiers) {
    const startMs = windowStartMs(tier.unit, tier.count, nowMs, timeZone, oldestMs);
    const seenBuckets = new Set<number>();
    for (const u of past) {
      if (u.timeMs < startMs) break; // newest first: all older ones are outside the window too
      let wall = walls.get(u);
      if (wall === undefined) {
        wall = wallMs(u.timeMs, timeZone);
        walls.set(u, wall);
      }
      const bucket = bucketWallStart(tier.unit, wall);
      if (seenBuckets.has(bucket)) continue;
      seenBuckets.add(bucket);
      const name = bucketName(tier.unit, bucket);
      u.reasons.push({ kind: 'tier', unit: tier.unit, count: tier.count, bucket: name, description: `newest in ${tier.unit} ${name} (${timeZone}) of the last ${tier.count} ${tier.unit}s` });
    }
  }

  const order = (a: RetentionSnapshot, b: RetentionSnapshot) => a.createdMs - b.createdMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const keep: { id: string; reasons: KeepReason[] }[] = [];
  const del: { id: string; reason: string }[] = [];
  const tierText = rule.tiers.map((t) => `${t.count} ${t.unit}`).join(' + ');
  const expired = `not among the newest ${rule.keepLast} restore points${tierText === '' ? '' : `, not the newest in its bucket of any tier (${tierText})`}, and not protected`;
  for (const s of [...snapshots].sort(order)) {
    const u = unitBySnapshot.get(s.id)!;
    if (u.reasons.length > 0) keep.push({ id: s.id, reasons: u.reasons });
    else del.push({ id: s.id, reason: expired });
  }
  return { delete: del, keep };
}

/**
 * Plans local retention under `policy.local` (see the module header for the rules).
 * @param nowMs the planning instant (the engine's clock)
 * @param context protections; @defaultValue {}
 * @throws INVALID_ARGUMENT for malformed snapshots (missing id, repeated id, bad time) or context
 */
export function planRetention(policy: RetentionPolicy, snapshots: readonly RetentionSnapshot[], nowMs: number, context: RetentionContext = {}): RetentionPlan {
  return plan(policy.local, policy.timeZone, snapshots, nowMs, context);
}

/**
 * Plans retention of the restore points held AT remote site `siteId`, under that site's
 * rule ({@link remoteRuleFor}: its own, else the local rule). Same rules and protections;
 * the snapshot ids and `context` are the remote side's (there, `context.sites` names the
 * source site and the base it replicates onto).
 * @throws INVALID_ARGUMENT as {@link planRetention}
 */
export function planRemoteRetention(policy: RetentionPolicy, siteId: string, snapshots: readonly RetentionSnapshot[], nowMs: number, context: RetentionContext = {}): RetentionPlan {
  id(siteId, 'siteId');
  return plan(remoteRuleFor(policy, siteId), policy.timeZone, snapshots, nowMs, context);
}
