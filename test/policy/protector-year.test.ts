// A simulated year of two protection domains on the VirtualClock and SimulatedNetwork,
// with a partition of some hours and crashes of site A (stores, network host and engine)
// at seeded moments, checked after every scheduling pass:
// - retention counts exact: every schedule's live snapshots per unit, here and at the
//   remote, are what the pure planners say (an independent model replays the policy
//   over every snapshot the engine ever took);
// - no replication base ever deleted: the newest replica B holds of each volume still
//   exists at A;
// - RPO never breached on a healthy network; breached during the partition, recovered
//   after it heals;
// - nothing lost or repeated across crashes: every fire instant of the year taken once,
//   every replication done once.
// Local schedules run every 6 hours rather than hourly so that a year stays near 15 s of
// real time (the engine does the same work per fire whatever the interval; hourly
// schedules run in protector.test.ts). Schedules: PD "erp" is a two-volume application-consistent CG, local every 6 hours
// (keep 8) and daily at 01:30 Berlin replicated to B (keep 7 days here, 30 daily + 12
// monthly there); PD "web" is one volume, local every 6 hours (keep 4 + 7 daily tiers)
// and every 12 hours replicated to B (keep 1 here — so every older snapshot still here is there only as a replication base or in flight — and 10 there).
import { describe, expect, it } from 'vitest';
import { fireTimesBetween, previousFireMs, planRemoteRetention, planRetention, type ProtectionDomainSpec, type RetentionSnapshot } from '../../src/policy/index.js';
import { rng, World } from './protector-harness.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = Date.UTC(2024, 0, 1);
// Seed 1 runs the whole year (2024, a leap year, with both daylight-saving changes);
// further seeds run 30 days each to vary crash and partition moments cheaply. A full
// year takes ~15 s of real time here; DRKIT_SEEDS=4,5 DRKIT_PROTECTOR_DAYS=366 runs more.
const YEAR_DAYS = Number(process.env.DRKIT_PROTECTOR_DAYS ?? 366);
const RUNS: { seed: number; days: number }[] = process.env.DRKIT_SEEDS === undefined
  ? [{ seed: 1, days: YEAR_DAYS }, { seed: 2, days: 30 }, { seed: 3, days: 30 }]
  : process.env.DRKIT_SEEDS.split(',').map((s) => ({ seed: Number(s), days: YEAR_DAYS }));
const KiB = 1024;

const erp = (a: string, b: string): ProtectionDomainSpec => ({
  id: 'erp',
  protects: { kind: 'entities', entities: [{ kind: 'volume', id: a }, { kind: 'volume', id: b }] },
  consistencyGroups: [{ id: 'app-db', entities: [{ kind: 'volume', id: a }, { kind: 'volume', id: b }], consistency: 'application' }],
  remoteSites: [{ id: 'B', address: 'B:7000', credentialsRef: 'vault:b' }],
  schedules: [
    { id: 'six-hourly', recurrence: { kind: 'interval', every: 6, unit: 'hours' }, retention: { local: { keepLast: 8 } } },
    {
      id: 'nightly', recurrence: { kind: 'daily', at: '01:30' }, timeZone: 'Europe/Berlin', remoteSiteIds: ['B'],
      retention: { local: { keepLast: 7 }, remote: [{ siteId: 'B', rule: { tiers: [{ unit: 'day', count: 30 }, { unit: 'month', count: 12 }] } }], timeZone: 'Europe/Berlin' },
    },
  ],
});

const web = (v: string): ProtectionDomainSpec => ({
  id: 'web',
  protects: { kind: 'entities', entities: [{ kind: 'volume', id: v }] },
  remoteSites: [{ id: 'B', address: 'B:7000', credentialsRef: 'vault:b' }],
  schedules: [
    { id: 'local', recurrence: { kind: 'interval', every: 6, unit: 'hours', anchorMs: 0 }, retention: { local: { keepLast: 4, tiers: [{ unit: 'day', count: 7 }] } } },
    { id: 'remote', recurrence: { kind: 'interval', every: 12, unit: 'hours' }, remoteSiteIds: ['B'], retention: { local: { keepLast: 1 }, remote: [{ siteId: 'B', rule: { keepLast: 10 } }] } },
  ],
});

