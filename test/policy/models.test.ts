import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assertUniqueMembership,
  createCategoryPolicy,
  createConsistencyGroup,
  createProtectionDomain,
  createRemoteSite,
  createRetentionPolicy,
  createRunbook,
  createSchedule,
  findMembershipViolations,
  fromPolicyJSON,
  snapshotUnits,
  toPolicyJSON,
  type ProtectionDomainSpec,
} from '../../src/policy/index.js';
import { entityArb, remoteSiteArb, scheduleArb } from './arbitraries.js';

const SEED = 0x5eed_0005;
const vol = (id: string) => ({ kind: 'volume' as const, id });
const keep3 = { local: { keepLast: 3 } };

/** Runs `fn` and returns the DrkitError it throws (fails the test if it does not throw). */
function errorOf(fn: () => unknown): { code: string; data: Record<string, unknown> } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; data: Record<string, unknown> };
  }
  throw new Error('expected a throw');
}

function basePd(): ProtectionDomainSpec {
  return {
    id: 'gold',
    protects: { kind: 'entities', entities: [vol('app'), vol('db'), vol('web')] },
    consistencyGroups: [{ id: 'app-db', entities: [vol('app'), vol('db')], consistency: 'application' }],
    remoteSites: [{ id: 'dr', address: 'dr.example.com:7443', credentialsRef: 'vault:dr' }],
    schedules: [
      { id: 'hourly', recurrence: { kind: 'interval', every: 1, unit: 'hours' }, retention: keep3 },
      { id: 'daily', recurrence: { kind: 'daily', at: '01:00' }, timeZone: 'Europe/Berlin', remoteSiteIds: ['dr'], retention: { local: { keepLast: 7 }, remote: [{ siteId: 'dr', rule: { tiers: [{ unit: 'day', count: 30 }] } }] } },
    ],
  };
}

