/**
 * Schedule: when a protection domain is snapshotted and where each snapshot is
 * replicated (seed: "Snapshot Schedule"; it should equal the RPO). A PD may have several,
 * e.g. hourly local snapshots plus a daily one replicated to a remote site. Each schedule
 * carries the retention of the restore points it creates. Fire times: schedule-math.ts.
 */
import { deepFreeze, id, integer, invalid, join, kindTag, list, object, oneOf, text, unique } from './internal/fields.js';
import { DAY_MS, HOUR_MS, MINUTE_MS } from './internal/zoned-time.js';
import { checkTimeZone, createRetentionPolicy, type RetentionPolicy, type RetentionPolicySpec } from './retention-policy.js';

/** Day of the week of a weekly schedule. */
export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';

/** Weekdays in JavaScript `getDay()` order (index 0 = Sunday). */
export const WEEKDAYS: readonly Weekday[] = Object.freeze(['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']);

/**
 * Seed: "When a user configures a snapshot frequency <= 15 minutes, NearSync is
 * automatically leveraged". Schedules at or under this interval are NearSync-eligible.
 */
export const NEAR_SYNC_MAX_INTERVAL_MS = 15 * MINUTE_MS;

/** Longest interval of an `interval` schedule: 366 days — anything rarer is a calendar schedule. */
export const MAX_INTERVAL_MS = 366 * DAY_MS;

/**
 * Every `every` minutes or hours of elapsed time, at `anchorMs + k * interval` for every
 * integer k. Elapsed time ignores daylight-saving changes: "every 1 hours" fires 23
 * times on a 23-hour day.
 */
export interface IntervalRecurrence {
  readonly kind: 'interval';
  readonly every: number;
  readonly unit: 'minutes' | 'hours';
  /** Sets the phase. @defaultValue 0 (aligned to the epoch, so hourly fires on the UTC hour) */
  readonly anchorMs: number;
}

/** Every day at local time `at` (`HH:MM`, 24-hour) in the schedule's zone. */
export interface DailyRecurrence {
  readonly kind: 'daily';
  readonly at: string;
}

/** On the listed weekdays at local time `at`. */
export interface WeeklyRecurrence {
  readonly kind: 'weekly';
  /** Non-empty, no repeats, stored Monday first. */
  readonly weekdays: readonly Weekday[];
  readonly at: string;
}

/**
 * On `dayOfMonth` at local time `at`. A day past the month's end means the month's last
 * day: "monthly on the 31st" fires on 30 April and on 28 or 29 February.
 */
export interface MonthlyRecurrence {
  readonly kind: 'monthly';
  readonly dayOfMonth: number;
  readonly at: string;
}

/** When a schedule fires. */
export type Recurrence = IntervalRecurrence | DailyRecurrence | WeeklyRecurrence | MonthlyRecurrence;

/** A schedule. Frozen plain data. */
export interface Schedule {
  readonly kind: 'schedule';
  readonly id: string;
  readonly recurrence: Recurrence;
  /** IANA zone of `at` (calendar recurrences). @defaultValue 'UTC' */
  readonly timeZone: string;
  /** Remote sites every snapshot of this schedule is replicated to. @defaultValue [] */
  readonly remoteSiteIds: readonly string[];
  /** Retention of the restore points this schedule creates; remote rules only for `remoteSiteIds`. */
  readonly retention: RetentionPolicy;
  /** Derived: an interval of at most {@link NEAR_SYNC_MAX_INTERVAL_MS}. */
  readonly nearSyncEligible: boolean;
}

/** Input of {@link createSchedule}. `nearSyncEligible` is derived; if given it must agree. */
export interface ScheduleSpec {
  kind?: 'schedule';
  id: string;
  recurrence:
    | { kind: 'interval'; every: number; unit: 'minutes' | 'hours'; anchorMs?: number }
    | { kind: 'daily'; at: string }
    | { kind: 'weekly'; weekdays: readonly Weekday[]; at: string }
    | { kind: 'monthly'; dayOfMonth: number; at: string };
  timeZone?: string;
  remoteSiteIds?: readonly string[];
  retention: RetentionPolicySpec;
  nearSyncEligible?: boolean;
}

const TIME_OF_DAY = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** Parses `HH:MM` into minutes after midnight. @throws INVALID_ARGUMENT */
export function parseTimeOfDay(value: unknown, field: string): number {
  const m = TIME_OF_DAY.exec(text(value, field));
  if (m === null) invalid(field, "must be a 24-hour time 'HH:MM'", { value: String(value) });
  return Number(m[1]) * 60 + Number(m[2]);
}

