/**
 * When a retention plan can change with nothing but the passing of time: at the start
 * of the next calendar bucket of the finest tier unit (a tier window slides then). A
 * rule of keep-last only never changes by itself. Hour boundaries include day
 * boundaries, day boundaries include week, month and year ones (in one zone), so the
 * finest unit's next bucket start is the next instant worth re-planning at.
 */
import { RETENTION_UNITS, type RetentionPolicy, type RetentionRule, type RetentionUnit } from '../retention-policy.js';
import { bucketWallStart } from './retention-buckets.js';
import { DAY_MS, HOUR_MS, resolveWallTime, wallMs, wallParts } from './zoned-time.js';

function nextWallStart(unit: RetentionUnit, wallStart: number): number {
  const p = wallParts(wallStart);
  switch (unit) {
    case 'hour':
      return wallStart + HOUR_MS;
    case 'day':
      return wallStart + DAY_MS;
    case 'week':
      return wallStart + 7 * DAY_MS;
    case 'month':
      return Date.UTC(p.year, p.month, 1);
    case 'year':
      return Date.UTC(p.year + 1, 0, 1);
  }
}

/** The first instant after `nowMs` at which a new `unit` bucket begins in `timeZone`. */
export function nextBucketStartMs(unit: RetentionUnit, nowMs: number, timeZone: string): number {
  const start = bucketWallStart(unit, wallMs(nowMs, timeZone));
  return Math.max(nowMs + 1, resolveWallTime(nextWallStart(unit, start), timeZone));
}

/**
 * The next instant at which `policy` (its local rule and the remote rules of `siteIds`)
 * could keep a different set without any new snapshot, or undefined when it never can.
 */
export function nextRetentionChangeMs(policy: RetentionPolicy, nowMs: number): number | undefined {
  const rules: RetentionRule[] = [policy.local, ...policy.remote.map((r) => r.rule)];
  let finest: number | undefined;
  for (const rule of rules) {
    for (const t of rule.tiers) {
      const i = RETENTION_UNITS.indexOf(t.unit);
      if (finest === undefined || i < finest) finest = i;
    }
  }
  return finest === undefined ? undefined : nextBucketStartMs(RETENTION_UNITS[finest]!, nowMs, policy.timeZone);
}
