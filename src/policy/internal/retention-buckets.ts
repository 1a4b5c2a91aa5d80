/**
 * Calendar buckets of retention tiers in a time zone. A bucket is named by its local
 * wall-clock start (UTC-encoded, see zoned-time.ts): an hour bucket by `YYYY-MM-DDTHH:00`,
 * a week bucket by its Monday. A wall hour that occurs twice (fall back) is ONE bucket
 * spanning two real hours; a wall hour that does not exist (spring forward) is no bucket
 * at all. So "the last 24 hour buckets" are the 24 most recent local hours that exist.
 */
import type { RetentionUnit } from '../retention-policy.js';
import { DAY_MS, HOUR_MS, resolveWallTime, wallMs, wallParts } from './zoned-time.js';

/** The wall start of the `unit` bucket holding wall time `wall`; doubles as the bucket's name. */
export function bucketWallStart(unit: RetentionUnit, wall: number): number {
  switch (unit) {
    case 'hour':
      return Math.floor(wall / HOUR_MS) * HOUR_MS;
    case 'day':
      return Math.floor(wall / DAY_MS) * DAY_MS;
    case 'week': {
      const day = Math.floor(wall / DAY_MS) * DAY_MS;
      return day - ((wallParts(day).weekday + 6) % 7) * DAY_MS;
    }
    case 'month': {
      const p = wallParts(wall);
      return Date.UTC(p.year, p.month - 1, 1);
    }
    case 'year':
      return Date.UTC(wallParts(wall).year, 0, 1);
  }
}

/** Human name of a bucket, e.g. `2024-03-31T02:00` (hour), `2024-03` (month), `week of 2024-03-25`. */
export function bucketName(unit: RetentionUnit, wallStart: number): string {
  const iso = new Date(wallStart).toISOString();
  switch (unit) {
    case 'hour':
      return iso.slice(0, 16);
    case 'day':
      return iso.slice(0, 10);
    case 'week':
      return `week of ${iso.slice(0, 10)}`;
    case 'month':
      return iso.slice(0, 7);
    case 'year':
      return iso.slice(0, 4);
  }
}

/** The first instant of the `unit` bucket holding instant `t` in `timeZone`. */
export function bucketStartMs(unit: RetentionUnit, t: number, timeZone: string): number {
  const start = bucketWallStart(unit, wallMs(t, timeZone));
  // Fast path: the offset at t still holds at the bucket's start and the instant before it is earlier on the wall.
  const guess = start - (wallMs(t, timeZone) - t);
  if (guess <= t && wallMs(guess, timeZone) === start && wallMs(guess - 1, timeZone) < start) return guess;
  return Math.min(resolveWallTime(start, timeZone), t);
}

/**
 * The first instant of the oldest of the `count` most recent `unit` buckets ending with
 * the one holding `nowMs`. Stops early once the window reaches back past `floorMs`
 * (nothing older needs a bucket), so its cost follows the snapshots' span, not `count`.
 */
export function windowStartMs(unit: RetentionUnit, count: number, nowMs: number, timeZone: string, floorMs: number): number {
  let s = bucketStartMs(unit, nowMs, timeZone);
  for (let i = 1; i < count && s > floorMs; i++) s = bucketStartMs(unit, s - 1, timeZone);
  return s;
}
