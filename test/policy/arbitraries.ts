/** fast-check arbitraries of valid policy specs, shared by the policy tests. */
import fc from 'fast-check';
import type { EntityRef, RemoteSiteSpec, RetentionPolicySpec, ScheduleSpec, Weekday } from '../../src/policy/index.js';

export const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata'] as const;

export const idArb = fc.stringMatching(/^[a-z][a-z0-9-]{0,11}$/);

export const entityArb: fc.Arbitrary<EntityRef> = fc.record({ kind: fc.constantFrom('volume', 'volume-group', 'file'), id: idArb });

export const timeOfDayArb = fc.tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 })).map(
  ([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`,
);

export const recurrenceArb: fc.Arbitrary<ScheduleSpec['recurrence']> = fc.oneof(
  fc.record({ kind: fc.constant('interval' as const), every: fc.integer({ min: 1, max: 120 }), unit: fc.constantFrom('minutes' as const, 'hours' as const), anchorMs: fc.integer({ min: 0, max: 10_000_000 }) }),
  fc.record({ kind: fc.constant('daily' as const), at: timeOfDayArb }),
  fc.record({ kind: fc.constant('weekly' as const), weekdays: fc.uniqueArray(fc.constantFrom<Weekday>('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'), { minLength: 1, maxLength: 7 }), at: timeOfDayArb }),
  fc.record({ kind: fc.constant('monthly' as const), dayOfMonth: fc.integer({ min: 1, max: 31 }), at: timeOfDayArb }),
);

export const ruleArb = fc
  .record({
    keepLast: fc.integer({ min: 0, max: 50 }),
    tiers: fc.uniqueArray(fc.record({ unit: fc.constantFrom('hour' as const, 'day' as const, 'week' as const, 'month' as const, 'year' as const), count: fc.integer({ min: 1, max: 40 }) }), { selector: (t) => t.unit, maxLength: 5 }),
  })
  .filter((r) => r.keepLast > 0 || r.tiers.length > 0);

export function retentionArb(siteIds: readonly string[]): fc.Arbitrary<RetentionPolicySpec> {
  return fc.record({
    local: ruleArb,
    remote: fc.subarray([...siteIds]).chain((ids) => fc.tuple(...ids.map((siteId) => ruleArb.map((rule) => ({ siteId, rule }))))),
    timeZone: fc.constantFrom(...ZONES),
  });
}

export function scheduleArb(scheduleId: string, siteIds: readonly string[]): fc.Arbitrary<ScheduleSpec> {
  return fc.subarray([...siteIds]).chain((remoteSiteIds) =>
    fc.record({ id: fc.constant(scheduleId), recurrence: recurrenceArb, timeZone: fc.constantFrom(...ZONES), remoteSiteIds: fc.constant(remoteSiteIds), retention: retentionArb(remoteSiteIds) }),
  );
}

export const remoteSiteArb = (siteId: string): fc.Arbitrary<RemoteSiteSpec> =>
  fc.record(
    {
      id: fc.constant(siteId),
      address: fc.constantFrom('dr.example.com:7443', 'tls://10.0.0.2:7443'),
      credentialsRef: fc.constantFrom('vault:dr-site', 'env:DR_KEY'),
      options: fc.record({ storageOnly: fc.boolean(), proxyAddress: fc.constantFrom('proxy:3128'), maxBytesPerSecond: fc.integer({ min: 1, max: 1e9 }) }, { requiredKeys: [] }),
    },
    { requiredKeys: ['id', 'address', 'credentialsRef'] },
  );
