// migrateGroup over MemoryTransport (issue 14): a consistency group goes back as one unit.
// A rollback after the promotion demotes every member at the target with one DEMOTE_REQ
// and puts every member back at the source; a member written at the target since its
// promotion refuses the whole rollback; a member written at the source after the stop
// makes resume retake the group snapshot; bad input is refused before anything changes.
import { describe, expect, it } from 'vitest';
import { DrkitError, equalBytes } from '../../src/index.js';
import { MemoryTransport } from '../../src/adapters/index.js';
import { MIGRATION_STEPS, lineageStatus, migrateGroup, originOf, readGroupMigration, resumeGroupMigration, rollbackGroupMigration, snapshotPromoted, volumeKeyOf } from '../../src/replication/index.js';
import { SeededPrng } from '../../src/testing/index.js';
import { errorOf, memorySite } from './site-helpers.js';

const KiB = 1024;
const PSK = new Uint8Array(32).fill(31);
const NO_RETRY = { retries: 0 };

async function world(seed: number) {
  const net = MemoryTransport.create();
  const a = await memorySite('A', net, PSK);
  const b = await memorySite('B', net, PSK);
  const volumes = [];
  for (const [i, name] of ['app', 'db'].entries()) {
    const vol = await a.tree.createVolume({ name, byteLength: 8 * 16 * KiB });
    await vol.write(0, new SeededPrng(seed + i).fill(new Uint8Array(vol.byteLength)));
    volumes.push(vol);
  }
  const s0 = await a.tree.snapshotGroup(volumes.map((v) => v.id), { name: 's0' });
  await a.site.replicate(s0.map((s) => s.id), b.remote, NO_RETRY);
  const lineages = s0.map((s) => volumeKeyOf(originOf(s, 'A')));
  const options = { source: a.site, target: b.remote, groupId: 'cg-app', lineages };
  const close = async () => {
    await a.site.close();
    await b.site.close();
  };
  return { a, b, volumes, lineages, options, close };
}

const stopAfter = (name: string) => (step: string) => {
  if (step === name) throw new DrkitError('INJECTED_FAULT', `stop after ${step}`);
};

describe('migrateGroup', () => {
  it('rolls back after the promotion: one DEMOTE_REQ gives every member back, and the source writes all again', async () => {
    for (const after of ['promote-target', 'reverse-direction'] as const) {
      const w = await world(after.length);
      const run = { ...NO_RETRY, sourceVolumes: w.volumes, ...(after === 'promote-target' ? { onStep: stopAfter(after) } : {}) };
      const attempt = migrateGroup(w.options, run);
      if (after === 'promote-target') expect((await errorOf(attempt)).data.state, after).toBe('resumable');
      else expect(await attempt, after).toMatchObject({ state: 'completed' });
      for (const l of w.lineages) expect((await lineageStatus(w.b.site, l)).writableVolumeId, after).toBeDefined();
      expect(await rollbackGroupMigration(w.options, NO_RETRY), after).toMatchObject({ state: 'rolled-back' });
      for (const [i, l] of w.lineages.entries()) {
        expect(await lineageStatus(w.b.site, l), after).toMatchObject({ writableVolumeId: undefined, generation: 0 });
        expect(await lineageStatus(w.a.site, l), after).toMatchObject({ writableVolumeId: w.volumes[i]!.id, generation: 0 });
      }
      // Rolled back is final (idempotent), and A replicates to B again as before.
      expect(await rollbackGroupMigration(w.options, NO_RETRY), after).toMatchObject({ state: 'rolled-back' });
      const s = await snapshotPromoted(w.a.site, w.lineages[0]!, { name: 'again' });
      expect((await w.a.site.replicate(s.id, w.b.remote, NO_RETRY)).remoteSnapshotIds, after).toHaveLength(1);
      await w.close();
    }
  });

  it('refuses to roll back when the target wrote one member since its promotion, and changes no member', async () => {
    const w = await world(7);
    const done = await migrateGroup(w.options, { ...NO_RETRY, sourceVolumes: w.volumes });
    const vol = await w.b.tree.openVolume(done.record.members[1]!.targetVolumeId!);
    await vol.write(0, new Uint8Array(16 * KiB).fill(5));
    await vol.close();
    expect((await errorOf(rollbackGroupMigration(w.options, NO_RETRY))).code).toBe('DIVERGED');
    for (const [i, l] of w.lineages.entries()) {
      expect((await lineageStatus(w.b.site, l)).writableVolumeId).toBe(done.record.members[i]!.targetVolumeId);
      expect((await lineageStatus(w.a.site, l)).writableVolumeId).toBeUndefined();
    }
    expect((await readGroupMigration(w.a.site.meta, 'cg-app'))?.status).toBe('completed');
    await w.close();
  });

  it('a member written at the source after the stop is caught before the demotion; resume retakes the group snapshot', async () => {
    const w = await world(11);
    const other = await w.a.tree.openVolume(w.volumes[1]!.id); // a writer the stop does not reach
    const onStep = async (step: string) => {
      if (step === 'replicate') await other.write(0, new SeededPrng(77).fill(new Uint8Array(16 * KiB)));
    };
    const err = await errorOf(migrateGroup(w.options, { ...NO_RETRY, sourceVolumes: w.volumes, onStep }));
    expect([err.code, err.data.step]).toEqual(['DIVERGED', 'final-snapshot']);
    for (const l of w.lineages) expect((await lineageStatus(w.a.site, l)).writableVolumeId).toBeDefined();
    const late = await other.read(0, other.byteLength);
    await other.close();
    const done = await resumeGroupMigration(w.options, NO_RETRY);
    expect(done.state).toBe('completed');
    const at = await w.b.tree.openVolume(done.record.members[1]!.targetVolumeId!);
    expect(equalBytes(await at.read(0, at.byteLength), late)).toBe(true);
    await at.close();
    await w.close();
  });

  it('refuses bad input before anything changes', async () => {
    const w = await world(13);
    expect((await errorOf(migrateGroup({ ...w.options, lineages: [] }))).code).toBe('INVALID_ARGUMENT');
    expect((await errorOf(migrateGroup({ ...w.options, lineages: [w.lineages[0]!, w.lineages[0]!] }))).code).toBe('INVALID_ARGUMENT');
    expect((await errorOf(migrateGroup({ ...w.options, lineages: [...w.lineages, 'A/vol-404'] }))).code).toBe('NOT_FOUND');
    expect(await readGroupMigration(w.a.site.meta, 'cg-app')).toBeUndefined();
    await migrateGroup(w.options, { ...NO_RETRY, onStep: stopAfter(MIGRATION_STEPS[0]) }).catch(() => undefined);
    expect((await errorOf(migrateGroup(w.options, NO_RETRY))).code).toBe('ALREADY_EXISTS');
    await w.close();
  });
});
