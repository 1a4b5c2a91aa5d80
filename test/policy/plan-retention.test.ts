import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createRetentionPolicy,
  planRemoteRetention,
  planRetention,
  type RetentionContext,
  type RetentionPlan,
  type RetentionPolicy,
  type RetentionSnapshot,
  type RetentionUnit,
} from '../../src/policy/index.js';
import { ruleArb } from './arbitraries.js';

const SEED = 0x5eed_0205;
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
// Zones whose buckets are whole hours, so the model may walk the clock in hour steps.
const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata'] as const;
const DST_DAYS = [Date.UTC(2024, 2, 31), Date.UTC(2024, 9, 27), Date.UTC(2024, 2, 10), Date.UTC(2024, 10, 3)];

/** Bucket label of `t`, computed independently with Intl formatToParts. */
const labelFormatters = new Map<string, Intl.DateTimeFormat>();
function label(unit: RetentionUnit, t: number, zone: string): string {
  let fmt = labelFormatters.get(zone);
  if (fmt === undefined) {
    fmt = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit' });
    labelFormatters.set(zone, fmt);
  }
  const p = Object.fromEntries(fmt.formatToParts(t).map((x) => [x.type, x.value]));
  if (unit === 'hour') return `${p.year}-${p.month}-${p.day}T${+p.hour! % 24}`;
  if (unit === 'day') return `${p.year}-${p.month}-${p.day}`;
  if (unit === 'month') return `${p.year}-${p.month}`;
  if (unit === 'year') return `${p.year}`;
  const date = Date.UTC(+p.year!, +p.month! - 1, +p.day!);
  return `W${date - ((new Date(date).getUTCDay() + 6) % 7) * DAY}`;
}

/** The trivially correct model of planRetention: ids it keeps. */
function modelKeptIds(policy: RetentionPolicy, rule: RetentionPolicy['local'], snaps: readonly RetentionSnapshot[], nowMs: number, ctx: RetentionContext): Set<string> {
  const unitKey = (s: RetentionSnapshot) => (s.groupId === undefined ? `s:${s.id}` : `g:${s.groupId}`);
  const units = new Map<string, { key: string; time: number; ids: string[] }>();
  for (const s of snaps) {
    const u = units.get(unitKey(s)) ?? { key: unitKey(s), time: 0, ids: [] };
    u.time = Math.max(u.time, s.createdMs);
    u.ids.push(s.id);
    units.set(u.key, u);
  }
  const kept = new Set<string>();
  const keepUnitOf = (id: string) => {
    const s = snaps.find((x) => x.id === id);
    if (s !== undefined) kept.add(unitKey(s));
  };
  for (const id of ctx.replicatingIds ?? []) keepUnitOf(id);
  for (const h of ctx.holds ?? []) keepUnitOf(h.snapshotId);
  for (const site of ctx.sites ?? []) {
    const shared = snaps.filter((s) => site.sharedSnapshotIds?.includes(s.id)).sort((a, b) => b.createdMs - a.createdMs || (a.id < b.id ? 1 : -1));
    if (shared[0] !== undefined) keepUnitOf(shared[0].id);
    if (site.baseSnapshotId !== undefined) keepUnitOf(site.baseSnapshotId);
  }
  const newest = [...units.values()].sort((a, b) => b.time - a.time || (a.key < b.key ? 1 : -1));
  for (const u of newest) if (u.time > nowMs) kept.add(u.key);
  newest.slice(0, rule.keepLast).forEach((u) => kept.add(u.key));
  const past = newest.filter((u) => u.time <= nowMs);
  for (const tier of rule.tiers) {
    // The `count` most recent buckets that exist: walk the clock back an hour at a time.
    const window = new Set<string>();
    const oldest = past.length === 0 ? nowMs : past[past.length - 1]!.time;
    for (let t = nowMs; window.size < tier.count && t >= oldest - HOUR; t -= HOUR) window.add(label(tier.unit, t, policy.timeZone));
    const seen = new Set<string>();
    for (const u of past) {
      const l = label(tier.unit, u.time, policy.timeZone);
      if (window.has(l) && !seen.has(l)) {
        seen.add(l);
        kept.add(u.key);
      }
    }
  }
  return new Set(snaps.filter((s) => kept.has(unitKey(s))).map((s) => s.id));
}