describe('policy models: validation', () => {
  it('builds frozen, kind-tagged models with defaults', () => {
    const pd = createProtectionDomain(basePd());
    expect(pd.kind).toBe('protection-domain');
    expect(pd.name).toBe('gold');
    expect(Object.isFrozen(pd)).toBe(true);
    expect(Object.isFrozen(pd.schedules[1]!.retention.remote[0]!.rule.tiers)).toBe(true);
    expect(pd.schedules[0]!.timeZone).toBe('UTC');
    expect(pd.remoteSites[0]!.options).toEqual({ storageOnly: false });
    expect(pd.consistencyGroups[0]!.consistency).toBe('application');
    expect(snapshotUnits(pd)).toEqual([{ groupId: 'app-db', entities: [vol('app'), vol('db')] }, { groupId: undefined, entities: [vol('web')] }]);
  });

  it('marks schedules of 15 minutes or less NearSync-eligible (seed), and only those', () => {
    const mk = (every: number, unit: 'minutes' | 'hours') => createSchedule({ id: 's', recurrence: { kind: 'interval', every, unit }, retention: keep3 });
    expect(mk(1, 'minutes').nearSyncEligible).toBe(true);
    expect(mk(15, 'minutes').nearSyncEligible).toBe(true);
    expect(mk(16, 'minutes').nearSyncEligible).toBe(false);
    expect(mk(1, 'hours').nearSyncEligible).toBe(false);
    expect(createSchedule({ id: 's', recurrence: { kind: 'daily', at: '00:00' }, retention: keep3 }).nearSyncEligible).toBe(false);
    expect(errorOf(() => createSchedule({ id: 's', recurrence: { kind: 'interval', every: 5, unit: 'minutes' }, retention: keep3, nearSyncEligible: false }))).toMatchObject({
      code: 'INVALID_ARGUMENT', data: { field: 'nearSyncEligible' },
    });
  });

  it('seed rule: a remote retention or replication needs a remote site configured on the PD', () => {
    const noSite = { ...basePd(), remoteSites: [] };
    expect(errorOf(() => createProtectionDomain(noSite))).toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'schedules[1].remoteSiteIds[0]', siteId: 'dr' } });
    // A schedule cannot keep remote retention for a site it does not replicate to.
    const pd = basePd();
    const sched = { ...pd.schedules![1]!, remoteSiteIds: [] };
    expect(errorOf(() => createProtectionDomain({ ...pd, schedules: [sched] }))).toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'schedules[0].retention.remote[0].siteId' } });
    // Same rule for category policies.
    expect(errorOf(() => createCategoryPolicy({ id: 'p', schedule: { id: 's', recurrence: { kind: 'daily', at: '01:00' }, remoteSiteIds: ['x'], retention: keep3 } }))).toMatchObject({
      code: 'INVALID_ARGUMENT', data: { field: 'schedule.remoteSiteIds[0]' },
    });
  });

  it('rejects bad input with INVALID_ARGUMENT naming the field', () => {
    const cases: [() => unknown, string][] = [
      [() => createSchedule({ id: 's', recurrence: { kind: 'daily', at: '24:00' }, retention: keep3 }), 'recurrence.at'],
      [() => createSchedule({ id: 's', recurrence: { kind: 'daily', at: '7:00' }, retention: keep3 }), 'recurrence.at'],
      [() => createSchedule({ id: 's', recurrence: { kind: 'monthly', dayOfMonth: 32, at: '07:00' }, retention: keep3 }), 'recurrence.dayOfMonth'],
      [() => createSchedule({ id: 's', recurrence: { kind: 'weekly', weekdays: [], at: '07:00' }, retention: keep3 }), 'recurrence.weekdays'],
      [() => createSchedule({ id: 's', recurrence: { kind: 'weekly', weekdays: ['mon', 'mon'], at: '07:00' }, retention: keep3 }), 'recurrence.weekdays[1]'],
      [() => createSchedule({ id: 's', recurrence: { kind: 'interval', every: 0, unit: 'minutes' }, retention: keep3 }), 'recurrence.every'],
      [() => createSchedule({ id: 's', recurrence: { kind: 'daily', at: '01:00' }, timeZone: 'Mars/Olympus', retention: keep3 }), 'timeZone'],
      [() => createSchedule({ id: '', recurrence: { kind: 'daily', at: '01:00' }, retention: keep3 }), 'id'],
      [() => createSchedule({ id: 's', recurrence: { kind: 'yearly', at: '01:00' } as never, retention: keep3 }), 'recurrence.kind'],
      [() => createSchedule({ id: 's', recurrence: { kind: 'daily', at: '01:00' }, retention: keep3, extra: 1 } as never), 'extra'],
      [() => createRetentionPolicy({ local: {} }), 'local'],
      [() => createRetentionPolicy({ local: { keepLast: -1 } }), 'local.keepLast'],
      [() => createRetentionPolicy({ local: { tiers: [{ unit: 'day', count: 3 }, { unit: 'day', count: 4 }] } }), 'local.tiers[1]'],
      [() => createRetentionPolicy({ local: { tiers: [{ unit: 'fortnight' as never, count: 3 }] } }), 'local.tiers[0].unit'],
      [() => createRemoteSite({ id: 'dr', address: '', credentialsRef: 'c' }), 'address'],
      [() => createRemoteSite({ id: 'dr', address: 'a', credentialsRef: 'c', options: { maxBytesPerSecond: 0 } }), 'options.maxBytesPerSecond'],
      [() => createConsistencyGroup({ id: 'g', entities: [] }), 'entities'],
      [() => createConsistencyGroup({ id: 'g', entities: [{ kind: 'vm' as never, id: 'x' }] }), 'entities[0].kind'],
      [() => createProtectionDomain({ ...basePd(), consistencyGroups: [{ id: 'g', entities: [vol('other')] }] }), 'consistencyGroups[0].entities[0]'],
      [() => createProtectionDomain({ ...basePd(), consistencyGroups: [{ id: 'g', entities: [vol('app')] }, { id: 'h', entities: [vol('app')] }] }), 'consistencyGroups[1].entities[0]'],
      [() => createProtectionDomain({ ...basePd(), protects: { kind: 'entities', entities: [vol('a'), vol('a')] } }), 'protects.entities[1]'],
      [() => createProtectionDomain({ ...basePd(), schedules: [basePd().schedules![0]!, basePd().schedules![0]!] }), 'schedules[1]'],
      [() => createCategoryPolicy({ id: 'p', priority: 1.5, schedule: { id: 's', recurrence: { kind: 'daily', at: '01:00' }, retention: keep3 } }), 'priority'],
      [() => createRunbook({ id: 'r', stages: [] }), 'stages'],
      [() => createRunbook({ id: 'r', stages: [{ entities: [{ entity: vol('a') }] }] }), 'stages[0].entities[0].targetSiteId'],
      [() => createRunbook({ id: 'r', defaults: { targetSiteId: 'dr' }, stages: [{ entities: [{ entity: vol('a') }] }, { entities: [{ entity: vol('a') }] }] }), 'stages[1].entities[0].entity'],
      [() => createRunbook({ id: 'r', defaults: { targetSiteId: 'dr' }, stages: [{ entities: [{ entity: vol('a'), mode: 'restore', clonePrefix: 'x-' }] }] }), 'stages[0].entities[0].clonePrefix'],
      [() => createRunbook({ id: 'r', defaults: { targetSiteId: 'dr' }, stages: [{ delayBeforeMs: -5, entities: [{ entity: vol('a') }] }] }), 'stages[0].delayBeforeMs'],
    ];
    for (const [fn, field] of cases) {
      const err = errorOf(fn);
      expect(err, field).toMatchObject({ code: 'INVALID_ARGUMENT', data: { field } });
    }
  });

  it('finds entities in several protection domains, and containers protected twice', () => {
    const a = createProtectionDomain({ id: 'a', protects: { kind: 'entities', entities: [vol('x'), vol('y')] } });
    const b = createProtectionDomain({ id: 'b', protects: { kind: 'entities', entities: [vol('y'), { kind: 'file', id: 'x' }] } });
    const c = createProtectionDomain({ id: 'c', protects: { kind: 'container', containerId: 'ctr1' } });
    const d = createProtectionDomain({ id: 'd', protects: { kind: 'container', containerId: 'ctr1' } });
    expect(findMembershipViolations([a, c])).toEqual([]);
    expect(findMembershipViolations([a, b, c, d], { containerOf: (e) => (e.id === 'x' && e.kind === 'volume' ? 'ctr1' : undefined) })).toEqual([
      { kind: 'entity-in-protected-container', entity: vol('x'), domainId: 'a', containerId: 'ctr1', containerDomainId: 'c' },
      { kind: 'entity-in-several-domains', entity: vol('y'), domainIds: ['a', 'b'] },
      { kind: 'container-in-several-domains', containerId: 'ctr1', domainIds: ['c', 'd'] },
    ]);
    expect(errorOf(() => assertUniqueMembership([a, b]))).toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'protectionDomains' } });
  });
});

