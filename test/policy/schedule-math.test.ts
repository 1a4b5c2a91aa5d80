import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSchedule, fireTimesBetween, latestDueFireMs, nextFireMs, previousFireMs, type Schedule, type ScheduleSpec } from '../../src/policy/index.js';
import { recurrenceArb } from './arbitraries.js';

const SEED = 0x5eed_0105;
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const keep = { local: { keepLast: 1 } };
const iso = (t: number) => new Date(t).toISOString();

function schedule(recurrence: ScheduleSpec['recurrence'], timeZone = 'UTC'): Schedule {
  return createSchedule({ id: 's', recurrence, timeZone, retention: keep });
}

interface Wall { readonly t: number; readonly y: number; readonly mo: number; readonly d: number; readonly minuteOfDay: number; readonly weekday: string }

/** Local wall clock of every minute of [fromMs, toMs), read with Intl formatToParts (independent of the implementation's parsing). Cached: windows repeat. */
const wallCache = new Map<string, Wall[]>();
function wallsOf(zone: string, fromMs: number, toMs: number): Wall[] {
  const key = `${zone}/${fromMs}/${toMs}`;
  let walls = wallCache.get(key);
  if (walls === undefined) {
    const fmt = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', weekday: 'short' });
    walls = [];
    for (let t = fromMs; t < toMs; t += MIN) {
      const p = Object.fromEntries(fmt.formatToParts(t).map((x) => [x.type, x.value]));
      walls.push({ t, y: +p.year!, mo: +p.month!, d: +p.day!, minuteOfDay: (+p.hour! % 24) * 60 + +p.minute!, weekday: p.weekday!.toLowerCase().slice(0, 3) });
    }
    wallCache.set(key, walls);
  }
  return walls;
}

/**
 * The brute-force model: walk minute by minute over the local wall clock and fire the
 * first time the clock reaches or passes `at` on an eligible local day. The walk starts a
 * day before the compared window so a day's first crossing is seen before the window.
 */
function bruteForceFires(s: Schedule, day: number): { fromMs: number; toMs: number; fires: number[] } {
  const r = s.recurrence;
  if (r.kind === 'interval') throw new Error('calendar schedules only');
  const fromMs = day - DAY;
  const toMs = day + 2 * DAY;
  const [h, m] = r.at.split(':').map(Number) as [number, number];
  const at = h * 60 + m;
  const eligible = (w: Wall) => {
    if (r.kind === 'weekly') return (r.weekdays as readonly string[]).includes(w.weekday);
    if (r.kind === 'monthly') return w.d === Math.min(r.dayOfMonth, new Date(Date.UTC(w.y, w.mo, 0)).getUTCDate());
    return true;
  };
  const fired = new Set<string>();
  const fires: number[] = [];
  const walls = wallsOf(s.timeZone, fromMs - DAY, toMs);
  let prev = walls[0]!;
  for (const w of walls.slice(1)) {
    const dayKey = `${w.y}-${w.mo}-${w.d}`;
    const sameDay = prev.y === w.y && prev.mo === w.mo && prev.d === w.d;
    // Reached or passed `at` this minute: the clock crossed it within the day, or the day began past it (a skipped midnight).
    const crossed = w.minuteOfDay >= at && (!sameDay || prev.minuteOfDay < at);
    if (crossed && eligible(w) && !fired.has(dayKey)) {
      fired.add(dayKey);
      if (w.t >= fromMs) fires.push(w.t);
    }
    prev = w;
  }
  return { fromMs, toMs, fires };
}

function checkAgainstModel(s: Schedule, day: number): void {
  const { fromMs, toMs, fires } = bruteForceFires(s, day);
  expect(fireTimesBetween(s, fromMs, toMs).map(iso), `${JSON.stringify(s.recurrence)} ${s.timeZone} around ${iso(day)}`).toEqual(fires.map(iso));
  for (const t of fires) {
    expect(previousFireMs(s, t)).toBe(t);
    expect(previousFireMs(s, t - 1)).toBeLessThan(t);
    expect(nextFireMs(s, t - 1)).toBe(t);
  }
}

