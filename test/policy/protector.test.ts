// Focused Protector behaviours: missed schedules fire once, recorded fires are not
// repeated, a crash at every metadata write of a fire is survived without loss or
// repetition, ad-hoc snapshots, application consistency, RPO report and breach on an
// hourly remote schedule, the transfer concurrency bound, and coded errors for bad input.
import { describe, expect, it } from 'vitest';
import { MemoryMetaStore } from '../../src/adapters/index.js';
import { Protector, type ProtectionDomainSpec, type ProtectorOptions } from '../../src/policy/index.js';
import { World } from './protector-harness.js';

const HOUR = 3_600_000;
const START = Date.UTC(2024, 5, 1);
const KiB = 1024;
const site = { id: 'B', address: 'B:7000', credentialsRef: 'vault:b' };

function hourly(volumeIds: readonly string[], id = 'pd', remote = true): ProtectionDomainSpec {
  return {
    id,
    protects: { kind: 'entities', entities: volumeIds.map((v) => ({ kind: 'volume' as const, id: v })) },
    ...(volumeIds.length > 1 ? { consistencyGroups: [{ id: 'cg', entities: volumeIds.map((v) => ({ kind: 'volume' as const, id: v })), consistency: 'application' as const }] } : {}),
    remoteSites: [site],
    schedules: [{ id: 'hourly', recurrence: { kind: 'interval', every: 1, unit: 'hours' }, ...(remote ? { remoteSiteIds: ['B'] } : {}), retention: { local: { keepLast: 5 }, ...(remote ? { remote: [{ siteId: 'B', rule: { keepLast: 3 } }] } : {}) } }],
  };
}

async function volumes(w: World, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await w.gen.tree.createVolume({ name: `v${i}`, byteLength: 64 * KiB, blockBytes: 4 * KiB })).id);
  return ids;
}

const taken = (w: World) => w.events.filter((e) => e.kind === 'snapshot-taken');