describe(`policy models: JSON (seed ${SEED})`, () => {
  const pdArb = fc
    .record({
      entities: fc.uniqueArray(entityArb, { minLength: 1, maxLength: 6, selector: (e) => `${e.kind}:${e.id}` }),
      siteCount: fc.integer({ min: 0, max: 3 }),
    })
    .chain(({ entities, siteCount }) => {
      const siteIds = Array.from({ length: siteCount }, (_, i) => `site-${i}`);
      return fc.record({
        id: fc.constant('pd'),
        protects: fc.constant({ kind: 'entities' as const, entities }),
        consistencyGroups: fc.subarray(entities, { minLength: 1 }).map((members) => [{ id: 'cg', entities: members }]),
        remoteSites: fc.tuple(...siteIds.map(remoteSiteArb)),
        schedules: fc.tuple(scheduleArb('s1', siteIds), scheduleArb('s2', siteIds)),
      });
    });

  it('round-trips every model exactly, and re-validates on read', () => {
    fc.assert(
      fc.property(pdArb, (spec) => {
        const pd = createProtectionDomain(spec);
        const back = fromPolicyJSON(toPolicyJSON(pd), 'protection-domain');
        expect(back).toStrictEqual(pd);
        expect(Object.isFrozen(back)).toBe(true);
        for (const s of pd.schedules) expect(fromPolicyJSON(toPolicyJSON(s))).toStrictEqual(s);
        for (const r of pd.remoteSites) expect(fromPolicyJSON(toPolicyJSON(r))).toStrictEqual(r);
        expect(fromPolicyJSON(toPolicyJSON(pd.consistencyGroups[0]!))).toStrictEqual(pd.consistencyGroups[0]);
        expect(fromPolicyJSON(toPolicyJSON(pd.schedules[0]!.retention))).toStrictEqual(pd.schedules[0]!.retention);
      }),
      { seed: SEED, numRuns: 150 },
    );
    const policy = createCategoryPolicy({ id: 'p', categories: [{ key: 'tier', value: 'gold' }], schedule: { id: 's', recurrence: { kind: 'daily', at: '01:00' }, retention: keep3 } });
    expect(fromPolicyJSON(toPolicyJSON(policy))).toStrictEqual(policy);
    const runbook = createRunbook({ id: 'r', defaults: { targetSiteId: 'dr' }, stages: [{ name: 'db', entities: [{ entity: vol('db') }] }, { delayBeforeMs: 60_000, entities: [{ entity: vol('app'), clonePrefix: 'test-' }] }] });
    expect(runbook.stages[1]!.name).toBe('stage 2');
    expect(fromPolicyJSON(toPolicyJSON(runbook))).toStrictEqual(runbook);
  });

  it('refuses unknown versions with FORMAT_VERSION and bad documents with INVALID_ARGUMENT', () => {
    const site = createRemoteSite({ id: 'dr', address: 'a:1', credentialsRef: 'c' });
    const doc = JSON.parse(toPolicyJSON(site));
    expect(doc.formatVersion).toBe(1);
    expect(errorOf(() => fromPolicyJSON(JSON.stringify({ ...doc, formatVersion: 2 })))).toMatchObject({ code: 'FORMAT_VERSION', data: { field: 'formatVersion' } });
    expect(errorOf(() => fromPolicyJSON(JSON.stringify({ ...doc, formatVersion: undefined })))).toMatchObject({ code: 'FORMAT_VERSION' });
    expect(errorOf(() => fromPolicyJSON('{'))).toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'json' } });
    expect(errorOf(() => fromPolicyJSON(JSON.stringify({ ...doc, kind: 'toaster' })))).toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'kind' } });
    expect(errorOf(() => fromPolicyJSON(JSON.stringify(doc), 'schedule'))).toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'kind' } });
    expect(errorOf(() => fromPolicyJSON(JSON.stringify({ ...doc, address: 7 })))).toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'address' } });
    expect(errorOf(() => fromPolicyJSON(JSON.stringify({ ...doc, __proto__x: 1 })))).toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: '__proto__x' } });
  });
});