// Daylight-saving change days: Europe/Berlin (last Sundays of March and October),
// America/New_York (second Sunday of March, first Sunday of November), Australia/Lord_Howe
// (half-hour shifts, first Sundays of April and October). Plus month ends, for monthly.
const DST_DAYS: Record<string, number[]> = {
  'Europe/Berlin': [Date.UTC(2024, 2, 31), Date.UTC(2024, 9, 27), Date.UTC(2025, 2, 30), Date.UTC(2025, 9, 26)],
  'America/New_York': [Date.UTC(2024, 2, 10), Date.UTC(2024, 10, 3), Date.UTC(2025, 2, 9), Date.UTC(2025, 10, 2)],
  'Australia/Lord_Howe': [Date.UTC(2024, 3, 7), Date.UTC(2024, 9, 6)],
};
const MONTH_ENDS = [Date.UTC(2024, 1, 29), Date.UTC(2025, 1, 28), Date.UTC(2024, 3, 30), Date.UTC(2024, 11, 31)];

describe(`schedule math (seed ${SEED})`, () => {
  it('daily 02:30 in Europe/Berlin: once at 03:00 CEST on spring-forward day, once (first occurrence) on fall-back day', () => {
    const s = schedule({ kind: 'daily', at: '02:30' }, 'Europe/Berlin');
    expect(fireTimesBetween(s, Date.UTC(2024, 2, 30), Date.UTC(2024, 3, 1)).map(iso)).toEqual(['2024-03-30T01:30:00.000Z', '2024-03-31T01:00:00.000Z']);
    expect(fireTimesBetween(s, Date.UTC(2024, 9, 26), Date.UTC(2024, 9, 28)).map(iso)).toEqual(['2024-10-26T00:30:00.000Z', '2024-10-27T00:30:00.000Z']);
  });

  it('daily 02:30 in America/New_York across both changes', () => {
    const s = schedule({ kind: 'daily', at: '02:30' }, 'America/New_York');
    expect(fireTimesBetween(s, Date.UTC(2024, 2, 10), Date.UTC(2024, 2, 11)).map(iso)).toEqual(['2024-03-10T07:00:00.000Z']); // 03:00 EDT
    // New York falls back at 02:00 EDT to 01:00 EST: 02:30 occurs once (EST), 01:30 twice (fires at the EDT one).
    expect(fireTimesBetween(s, Date.UTC(2024, 10, 3), Date.UTC(2024, 10, 4)).map(iso)).toEqual(['2024-11-03T07:30:00.000Z']);
    const early = schedule({ kind: 'daily', at: '01:30' }, 'America/New_York');
    expect(fireTimesBetween(early, Date.UTC(2024, 10, 3), Date.UTC(2024, 10, 5)).map(iso)).toEqual(['2024-11-03T05:30:00.000Z', '2024-11-04T06:30:00.000Z']);
  });

  it('monthly on the 31st fires on the last day of shorter months', () => {
    const s = schedule({ kind: 'monthly', dayOfMonth: 31, at: '12:00' });
    expect(fireTimesBetween(s, Date.UTC(2024, 0, 1), Date.UTC(2025, 0, 1)).map((t) => iso(t).slice(0, 10))).toEqual([
      '2024-01-31', '2024-02-29', '2024-03-31', '2024-04-30', '2024-05-31', '2024-06-30', '2024-07-31', '2024-08-31', '2024-09-30', '2024-10-31', '2024-11-30', '2024-12-31',
    ]);
  });

  it('agrees with the minute-by-minute model for every half hour of the day on every DST change day', () => {
    const times = [...Array.from({ length: 48 }, (_, i) => `${String(i >> 1).padStart(2, '0')}:${i % 2 ? '30' : '00'}`), '01:59', '02:59', '23:59'];
    for (const [zone, days] of Object.entries(DST_DAYS)) {
      for (const day of days) {
        for (const at of times) checkAgainstModel(schedule({ kind: 'daily', at }, zone), day);
        checkAgainstModel(schedule({ kind: 'weekly', weekdays: ['sun', 'mon'], at: '02:30' }, zone), day);
      }
    }
  });

  it('agrees with the minute-by-minute model for random calendar schedules around DST changes and month ends', () => {
    const zoneDays = Object.entries(DST_DAYS).flatMap(([zone, days]) => [...days, ...MONTH_ENDS].map((day) => [zone, day] as const));
    fc.assert(
      fc.property(recurrenceArb.filter((r) => r.kind !== 'interval'), fc.constantFrom(...zoneDays), (recurrence, [zone, day]) => {
        checkAgainstModel(schedule(recurrence, zone), day);
      }),
      { seed: SEED, numRuns: 150 },
    );
  });

  it('next/previous fire are consistent for every recurrence (interval included)', () => {
    fc.assert(
      fc.property(recurrenceArb, fc.constantFrom('Europe/Berlin', 'America/New_York', 'UTC'), fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) }), (recurrence, zone, t) => {
        const s = schedule(recurrence, zone);
        const next = nextFireMs(s, t);
        const prev = previousFireMs(s, t)!;
        expect(next).toBeGreaterThan(t);
        expect(prev).toBeLessThanOrEqual(t);
        expect(previousFireMs(s, next)).toBe(next);
        expect(previousFireMs(s, next - 1)).toBe(prev);
        expect(nextFireMs(s, prev)).toBe(next);
        if (recurrence.kind === 'interval') {
          const period = recurrence.every * (recurrence.unit === 'minutes' ? MIN : HOUR);
          expect(next - prev).toBe(period);
          expect((next - recurrence.anchorMs!) % period).toBe(0);
        }
        expect(fireTimesBetween(s, prev, next + 1)).toEqual([prev, next]);
        expect(fireTimesBetween(s, prev + 1, next)).toEqual([]);
      }),
      { seed: SEED + 1, numRuns: 300 },
    );
  });

  it('interval schedules count elapsed time: every hour is 23 fires on a 23-hour local day', () => {
    const s = schedule({ kind: 'interval', every: 1, unit: 'hours' }, 'Europe/Berlin');
    // 2024-03-31 local day in Berlin: 2024-03-30T23:00Z .. 2024-03-31T22:00Z (23 hours).
    expect(fireTimesBetween(s, Date.UTC(2024, 2, 30, 23), Date.UTC(2024, 2, 31, 22))).toHaveLength(23);
  });

  it('latestDueFireMs: a missed schedule is owed once, at its latest fire', () => {
    const s = schedule({ kind: 'interval', every: 15, unit: 'minutes' });
    const last = Date.UTC(2024, 0, 1, 0, 0);
    expect(latestDueFireMs(s, last, last + 14 * MIN)).toBeUndefined();
    expect(latestDueFireMs(s, last, last + 15 * MIN)).toBe(last + 15 * MIN);
    // Down for a day and a bit: one fire is due, the latest one.
    expect(latestDueFireMs(s, last, last + DAY + 7 * MIN)).toBe(last + DAY);
    expect(latestDueFireMs(s, undefined, last + 7 * MIN)).toBe(last);
    const d = schedule({ kind: 'daily', at: '02:30' }, 'Europe/Berlin');
    expect(latestDueFireMs(d, Date.UTC(2024, 2, 29, 1, 30), Date.UTC(2024, 3, 2))).toBe(Date.UTC(2024, 3, 1, 0, 30));
  });

  it('rejects bad instants and oversized ranges with INVALID_ARGUMENT', () => {
    const s = schedule({ kind: 'interval', every: 1, unit: 'minutes' });
    expect(() => nextFireMs(s, -1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', data: expect.objectContaining({ field: 'afterMs' }) }));
    expect(() => nextFireMs(s, 1.5)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => fireTimesBetween(s, 10, 5)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', data: expect.objectContaining({ field: 'toMs' }) }));
    expect(() => fireTimesBetween(s, 0, DAY, { maxCount: 100 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', data: expect.objectContaining({ field: 'maxCount' }) }));
    expect(fireTimesBetween(s, 0, 100 * MIN, { maxCount: 100 })).toHaveLength(100);
  });
});