interface Slot { domainId: string; scheduleId: string; unitKey: string }

async function runYear(seed: number, days: number): Promise<{ crashes: number; breaches: number; steps: number }> {
  const YEAR_MS = days * DAY;
  const random = rng(seed);
  let appQuiesces = 0;
  const w = await World.create(seed, START, {
    quiesce: () => ({ preFreeze: async () => { appQuiesces++; }, postThaw: async () => undefined }),
  });
  const volumes: string[] = [];
  for (let i = 0; i < 3; i++) volumes.push((await w.gen.tree.createVolume({ name: `v${i}`, byteLength: 64 * KiB, blockBytes: 4 * KiB })).id);
  const [va, vb, vc] = volumes as [string, string, string];
  const domains = [await w.gen.protector.addDomain(erp(va, vb)), await w.gen.protector.addDomain(web(vc))];
  w.gen.protector.start();

  const end = START + YEAR_MS;
  // One partition of 30-54 hours somewhere in the year: longer than every RPO + grace.
  const partitionAt = START + Math.floor((0.2 + random() * 0.6) * YEAR_MS);
  const partitionEnd = partitionAt + (30 + Math.floor(random() * 24)) * HOUR;
  // Crashes at seeded moments, each interrupting the pass of a seeded wake-up after a seeded number of event-loop turns.
  const crashAt = Array.from({ length: 6 }, () => START + Math.floor(random() * YEAR_MS)).sort((a, b) => a - b);
  let crashes = 0;

  const taken = new Map<string, Set<string>>(); // slot -> every snapshot id the engine ever took
  const model = new Map<string, Set<string>>(); // slot -> what the policy keeps, replayed independently
  const remoteModel = new Map<string, Set<string>>();
  const created = new Map<string, RetentionSnapshot>();
  const released = new Set<string>(); // ids the model's policy deleted
  const everAtB = new Set<string>();
  const remoteSlots = new Set<string>();
  const slotKey = (s: Slot) => `${s.domainId}/${s.scheduleId}/${s.unitKey}`;
  const fail = (what: string) => `seed ${seed} at ${new Date(w.clock.now()).toISOString()}: ${what}`;
  let steps = 0;

  const check = () => {
    const now = w.clock.now();
    const tree = w.gen.tree;
    const live = tree.listSnapshots();
    const liveIds = new Set(live.map((s) => s.id));
    // No replication base ever deleted.
    const { replicas, latestPerVolume } = w.remoteView();
    for (const [volumeId, originId] of latestPerVolume) if (!liveIds.has(originId)) expect.fail(fail(`base ${originId} of ${volumeId} deleted at A`));

    const pending = w.gen.protector.pendingReplications();
    for (const id of replicas.keys()) everAtB.add(id);
    const bySlot = new Map<string, RetentionSnapshot[]>();
    for (const s of live) {
      const m = s.userMetadata;
      if (m['protector.schedule'] === undefined) continue;
      const key = slotKey({ domainId: m['protector.domain']!, scheduleId: m['protector.schedule'], unitKey: m['protector.unit']! });
      if (domains.some((d) => d.id === m['protector.domain'] && d.schedules.some((x) => x.id === m['protector.schedule'] && x.remoteSiteIds.length > 0))) remoteSlots.add(key);
      (bySlot.get(key) ?? bySlot.set(key, []).get(key)!).push(s);
      created.set(s.id, { id: s.id, createdMs: s.createdMs, groupId: s.groupId });
      (taken.get(key) ?? taken.set(key, new Set()).get(key)!).add(s.id);
    }
    // Being replicated, by the test's own account: taken by a schedule that replicates, never yet seen at B.
    const replicatingIds = [...remoteSlots].flatMap((key) => [...(taken.get(key) ?? [])]).filter((id) => !everAtB.has(id));
    for (const d of domains) {
      const failing = pending.some((p) => p.domainId === d.id && p.attempts > 0);
      for (const s of d.schedules) {
        for (const unitKey of d.id === 'erp' ? ['cg:app-db'] : [`volume:${vc}`]) {
          const key = slotKey({ domainId: d.id, scheduleId: s.id, unitKey });
          const mine = bySlot.get(key) ?? [];
          // The model: the policy replayed over what the engine took, with protections from the truth at B.
          // Snapshots the model let go are gone for good; everything else the engine took is a candidate, deleted or not.
          const candidates = [...new Set([...(model.get(key) ?? []), ...[...(taken.get(key) ?? [])].filter((id) => !released.has(id))])].map((id) => created.get(id)!);
          const shared = candidates.filter((c) => replicas.has(c.id)).map((c) => c.id);
          const plan = planRetention(s.retention, candidates, now, { replicatingIds, sites: s.remoteSiteIds.map((siteId) => ({ siteId, sharedSnapshotIds: shared })) });
          const expected = new Set(plan.keep.map((k) => k.id));
          for (const x of plan.delete) released.add(x.id);
          model.set(key, expected);
          const actual = new Set(mine.map((x) => x.id));
          for (const id of expected) if (!actual.has(id)) expect.fail(fail(`${key}: ${id} kept by the policy, deleted by the engine`));
          // While a replication is failing the engine may also keep the base it last confirmed (one per site).
          if (!failing && actual.size !== expected.size) expect([...actual].sort(), fail(`${key}: local retention`)).toEqual([...expected].sort());
          if (failing && actual.size > expected.size + (s.remoteSiteIds.length === 0 ? 1 : 2)) expect.fail(fail(`${key}: local retention while failing: ${actual.size} kept, policy ${expected.size}`));

          for (const siteId of s.remoteSiteIds) {
            const atB = [...replicas.values()].filter((r) => r.userMetadata['protector.schedule'] === s.id && r.userMetadata['protector.domain'] === d.id);
            const originIds = atB.map((r) => r.userMetadata[ORIGIN]!);
            const rk = `${key}@${siteId}`;
            const byId = new Map(atB.map((r) => [r.userMetadata[ORIGIN]!, r]));
            const rc = [...new Set([...(remoteModel.get(rk) ?? []), ...originIds])].filter((id) => byId.has(id));
            const remotePlan = planRemoteRetention(
              s.retention, siteId,
              rc.map((id) => ({ id, createdMs: byId.get(id)!.createdMs, groupId: byId.get(id)!.userMetadata['protector.fireMs'] })),
              now,
              { sites: [{ siteId: 'A', sharedSnapshotIds: rc.filter((id) => liveIds.has(id)) }], replicatingIds },
            );
            const remoteExpected = new Set(remotePlan.keep.map((k) => k.id));
            remoteModel.set(rk, remoteExpected);
            for (const id of remoteExpected) if (!byId.has(id)) expect.fail(fail(`${rk}: ${id} kept by the policy, pruned at B`));
            if (!failing && !w.partitioned && originIds.length !== remoteExpected.size) expect(originIds.sort(), fail(`${rk}: remote retention`)).toEqual([...remoteExpected].sort());
          }
        }
      }
    }
  };

  const wakes: number[] = [];
  while (w.clock.now() < end) {
    const next = Math.max(w.clock.now(), Math.min(w.gen.protector.nextWakeMs() ?? end, end));
    const boundary = [partitionAt, partitionEnd].find((t) => t > w.clock.now() && t <= next);
    const crashNow = crashAt.length > 0 && crashAt[0]! <= next;
    await w.clock.runUntil(boundary ?? next);
    if (boundary === partitionAt) w.partition();
    else if (boundary === partitionEnd) w.heal();
    if (crashNow && boundary === undefined) {
      crashAt.shift();
      // Let the pass run a seeded number of event-loop turns, then pull the plug.
      const advancing = w.net.autoAdvance({ idleStepMs: 1_000 });
      for (let i = Math.floor(random() * 40); i > 0; i--) await new Promise((r) => setImmediate(r));
      await advancing.stop();
      await w.crash();
      await w.reopen();
      crashes++;
    }
    await w.settle();
    wakes.push(w.clock.now());
    steps++;
    check();
    // A few bytes per step, so consecutive snapshots differ.
    for (const id of volumes) {
      const vol = await w.gen.tree.openVolume(id);
      const bytes = new Uint8Array(16).map(() => Math.floor(random() * 256));
      await vol.write(Math.floor(random() * 16) * 4 * KiB, bytes);
      await vol.close();
    }
  }
  await w.gen.protector.stop();

  // Nothing lost, nothing repeated: every fire instant of the year taken exactly once per unit.
  for (const d of domains) {
    for (const s of d.schedules) {
      const fires = fireTimesBetween(s, previousFireMs(s, START) ?? START, end + 1);
      const takenEvents = w.events.filter((e) => e.kind === 'snapshot-taken' && e.domainId === d.id && e.scheduleId === s.id);
      const perFire = new Map<number, number>();
      for (const e of takenEvents) if (e.kind === 'snapshot-taken') perFire.set(e.fireMs, (perFire.get(e.fireMs) ?? 0) + 1);
      for (const [fireMs, count] of perFire) expect(count, fail(`${d.id}/${s.id} fire ${new Date(fireMs).toISOString()} taken ${count} times`)).toBe(1);
      // A crash between snapshot and event leaves a fire adopted without an event: allow one missing event per crash.
      expect(perFire.size, fail(`${d.id}/${s.id}: fires taken`)).toBeGreaterThanOrEqual(fires.length - crashes);
      expect(perFire.size, fail(`${d.id}/${s.id}: fires taken`)).toBeLessThanOrEqual(fires.length);
    }
  }
  // Every replication landed once.
  const replicated = w.events.filter((e) => e.kind === 'replicated');
  const seen = new Set<string>();
  for (const e of replicated) if (e.kind === 'replicated') {
    const key = e.snapshotIds.join(',');
    expect(seen.has(key), fail(`replicated twice: ${key}`)).toBe(false);
    seen.add(key);
  }
  expect(w.gen.protector.pendingReplications(), fail('replications left')).toEqual([]);

  // RPO: breached only around the partition, recovered after it, never otherwise.
  const breaches = w.events.filter((e) => e.kind === 'rpo-breached');
  const recoveries = w.events.filter((e) => e.kind === 'rpo-recovered');
  for (const e of breaches) {
    expect(e.atMs, fail(`breach of ${e.domainId} at ${new Date(e.atMs).toISOString()} outside the partition`)).toBeGreaterThan(partitionAt);
    expect(e.atMs, fail('breach after the heal')).toBeLessThanOrEqual(partitionEnd);
  }
  for (const d of domains) {
    expect(breaches.filter((e) => e.domainId === d.id).length, fail(`${d.id}: one breach during the partition`)).toBe(1);
    const r = recoveries.filter((e) => e.domainId === d.id);
    expect(r.length, fail(`${d.id}: one recovery`)).toBe(1);
    expect(r[0]!.atMs - partitionEnd, fail(`${d.id}: recovered soon after the heal`)).toBeLessThanOrEqual(16 * 60_000);
  }
  for (const r of w.gen.protector.rpoReport()) expect(r.breached, fail(`${r.domainId}@${r.siteId} breached at the end`)).toBe(false);
  expect(appQuiesces, fail('application-consistent snapshots quiesced')).toBeGreaterThan(0);
  return { crashes, breaches: breaches.length, steps };
}

const ORIGIN = 'drkit.originSnapshot';

describe('Protector over a simulated year', () => {
  for (const { seed, days } of RUNS) {
    it(`seed ${seed}, ${days} days: retention exact, bases kept, RPO breached only in the partition, crashes change nothing`, async () => {
      const r = await runYear(seed, days);
      expect(r.crashes).toBeGreaterThan(0);
      console.log(`protector seed ${seed}, ${days} days: ${r.steps} passes, ${r.crashes} crashes, ${r.breaches} breaches`);
    }, 120_000);
  }
});
