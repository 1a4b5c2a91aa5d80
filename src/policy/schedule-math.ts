/**
 * Pure fire-time arithmetic of a {@link Schedule}.
 *
 * Calendar schedules (daily, weekly, monthly) fire at local time `at` in the schedule's
 * zone, resolved by one rule: a schedule fires at the FIRST instant at which the local
 * clock reaches or passes `at` on an eligible day. Hence, across daylight-saving changes:
 * - spring forward: a time that does not exist that day (02:30 in Europe/Berlin on the
 *   last Sunday of March) fires once, at the transition instant (03:00 CEST);
 * - fall back: a time that occurs twice fires once, at its first occurrence (CEST).
 * Monthly on a day past the month's end fires on the month's last day.
 * Interval schedules count elapsed time and are unaffected by zones.
 */
import { invalid, integer } from './internal/fields.js';
import { civilDay, DAY_MS, daysInMonth, MINUTE_MS, resolveWallTime, wallMs, wallParts } from './internal/zoned-time.js';
import { intervalMs, parseTimeOfDay, WEEKDAYS, type Schedule } from './schedule.js';

/** Latest instant the schedule math accepts: year 275760, the end of JavaScript dates, less a year of margin. */
const MAX_INSTANT_MS = 8.64e15 - 366 * DAY_MS;

/** Longest run of ineligible days before a calendar schedule fires: a monthly one skips at most 31. Scanned with margin. */
const MAX_SCAN_DAYS = 64;

/** Default bound of {@link fireTimesBetween}: 100,000 fires, a year of a 5-minute schedule — a larger answer is a bug in the caller. */
export const DEFAULT_MAX_FIRE_TIMES = 100_000;

function checkInstant(value: unknown, field: string): number {
  return integer(value, field, 0, MAX_INSTANT_MS);
}

function eligible(schedule: Schedule, day: number): boolean {
  const r = schedule.recurrence;
  const p = wallParts(day * DAY_MS);
  if (r.kind === 'weekly') return r.weekdays.includes(WEEKDAYS[p.weekday]!);
  if (r.kind === 'monthly') return p.day === Math.min(r.dayOfMonth, daysInMonth(p.year, p.month));
  return true;
}

/** The fire instant of a calendar schedule on local civil day `day` (days since epoch). */
function fireOnDay(schedule: Schedule, day: number, atMinutes: number): number {
  return resolveWallTime(day * DAY_MS + atMinutes * MINUTE_MS, schedule.timeZone);
}

function atMinutes(schedule: Schedule): number {
  const r = schedule.recurrence;
  if (r.kind === 'interval') return 0;
  return parseTimeOfDay(r.at, 'recurrence.at');
}

/**
 * The first fire strictly after `afterMs`.
 * @throws INVALID_ARGUMENT when `afterMs` is not an integer in [0, ~year 275759]
 */
export function nextFireMs(schedule: Schedule, afterMs: number): number {
  checkInstant(afterMs, 'afterMs');
  const r = schedule.recurrence;
  if (r.kind === 'interval') {
    const period = intervalMs(r);
    return r.anchorMs + (Math.floor((afterMs - r.anchorMs) / period) + 1) * period;
  }
  const at = atMinutes(schedule);
  // Fire times increase with the day, so start a day early and take the first one past afterMs.
  const firstDay = civilDay(wallMs(afterMs, schedule.timeZone)) - 1;
  for (let day = firstDay; day <= firstDay + MAX_SCAN_DAYS; day++) {
    if (!eligible(schedule, day)) continue;
    const t = fireOnDay(schedule, day, at);
    if (t > afterMs) return t;
  }
  return invalid('schedule', 'never fires'); // unreachable for a validated schedule
}

/**
 * The last fire at or before `atOrBeforeMs`, or undefined when there is none at or after
 * the epoch.
 * @throws INVALID_ARGUMENT when `atOrBeforeMs` is out of range
 */
export function previousFireMs(schedule: Schedule, atOrBeforeMs: number): number | undefined {
  checkInstant(atOrBeforeMs, 'atOrBeforeMs');
  const r = schedule.recurrence;
  let t: number | undefined;
  if (r.kind === 'interval') {
    const period = intervalMs(r);
    t = r.anchorMs + Math.floor((atOrBeforeMs - r.anchorMs) / period) * period;
  } else {
    const at = atMinutes(schedule);
    const lastDay = civilDay(wallMs(atOrBeforeMs, schedule.timeZone)) + 1;
    for (let day = lastDay; day >= lastDay - MAX_SCAN_DAYS && t === undefined; day--) {
      if (!eligible(schedule, day)) continue;
      const fire = fireOnDay(schedule, day, at);
      if (fire <= atOrBeforeMs) t = fire;
    }
  }
  return t === undefined || t < 0 ? undefined : t;
}

/**
 * Every fire in `[fromMs, toMs)`, ascending.
 * @param options.maxCount bound on the answer. @defaultValue {@link DEFAULT_MAX_FIRE_TIMES}
 * @throws INVALID_ARGUMENT for bad instants, `toMs < fromMs`, or more than `maxCount` fires
 */
export function fireTimesBetween(schedule: Schedule, fromMs: number, toMs: number, options: { maxCount?: number } = {}): number[] {
  checkInstant(fromMs, 'fromMs');
  checkInstant(toMs, 'toMs');
  if (toMs < fromMs) invalid('toMs', 'must not be before fromMs', { fromMs, toMs });
  const maxCount = options.maxCount === undefined ? DEFAULT_MAX_FIRE_TIMES : integer(options.maxCount, 'maxCount', 1, Number.MAX_SAFE_INTEGER);
  const out: number[] = [];
  if (fromMs === toMs) return out;
  let t = previousFireMs(schedule, fromMs) === fromMs ? fromMs : nextFireMs(schedule, fromMs);
  while (t < toMs) {
    if (out.length === maxCount) invalid('maxCount', `more than ${maxCount} fires in the range`, { fromMs, toMs, maxCount });
    out.push(t);
    t = nextFireMs(schedule, t);
  }
  return out;
}

/**
 * The one fire an engine owes after being away: the latest fire in `(lastFiredMs, nowMs]`,
 * or undefined when none is due. However many fires were missed, this returns one
 * instant — a missed schedule fires once, not N times. With no `lastFiredMs` (never
 * fired), the latest fire at or before `nowMs` is due.
 * @throws INVALID_ARGUMENT for out-of-range instants
 */
export function latestDueFireMs(schedule: Schedule, lastFiredMs: number | undefined, nowMs: number): number | undefined {
  if (lastFiredMs !== undefined) checkInstant(lastFiredMs, 'lastFiredMs');
  const t = previousFireMs(schedule, nowMs);
  if (t === undefined) return undefined;
  return lastFiredMs === undefined || t > lastFiredMs ? t : undefined;
}