function protectedIds(snaps: readonly RetentionSnapshot[], ctx: RetentionContext): Set<string> {
  const out = new Set<string>([...(ctx.replicatingIds ?? []), ...(ctx.holds ?? []).map((h) => h.snapshotId)]);
  for (const site of ctx.sites ?? []) {
    const shared = snaps.filter((s) => site.sharedSnapshotIds?.includes(s.id)).sort((a, b) => b.createdMs - a.createdMs || (a.id < b.id ? 1 : -1));
    if (shared[0] !== undefined) out.add(shared[0].id);
    if (site.baseSnapshotId !== undefined) out.add(site.baseSnapshotId);
  }
  return new Set(snaps.filter((s) => out.has(s.id)).map((s) => s.id));
}

function checkPlanShape(plan: RetentionPlan, snaps: readonly RetentionSnapshot[]): void {
  const deleted = plan.delete.map((d) => d.id);
  const kept = plan.keep.map((k) => k.id);
  expect(new Set([...deleted, ...kept]).size).toBe(deleted.length + kept.length); // disjoint, no repeats
  expect([...deleted, ...kept].sort()).toEqual(snaps.map((s) => s.id).sort()); // exactly the input
  for (const k of plan.keep) expect(k.reasons.length).toBeGreaterThan(0);
  for (const d of plan.delete) expect(d.reason.length).toBeGreaterThan(0);
  // Groups share one fate.
  const fate = new Map<string, boolean>();
  for (const s of snaps) {
    if (s.groupId === undefined) continue;
    const isKept = kept.includes(s.id);
    expect(fate.get(s.groupId) ?? isKept, `group ${s.groupId}`).toBe(isKept);
    fate.set(s.groupId, isKept);
  }
}

const scenarioArb = fc
  .record({
    zone: fc.constantFrom(...ZONES),
    // Small counts, so windows end inside the snapshots' span and keep-last does not mask the tiers.
    rule: ruleArb.map((r) => ({ keepLast: r.keepLast % 6, tiers: r.tiers.filter((t) => t.unit !== 'year').map((t) => ({ ...t, count: 1 + (t.count % ({ hour: 12, day: 6, week: 3, month: 3 } as Record<string, number>)[t.unit]!) })) }))
      .filter((r) => r.keepLast > 0 || r.tiers.length > 0),
    startMs: fc.constantFrom(...DST_DAYS).chain((d) => fc.integer({ min: d - 10 * DAY, max: d })),
    // Dense (6 hours), medium (3 days) and sparse (20 days) spans, so window edges are exercised.
    spanMin: fc.constantFrom(6 * 60, 3 * 24 * 60, 20 * 24 * 60),
  })
  .chain((base) => fc.record({
    ...Object.fromEntries(Object.entries(base).map(([k, v]) => [k, fc.constant(v)])) as { [K in keyof typeof base]: fc.Arbitrary<(typeof base)[K]> },
    units: fc.array(fc.record({ offsetMin: fc.integer({ min: 0, max: base.spanMin }), members: fc.integer({ min: 1, max: 3 }) }), { maxLength: 40 }),
    nowOffsetMin: fc.integer({ min: 0, max: Math.round(base.spanMin * 1.25) }),
  }))
  .chain((sc) => {
    const snaps: RetentionSnapshot[] = [];
    sc.units.forEach((u, i) => {
      for (let m = 0; m < u.members; m++) snaps.push({ id: `s${i}-${m}`, createdMs: sc.startMs + u.offsetMin * MIN, groupId: u.members > 1 ? `g${i}` : undefined });
    });
    const ids = snaps.map((s) => s.id);
    const pick = ids.length === 0 ? fc.constant([] as string[]) : fc.subarray(ids, { maxLength: Math.min(3, ids.length) });
    const ctxArb: fc.Arbitrary<RetentionContext> = fc.record({
      replicatingIds: pick,
      holds: pick.map((h) => h.map((snapshotId) => ({ snapshotId, reason: 'legal hold' }))),
      sites: fc.array(
        fc.record({ siteId: fc.constantFrom('dr', 'bk'), sharedSnapshotIds: ids.length === 0 ? fc.constant([]) : fc.subarray(ids), baseSnapshotId: ids.length === 0 ? fc.constant(undefined) : fc.option(fc.constantFrom(...ids), { nil: undefined }) }),
        { maxLength: 2 },
      ),
    });
    return fc.record({ sc: fc.constant(sc), snaps: fc.shuffledSubarray(snaps, { minLength: snaps.length }), ctx: ctxArb });
  });

