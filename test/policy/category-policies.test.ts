import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCategoryPolicy, createRunbook, dryRun, resolvePolicies, type CategoryPolicy, type Recurrence } from '../../src/policy/index.js';

const SEED = 0x5eed_0305;
const vol = (id: string) => ({ kind: 'volume' as const, id });
const keep = { local: { keepLast: 3 } };

function policy(id: string, labels: string[], recurrence: Recurrence | { kind: 'interval'; every: number; unit: 'minutes' | 'hours' }, priority = 0): CategoryPolicy {
  return createCategoryPolicy({
    id,
    priority,
    categories: labels.map((l) => ({ key: l.split(':')[0]!, value: l.split(':')[1]! })),
    schedule: { id: `${id}-s`, recurrence, retention: keep },
  });
}

describe(`resolvePolicies (seed ${SEED})`, () => {
  const gold = policy('gold', ['tier:gold'], { kind: 'interval', every: 15, unit: 'minutes' });
  const silver = policy('silver', ['tier:silver', 'app:erp'], { kind: 'interval', every: 1, unit: 'hours' });
  const pinned = policy('pinned', ['legal:hold'], { kind: 'daily', at: '01:00' }, 10);
  const twin = policy('a-twin', ['app:erp'], { kind: 'interval', every: 1, unit: 'hours' });
  const fallback = policy('default', [], { kind: 'daily', at: '03:00' });
  const assignments = [
    { entity: vol('db'), categories: [{ key: 'tier', value: 'gold' }] },
    { entity: vol('erp'), categories: [{ key: 'tier', value: 'gold' }, { key: 'app', value: 'erp' }] },
    { entity: vol('vault'), categories: [{ key: 'tier', value: 'gold' }, { key: 'legal', value: 'hold' }] },
    { entity: vol('ledger'), categories: [{ key: 'app', value: 'erp' }] },
    { entity: vol('misc'), categories: [{ key: 'team', value: 'x' }] },
  ];

  it('applies the documented precedence: priority, then shortest RPO, then policy id; default otherwise', () => {
    const r = resolvePolicies([vol('db'), vol('erp'), vol('vault'), vol('ledger'), vol('misc'), vol('new')], assignments, [gold, silver, pinned, twin], fallback);
    expect(r.map((x) => [x.entity.id, x.policy?.id, x.rule])).toEqual([
      ['db', 'gold', 'only-match'],
      ['erp', 'gold', 'shortest-rpo'],
      ['vault', 'pinned', 'priority'],
      ['ledger', 'a-twin', 'policy-id'],
      ['misc', 'default', 'default'],
      ['new', 'default', 'default'],
    ]);
    expect(r[1]!.matchedPolicyIds).toEqual(['gold', 'a-twin', 'silver']);
    expect(r[1]!.matchedCategories).toEqual(['tier:gold']);
    expect(r[1]!.description).toMatch(/shortest RPO/);
    expect(resolvePolicies([vol('misc')], assignments, [gold])[0]).toMatchObject({ policy: undefined, rule: 'unprotected' });
  });

  it('never depends on the order of policies or labels', () => {
    const policies = [gold, silver, pinned, twin];
    fc.assert(
      fc.property(fc.shuffledSubarray(policies, { minLength: 4 }), fc.boolean(), (shuffled, reverseLabels) => {
        const a = reverseLabels ? assignments.map((x) => ({ ...x, categories: [...x.categories].reverse() })) : assignments;
        const entities = assignments.map((x) => x.entity);
        expect(resolvePolicies(entities, a, shuffled, fallback)).toEqual(resolvePolicies(entities, assignments, policies, fallback));
      }),
      { seed: SEED, numRuns: 50 },
    );
  });

  it('rejects repeated entities, assignments and policy ids with INVALID_ARGUMENT', () => {
    expect(() => resolvePolicies([vol('a'), vol('a')], [], [])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', data: expect.objectContaining({ field: 'entities[1]' }) }));
    expect(() => resolvePolicies([vol('a')], [{ entity: vol('a'), categories: [] }, { entity: vol('a'), categories: [] }], [])).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', data: expect.objectContaining({ field: 'categoryAssignments[1].entity' }) }),
    );
    expect(() => resolvePolicies([], [], [gold, gold])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', data: expect.objectContaining({ field: 'policies[1]' }) }));
  });
});

describe('runbook dry run', () => {
  const runbook = createRunbook({
    id: 'erp-failover',
    defaults: { targetSiteId: 'dr', clonePrefix: 'test-' },
    stages: [
      { name: 'databases', entities: [{ entity: vol('db') }, { entity: vol('ledger'), mode: 'restore' }] },
      { name: 'apps', delayBeforeMs: 120_000, entities: [{ entity: vol('erp'), clonePrefix: 'dr-' }, { entity: vol('web'), targetSiteId: 'backup' }] },
    ],
  });
  const points = [
    { siteId: 'dr', entity: vol('db'), snapshots: [{ id: 'db-1', createdMs: 1000, groupId: 'g1' }, { id: 'db-2', createdMs: 2000, groupId: 'g2' }] },
    { siteId: 'dr', entity: vol('ledger'), snapshots: [{ id: 'l-1', createdMs: 1500 }] },
    { siteId: 'dr', entity: vol('erp'), snapshots: [{ id: 'erp-1', createdMs: 1000, groupId: 'g1' }, { id: 'erp-2', createdMs: 2000, groupId: 'g2' }] },
  ];

  it('lists every step in order, with the latest restore point at or before the point in time', () => {
    const r = dryRun(runbook, { recoveryPoints: points, pointInTimeMs: 1800, knownSiteIds: ['dr', 'backup'] });
    expect(r.steps.map((s) => s.kind)).toEqual([
      'begin-stage', 'select-recovery-point', 'clone', 'select-recovery-point', 'restore', 'end-stage',
      'wait', 'begin-stage', 'select-recovery-point', 'clone', 'blocked', 'end-stage',
    ]);
    const clones = r.steps.filter((s) => s.kind === 'clone');
    expect(clones.map((s) => [s.snapshotId, s.cloneName])).toEqual([['db-1', 'test-db'], ['erp-1', 'dr-erp']]);
    expect(r.problems).toEqual([expect.objectContaining({ kind: 'blocked', problem: 'no-recovery-point', siteId: 'backup', entity: vol('web') })]);
    expect(r.ready).toBe(false);
    expect(r.totalDelayMs).toBe(120_000);
    expect(r.steps.every((s) => s.description.length > 0)).toBe(true);
    expect(r.steps[7]).toMatchObject({ kind: 'begin-stage', minOffsetMs: 120_000 });
  });

  it('is ready when every entity has a restore point at a known site; unknown sites block', () => {
    const r = dryRun(runbook, { recoveryPoints: [...points, { siteId: 'backup', entity: vol('web'), snapshots: [{ id: 'w-1', createdMs: 5 }] }] });
    expect(r.ready).toBe(true);
    expect(r.steps.filter((s) => s.kind === 'select-recovery-point').map((s) => s.snapshotId)).toEqual(['db-2', 'l-1', 'erp-2', 'w-1']);
    const blocked = dryRun(runbook, { recoveryPoints: points, knownSiteIds: ['dr'] });
    expect(blocked.problems).toEqual([expect.objectContaining({ problem: 'unknown-site', siteId: 'backup' })]);
    expect(() => dryRun(runbook, { recoveryPoints: [{ siteId: 'dr', entity: vol('db'), snapshots: [{ id: 'x', createdMs: -1 }] }] })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', data: expect.objectContaining({ field: 'context.recoveryPoints[0].snapshots[0].createdMs' }) }),
    );
  });
});