describe('Protector', () => {
  it('fires a missed schedule once after downtime, and does not repeat a recorded fire after a restart', async () => {
    const w = await World.create(11, START);
    const [v] = await volumes(w, 1);
    await w.gen.protector.addDomain(hourly([v!], 'pd', false));
    w.gen.protector.start();
    await w.runTo(START + 3 * HOUR + 1);
    expect(taken(w).map((e) => e.kind === 'snapshot-taken' && e.fireMs)).toEqual([START, START + HOUR, START + 2 * HOUR, START + 3 * HOUR]);

    // Down for ten hours: one fire is owed (the latest), not ten.
    await w.gen.protector.stop();
    await w.clock.runUntil(START + 13 * HOUR + 30 * 60_000);
    await w.reopen();
    await w.settle();
    expect(taken(w).slice(4).map((e) => e.kind === 'snapshot-taken' && e.fireMs)).toEqual([START + 13 * HOUR]);

    // Restart again at once: the fire is recorded, nothing is taken.
    await w.gen.protector.stop();
    await w.reopen();
    await w.settle();
    expect(taken(w)).toHaveLength(5);
    // keepLast 5 exact.
    expect(w.gen.tree.listSnapshots().filter((s) => s.userMetadata['protector.schedule'] === 'hourly')).toHaveLength(5);
    await w.gen.protector.stop();
  });

  // A fire here makes three metadata writes: the CG snapshot's commit, the state record
  // (fire + queued replication), and the state record after the replication landed.
  for (let crashAtWrite = 1; crashAtWrite <= 3; crashAtWrite++) {
    it(`survives a crash at metadata write #${crashAtWrite} of a fire: the fire is taken and replicated exactly once`, async () => {
      const w = await World.create(100 + crashAtWrite, START);
      const vols = await volumes(w, 2);
      await w.gen.protector.addDomain(hourly(vols));
      w.gen.protector.start();
      await w.runTo(START + 1);
      const before = w.gen.tree.listSnapshots().length;
      // The next fire (at +1 h) dies at its nth metadata write (snapshot commit, state record, retention, ...).
      await w.clock.runUntil(START + HOUR - 1);
      w.gen.devices[0]!.crashAfterWrites(crashAtWrite);
      await w.clock.runUntil(START + HOUR);
      await w.settle();
      // The fault really fired inside the fire's work.
      expect(w.gen.devices[0]!.crashed).toBe(true);
      await w.crash();
      await w.reopen();
      await w.settle();
      const fireSnaps = w.gen.tree.listSnapshots().filter((s) => s.userMetadata['protector.fireMs'] === String(START + HOUR));
      expect(fireSnaps, `crash at write ${crashAtWrite}`).toHaveLength(2); // one CG of two volumes, not two
      expect(new Set(fireSnaps.map((s) => s.groupId)).size).toBe(1);
      expect(w.gen.tree.listSnapshots().length).toBeGreaterThanOrEqual(before);
      expect(w.gen.protector.pendingReplications()).toEqual([]);
      const atB = [...w.remoteView().replicas.values()].filter((r) => r.userMetadata['protector.fireMs'] === String(START + HOUR));
      expect(atB).toHaveLength(2);
      // The next fire proceeds normally.
      await w.runTo(START + 2 * HOUR + 1);
      expect(w.gen.tree.listSnapshots().filter((s) => s.userMetadata['protector.fireMs'] === String(START + 2 * HOUR))).toHaveLength(2);
      await w.gen.protector.stop();
    });
  }

  it('takes ad-hoc snapshots, replicated on request, untouched by retention', async () => {
    const w = await World.create(21, START);
    const [v] = await volumes(w, 1);
    await w.gen.protector.addDomain(hourly([v!]));
    w.gen.protector.start();
    await w.runTo(START + 10 * 60_000);
    const local = await w.gen.protector.snapshotNow('pd');
    const shipped = await w.gen.protector.snapshotNow('pd', { replicate: true });
    await w.settle();
    expect(w.remoteView().replicas.has(local[0]!.id)).toBe(false);
    expect(w.remoteView().replicas.has(shipped[0]!.id)).toBe(true);
    await w.runTo(START + 12 * HOUR);
    const ids = new Set(w.gen.tree.listSnapshots().map((s) => s.id));
    expect(ids.has(local[0]!.id) && ids.has(shipped[0]!.id)).toBe(true);
    await expect(w.gen.protector.snapshotNow('nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await w.gen.protector.stop();
  });

  it('takes application-consistent CG snapshots with hooks, and says why without them', async () => {
    let frozen = 0;
    const w = await World.create(31, START, { quiesce: (_d, groupId) => (groupId === 'cg' ? { preFreeze: async () => { frozen++; }, postThaw: async () => undefined } : undefined) });
    const vols = await volumes(w, 4);
    await w.gen.protector.addDomain(hourly(vols.slice(0, 2), 'with-hooks'));
    const other = hourly(vols.slice(2), 'no-hooks');
    await w.gen.protector.addDomain({ ...other, consistencyGroups: [{ id: 'cg2', entities: vols.slice(2).map((id) => ({ kind: 'volume' as const, id })), consistency: 'application' }] });
    w.gen.protector.start();
    await w.runTo(START + 1);
    const events = taken(w);
    const withHooks = events.find((e) => e.domainId === 'with-hooks');
    const noHooks = events.find((e) => e.domainId === 'no-hooks');
    expect(frozen).toBe(1);
    expect(withHooks).toMatchObject({ consistency: 'application', fallbackReason: undefined });
    expect(noHooks).toMatchObject({ consistency: 'crash' });
    expect(noHooks?.kind === 'snapshot-taken' && noHooks.fallbackReason).toMatch(/no quiesce hooks/);
    await w.gen.protector.stop();
  });

  it('reports RPO per site; an hourly remote breaches during a partition and recovers after it', async () => {
    const w = await World.create(41, START);
    const [v] = await volumes(w, 1);
    await w.gen.protector.addDomain(hourly([v!]));
    w.gen.protector.start();
    await w.runTo(START + 5 * HOUR + 30 * 60_000);
    const [r] = w.gen.protector.rpoReport();
    expect(r).toMatchObject({ domainId: 'pd', siteId: 'B', targetMs: HOUR, thresholdMs: HOUR + 6 * 60_000, breached: false, newestCompleteMs: START + 5 * HOUR });
    expect(r!.ageMs).toBe(30 * 60_000);
    w.partition();
    await w.runTo(START + 8 * HOUR);
    expect(w.gen.protector.rpoReport()[0]!.breached).toBe(true);
    const breach = w.events.find((e) => e.kind === 'rpo-breached');
    // Breached the first millisecond the age exceeds target + grace.
    expect(breach?.atMs).toBe(START + 5 * HOUR + HOUR + 6 * 60_000 + 1);
    expect(w.events.some((e) => e.kind === 'replication-failed')).toBe(true);
    w.heal();
    await w.runTo(START + 8 * HOUR + 20 * 60_000);
    const recovered = w.events.find((e) => e.kind === 'rpo-recovered');
    expect(recovered).toBeDefined();
    expect(w.gen.protector.rpoReport()[0]!.breached).toBe(false);
    expect(w.gen.protector.pendingReplications()).toEqual([]);
    await w.gen.protector.stop();
  });

  it(`runs at most 'concurrency' transfers at once across many domains`, async () => {
    const w = await World.create(51, START, { concurrency: 2 });
    const vols = await volumes(w, 8);
    for (const [i, v] of vols.entries()) await w.gen.protector.addDomain(hourly([v], `pd-${i}`));
    let peak = 0;
    const sample = () => {
      peak = Math.max(peak, w.gen.protector.pendingReplications().filter((p) => p.inFlight).length);
      if (!w.gen.protector.idle) w.clock.setTimer(1, sample);
    };
    w.gen.protector.start();
    await w.clock.runUntil(START);
    sample();
    await w.settle();
    expect(w.events.filter((e) => e.kind === 'replicated')).toHaveLength(8);
    expect(peak).toBe(2);
    await w.gen.protector.stop();
  });

  it('refuses bad input with coded errors', async () => {
    const w = await World.create(61, START);
    const [a, b] = await volumes(w, 2);
    const p = w.gen.protector;
    await expect(p.addDomain({ ...hourly([a!]), schedules: [{ id: 's', recurrence: { kind: 'daily', at: '25:00' }, retention: { local: { keepLast: 1 } } }] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const elsewhere = { ...hourly([a!]), remoteSites: [{ ...site, id: 'C' }], schedules: [{ id: 's', recurrence: { kind: 'interval' as const, every: 1, unit: 'hours' as const }, remoteSiteIds: ['C'], retention: { local: { keepLast: 1 } } }] };
    await expect(p.addDomain(elsewhere)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { siteId: 'C' } });
    await p.addDomain(hourly([a!], 'one'));
    await expect(p.addDomain(hourly([a!, b!], 'two'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const meta = await MemoryMetaStore.open();
    const connectionFor = () => ({ transport: w.gen.remote.transport });
    await expect(Protector.open({ site: w.gen.site, clock: w.clock, meta, connectionFor, concurrency: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(Protector.open({ site: w.gen.site, clock: w.clock, meta } as unknown as ProtectorOptions)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'connectionFor' } });
    // One id names one site: a second domain may not configure B elsewhere.
    const moved = { ...hourly([b!], 'moved'), remoteSites: [{ ...site, address: 'B2:7000' }] };
    await expect(p.addDomain(moved)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { field: 'remoteSites', siteId: 'B' } });
    // A domain removed is forgotten, its snapshots stay.
    w.gen.protector.start();
    await w.runTo(START + 1);
    const count = w.gen.tree.listSnapshots().length;
    await p.removeDomain('one');
    expect(p.listDomains()).toEqual([]);
    await w.runTo(START + 3 * HOUR);
    expect(w.gen.tree.listSnapshots().length).toBe(count);
    await p.stop();
  });
});