describe(`planRetention (seed ${SEED})`, () => {
  it('matches the model exactly; partitions the input; never deletes protected snapshots; keeps groups whole; is idempotent', () => {
    fc.assert(
      fc.property(scenarioArb, ({ sc, snaps, ctx }) => {
        const policy = createRetentionPolicy({ local: sc.rule, timeZone: sc.zone });
        const nowMs = sc.startMs + sc.nowOffsetMin * MIN;
        const plan = planRetention(policy, snaps, nowMs, ctx);
        checkPlanShape(plan, snaps);
        expect(new Set(plan.keep.map((k) => k.id))).toEqual(modelKeptIds(policy, policy.local, snaps, nowMs, ctx));
        const deleted = new Set(plan.delete.map((d) => d.id));
        for (const id of protectedIds(snaps, ctx)) expect(deleted.has(id), `protected ${id} deleted`).toBe(false);
        // Idempotent: apply the plan, plan again, nothing more to delete.
        const after = snaps.filter((s) => !deleted.has(s.id));
        const again = planRetention(policy, after, nowMs, ctx);
        expect(again.delete).toEqual([]);
        expect(again.keep).toEqual(plan.keep);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('keep-last N keeps exactly min(N, restore points) plus the protected ones', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 5 }), (keepLast, count, holdCount) => {
        const policy = createRetentionPolicy({ local: { keepLast } });
        const snaps = Array.from({ length: count }, (_, i) => ({ id: `s${String(i).padStart(3, '0')}`, createdMs: 1_000_000 + i * HOUR }));
        // Hold the oldest ones, which keep-last would delete.
        const holds = snaps.slice(0, holdCount).map((s) => ({ snapshotId: s.id, reason: 'audit' }));
        const plan = planRetention(policy, snaps, 1_000_000 + count * HOUR, { holds });
        const heldOutsideTopN = Math.max(0, Math.min(holdCount, count - keepLast));
        expect(plan.keep.length).toBe(Math.min(keepLast, count) + heldOutsideTopN);
        expect(plan.keep.filter((k) => k.reasons.some((r) => r.kind === 'keep-last'))).toHaveLength(Math.min(keepLast, count));
      }),
      { seed: SEED + 1, numRuns: 200 },
    );
  });

  it('handles daylight-saving days: snapshots every 15 minutes, hourly 24 + daily 7 in Europe/Berlin and America/New_York', () => {
    const cases = [
      ['Europe/Berlin', Date.UTC(2024, 2, 31)], ['Europe/Berlin', Date.UTC(2024, 9, 27)],
      ['America/New_York', Date.UTC(2024, 2, 10)], ['America/New_York', Date.UTC(2024, 10, 3)],
    ] as const;
    for (const [zone, day] of cases) {
      const policy = createRetentionPolicy({ local: { tiers: [{ unit: 'hour', count: 24 }, { unit: 'day', count: 7 }] }, timeZone: zone });
      const snaps = Array.from({ length: 4 * 24 * 4 }, (_, i) => ({ id: `q${String(i).padStart(4, '0')}`, createdMs: day - 2 * DAY + i * 15 * MIN }));
      for (let nowMs = day - HOUR * 3; nowMs <= day + DAY + HOUR * 3; nowMs += 45 * MIN) {
        const visible = snaps.filter((s) => s.createdMs <= nowMs);
        const plan = planRetention(policy, visible, nowMs);
        checkPlanShape(plan, visible);
        expect(new Set(plan.keep.map((k) => k.id)), `${zone} now=${new Date(nowMs).toISOString()}`).toEqual(modelKeptIds(policy, policy.local, visible, nowMs, {}));
        // 24 distinct existing local hours, each with snapshots: exactly 24 hourly keeps, one per local hour label.
        const hourly = plan.keep.filter((k) => k.reasons.some((r) => r.kind === 'tier' && r.unit === 'hour'));
        expect(hourly).toHaveLength(24);
        const labels = hourly.map((k) => label('hour', visible.find((s) => s.id === k.id)!.createdMs, zone));
        expect(new Set(labels).size).toBe(24);
        expect(planRetention(policy, visible.filter((s) => plan.keep.some((k) => k.id === s.id)), nowMs).delete).toEqual([]);
      }
    }
    // Fall back in Berlin: 02:00-02:59 occurs twice (00:00Z-01:59Z, CEST then CET) and is ONE
    // bucket, stood for by its newest snapshot (02:45 CET = f07); 03:00 CET starts at 02:00Z.
    const policy = createRetentionPolicy({ local: { tiers: [{ unit: 'hour', count: 3 }] }, timeZone: 'Europe/Berlin' });
    const snaps = Array.from({ length: 12 }, (_, i) => ({ id: `f${String(i).padStart(2, '0')}`, createdMs: Date.UTC(2024, 9, 27, 0) + i * 15 * MIN }));
    const plan = planRetention(policy, snaps, Date.UTC(2024, 9, 27, 2, 50));
    expect(plan.keep.map((k) => [k.id, (k.reasons[0] as { bucket: string }).bucket])).toEqual([['f07', '2024-10-27T02:00'], ['f11', '2024-10-27T03:00']]);
  });

  it('keeps the latest snapshot shared with each site, and says why', () => {
    const policy = createRetentionPolicy({ local: { keepLast: 1 }, remote: [{ siteId: 'dr', rule: { keepLast: 2 } }] });
    const snaps = [1, 2, 3, 4, 5].map((i) => ({ id: `s${i}`, createdMs: i * HOUR }));
    const plan = planRetention(policy, snaps, 6 * HOUR, { sites: [{ siteId: 'dr', sharedSnapshotIds: ['s1', 's2'] }, { siteId: 'bk', baseSnapshotId: 's3' }], replicatingIds: ['s4'] });
    expect(plan.keep.map((k) => [k.id, k.reasons.map((r) => r.kind)])).toEqual([
      ['s2', ['replication-base']], ['s3', ['replication-base']], ['s4', ['replicating']], ['s5', ['keep-last']],
    ]);
    expect(plan.delete.map((d) => d.id)).toEqual(['s1']);
    // The remote side keeps by the site's own rule, with the same protections.
    const remote = planRemoteRetention(policy, 'dr', snaps, 6 * HOUR, { sites: [{ siteId: 'source', sharedSnapshotIds: ['s1'] }] });
    expect(remote.keep.map((k) => k.id)).toEqual(['s1', 's4', 's5']);
    // A site without its own rule keeps by the local rule.
    expect(planRemoteRetention(policy, 'other', snaps, 6 * HOUR).keep.map((k) => k.id)).toEqual(['s5']);
  });

  it('rejects malformed input with INVALID_ARGUMENT', () => {
    const policy = createRetentionPolicy({ local: { keepLast: 1 } });
    const bad = (snaps: unknown, ctx: unknown = {}, now = 0) => () => planRetention(policy, snaps as RetentionSnapshot[], now, ctx as RetentionContext);
    const invalid = (field: string) => expect.objectContaining({ code: 'INVALID_ARGUMENT', data: expect.objectContaining({ field }) });
    expect(bad([{ id: 'a', createdMs: 1 }, { id: 'a', createdMs: 2 }])).toThrow(invalid('snapshots[1].id'));
    expect(bad([{ id: 'a', createdMs: -1 }])).toThrow(invalid('snapshots[0].createdMs'));
    expect(bad([{ createdMs: 1 }])).toThrow(invalid('snapshots[0].id'));
    expect(bad([], { holds: [{ snapshotId: 'a' }] })).toThrow(invalid('context.holds[0].reason'));
    expect(bad([], { unknown: 1 })).toThrow(invalid('context.unknown'));
    expect(bad([], {}, Number.NaN)).toThrow(invalid('nowMs'));
  });
});
