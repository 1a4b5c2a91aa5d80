/**
 * Time-zone arithmetic over `Intl.DateTimeFormat` (no tz database of our own). A "wall"
 * time is a local calendar time encoded as if it were UTC (`Date.UTC(y, m, d, h, mi)`),
 * so local calendars can be stepped with plain UTC arithmetic and converted back with
 * {@link resolveWallTime}.
 *
 * Rule for local times that do not exist or exist twice (daylight-saving changes): a
 * wall time resolves to the FIRST instant at which the zone's clock shows that time or
 * a later one. On a fall-back day that is the earlier of the two occurrences; on a
 * spring-forward day a skipped time resolves to the transition instant itself (for
 * Europe/Berlin, 02:30 on the last Sunday of March resolves to 03:00 CEST).
 */
import { DrkitError } from '../../core/errors.js';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** Local calendar fields of an instant. `month` is 1..12, `weekday` 0 (Sunday)..6. */
export interface LocalParts {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly weekday: number;
}

/** Formatters are costly to build (~50 µs); one per zone, kept for the process. Bounded by the zones in use. */
const formatters = new Map<string, Intl.DateTimeFormat>();

// `format()` is ~10x faster than `formatToParts()` on Node 20, so we parse its fixed en-US shape.
const FORMAT_SHAPE = /^(\d+)\/(\d+)\/(\d+), (\d+):(\d+):(\d+)$/;

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when `timeZone` is an IANA zone name this runtime knows (or 'UTC'). */
export function isKnownTimeZone(timeZone: string): boolean {
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** Local wall time of `ms` in `timeZone`, as a UTC-encoded millisecond count. */
export function wallMs(ms: number, timeZone: string): number {
  const text = formatterFor(timeZone).format(ms);
  const m = FORMAT_SHAPE.exec(text);
  if (m === null) throw new DrkitError('INTERNAL', `unexpected Intl output '${text}'`, { data: { timeZone, ms } });
  const hour = Number(m[4]) % 24; // some ICU builds print midnight as 24
  const msOfSecond = ((ms % 1000) + 1000) % 1000;
  return Date.UTC(Number(m[3]), Number(m[1]) - 1, Number(m[2]), hour, Number(m[5]), Number(m[6])) + msOfSecond;
}

/** Calendar fields of a UTC-encoded wall time. */
export function wallParts(wall: number): LocalParts {
  const d = new Date(wall);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    weekday: d.getUTCDay(),
  };
}

/** Local calendar fields of `ms` in `timeZone`. */
export function localParts(ms: number, timeZone: string): LocalParts {
  return wallParts(wallMs(ms, timeZone));
}

/** UTC offset of `timeZone` at `ms` (local minus UTC). */
export function offsetMs(ms: number, timeZone: string): number {
  return wallMs(ms, timeZone) - ms;
}

/**
 * The first instant whose local wall time in `timeZone` is `wall` or later (see the
 * module header for why). Assumes at most one offset change within a day of `wall`,
 * which holds for every zone in the IANA database since 1970.
 */
export function resolveWallTime(wall: number, timeZone: string): number {
  const offsets = new Set([offsetMs(wall - DAY_MS, timeZone), offsetMs(wall, timeZone), offsetMs(wall + DAY_MS, timeZone)]);
  let best: number | undefined;
  for (const o of offsets) {
    const t = wall - o;
    if (wallMs(t, timeZone) === wall && (best === undefined || t < best)) best = t;
  }
  if (best !== undefined) return best;
  // Skipped wall time: bisect for the transition, the first instant showing a later time.
  const candidates = [...offsets].map((o) => wall - o);
  let lo = Math.min(...candidates);
  let hi = Math.max(...candidates);
  if (wallMs(lo, timeZone) >= wall || wallMs(hi, timeZone) < wall) {
    throw new DrkitError('INTERNAL', 'wall time could not be resolved in this time zone', { data: { wall, timeZone } });
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (wallMs(mid, timeZone) >= wall) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** Days since the epoch of a UTC-encoded wall time's calendar date. */
export function civilDay(wall: number): number {
  return Math.floor(wall / DAY_MS);
}

/** Number of days in `month` (1..12) of `year`. */
export function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}