function checkRecurrence(value: unknown, field: string): Recurrence {
  const kind = oneOf(object(value, field, ['kind', 'every', 'unit', 'anchorMs', 'at', 'weekdays', 'dayOfMonth']).kind, join(field, 'kind'), [
    'interval', 'daily', 'weekly', 'monthly',
  ] as const);
  switch (kind) {
    case 'interval': {
      const f = object(value, field, ['kind', 'every', 'unit', 'anchorMs']);
      const unit = oneOf(f.unit, join(field, 'unit'), ['minutes', 'hours'] as const);
      const unitMs = unit === 'minutes' ? MINUTE_MS : HOUR_MS;
      const every = integer(f.every, join(field, 'every'), 1, MAX_INTERVAL_MS / unitMs);
      const anchorMs = f.anchorMs === undefined ? 0 : integer(f.anchorMs, join(field, 'anchorMs'), 0, 8.64e15);
      return { kind, every, unit, anchorMs };
    }
    case 'daily': {
      const f = object(value, field, ['kind', 'at']);
      parseTimeOfDay(f.at, join(field, 'at'));
      return { kind, at: f.at as string };
    }
    case 'weekly': {
      const f = object(value, field, ['kind', 'weekdays', 'at']);
      parseTimeOfDay(f.at, join(field, 'at'));
      const weekdays = list(f.weekdays, join(field, 'weekdays'), (d, df) => oneOf(d, df, WEEKDAYS), 7);
      if (weekdays.length === 0) invalid(join(field, 'weekdays'), 'must name at least one day');
      unique(weekdays, join(field, 'weekdays'), 'day');
      const mondayFirst = (d: Weekday) => (WEEKDAYS.indexOf(d) + 6) % 7;
      weekdays.sort((a, b) => mondayFirst(a) - mondayFirst(b));
      return { kind, weekdays, at: f.at as string };
    }
    case 'monthly': {
      const f = object(value, field, ['kind', 'dayOfMonth', 'at']);
      parseTimeOfDay(f.at, join(field, 'at'));
      return { kind, dayOfMonth: integer(f.dayOfMonth, join(field, 'dayOfMonth'), 1, 31), at: f.at as string };
    }
  }
}

/** The interval of an interval recurrence, in ms. */
export function intervalMs(recurrence: IntervalRecurrence): number {
  return recurrence.every * (recurrence.unit === 'minutes' ? MINUTE_MS : HOUR_MS);
}

/**
 * The longest nominal gap between two fires: the worst-case RPO the schedule promises.
 * Calendar days count as 24 hours (a daylight-saving day may be 23 or 25); monthly is
 * 31 days.
 */
export function nominalRpoMs(schedule: Schedule): number {
  const r = schedule.recurrence;
  switch (r.kind) {
    case 'interval':
      return intervalMs(r);
    case 'daily':
      return DAY_MS;
    case 'weekly': {
      const days = r.weekdays.map((d) => WEEKDAYS.indexOf(d)).sort((a, b) => a - b);
      let gapDays = 0;
      days.forEach((d, i) => {
        const next = i + 1 < days.length ? days[i + 1]! : days[0]! + 7;
        gapDays = Math.max(gapDays, next - d);
      });
      return gapDays * DAY_MS;
    }
    case 'monthly':
      return 31 * DAY_MS;
  }
}

/**
 * Validates and freezes a schedule.
 * @throws INVALID_ARGUMENT with `data.field` naming the bad field; in particular when
 *   `retention.remote` names a site not in `remoteSiteIds`, or `nearSyncEligible` is
 *   given and disagrees with the recurrence
 */
export function createSchedule(spec: ScheduleSpec, field = ''): Schedule {
  const f = object(spec, field, ['kind', 'id', 'recurrence', 'timeZone', 'remoteSiteIds', 'retention', 'nearSyncEligible']);
  kindTag(f, field, 'schedule');
  const recurrence = checkRecurrence(f.recurrence, join(field, 'recurrence'));
  const remoteSiteIds = f.remoteSiteIds === undefined ? [] : list(f.remoteSiteIds, join(field, 'remoteSiteIds'), id);
  unique(remoteSiteIds, join(field, 'remoteSiteIds'), 'site');
  const retention = createRetentionPolicy(f.retention as RetentionPolicySpec, join(field, 'retention'));
  retention.remote.forEach((r, i) => {
    if (!remoteSiteIds.includes(r.siteId)) {
      invalid(join(field, `retention.remote[${i}].siteId`), `names site '${r.siteId}' that this schedule does not replicate to`, { siteId: r.siteId });
    }
  });
  const nearSyncEligible = recurrence.kind === 'interval' && intervalMs(recurrence) <= NEAR_SYNC_MAX_INTERVAL_MS;
  if (f.nearSyncEligible !== undefined && f.nearSyncEligible !== nearSyncEligible) {
    invalid(join(field, 'nearSyncEligible'), `is derived from the recurrence and must be ${nearSyncEligible}`);
  }
  return deepFreeze({
    kind: 'schedule',
    id: id(f.id, join(field, 'id')),
    recurrence,
    timeZone: f.timeZone === undefined ? 'UTC' : checkTimeZone(f.timeZone, join(field, 'timeZone')),
    remoteSiteIds,
    retention,
    nearSyncEligible,
  });
}
