// A consistency group migrates as one unit between two Node processes that share nothing
// but a TCP address (issue 14): three volumes of one group, one group snapshot, one
// PROMOTE_REQ. For every step, the migration is stopped right after it, then BOTH sides
// crash — the child is killed with SIGKILL, this side drops every object — and come back
// from their files (the child on a new port). At each kill point the target's own status
// shows all members promoted or none; resuming with the new address completes it: every
// member at the target is promoted at generation 1 and bit-identical to the source's bytes
// at the stop, and the source writes none of them. A target that kills itself inside the
// promotion — just before or just after its one commit of every member's lineage record —
// comes back with no member promoted or all, and resume completes. Uses the built package.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DrkitError, isDrkitError } from '../../dist/index.js';
import { MIGRATION_STEPS, lineageStatus, migrateGroup, originOf, readGroupMigration, resumeGroupMigration, volumeKeyOf } from '../../dist/replication/index.js';
import { SeededPrng } from '../../dist/testing/index.js';
import { openDurableSite } from './fixtures/durable-site.mjs';
import { startTargetProcess, type TargetProcess } from './target-process.js';

const KiB = 1024;
const VOLUME_BYTES = 32 * 16 * KiB;
const MEMBERS = ['app', 'db', 'log'];
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Three member volumes at A, replicated once to B, then written again: only the group snapshot carries the last writes. */
async function groupOf(a: Awaited<ReturnType<typeof openDurableSite>>, b: TargetProcess, seed: number) {
  const volumes = [];
  const expected = new Map<string, string>();
  for (const [i, name] of MEMBERS.entries()) {
    const vol = await a.tree.createVolume({ name, byteLength: VOLUME_BYTES });
    await vol.write(0, new SeededPrng(seed + i + 1).fill(new Uint8Array(VOLUME_BYTES)));
    volumes.push(vol);
  }
  const s0 = await a.tree.snapshotGroup(volumes.map((v) => v.id), { name: 's0' });
  await a.site.replicate(s0.map((s) => s.id), b.remote, { retries: 0 });
  const lineages: string[] = s0.map((s) => volumeKeyOf(originOf(s, 'A')));
  for (const [i, vol] of volumes.entries()) {
    await vol.write(16 * KiB * i, new SeededPrng(seed + 99 + i).fill(new Uint8Array(16 * KiB)));
    expected.set(lineages[i]!, sha256(await vol.read(0, VOLUME_BYTES)));
  }
  return { volumes, lineages, expected };
}

/** Every member at the target is promoted at generation 1 with the source's bytes, and the source writes none. */
async function expectAllMigrated(a: Awaited<ReturnType<typeof openDurableSite>>, b: TargetProcess, lineages: readonly string[], expected: Map<string, string>, record: { members: readonly { targetVolumeId?: string }[] }, msg: string) {
  for (const [i, lineage] of lineages.entries()) {
    expect((await lineageStatus(a.site, lineage)).writableVolumeId, msg).toBeUndefined();
    const atTarget = await b.status(lineage);
    expect(atTarget.generation, msg).toBe(1);
    expect(atTarget.writableVolumeId, msg).toBe(record.members[i]!.targetVolumeId);
    expect(atTarget.sha256, `${msg}: ${lineage}`).toBe(expected.get(lineage));
  }
}

describe('migrateGroup by address between two processes', () => {
  it('stopped after any step, with both sides crashed, resumes to completion; never some members promoted and others not', async () => {
    let sawPromoted = false;
    for (let stopAfter = 0; stopAfter < MIGRATION_STEPS.length - 1; stopAfter++) {
      const msg = `stopped after ${MIGRATION_STEPS[stopAfter]}`;
      const dir = mkdtempSync(join(tmpdir(), 'drkit-migrate-group-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      let a = await openDurableSite(dir, 'A');
      let b = await startTargetProcess(dir, 'B', cleanups);
      const { volumes, lineages, expected } = await groupOf(a, b, 10 * stopAfter);

      const onStep = (step: string) => {
        if (step === MIGRATION_STEPS[stopAfter]) throw new DrkitError('INJECTED_FAULT', `stop after ${step}`);
      };
      let stopped: unknown;
      try {
        await migrateGroup({ source: a.site, target: b.remote, groupId: 'cg-1', lineages }, { retries: 0, sourceVolumes: volumes, onStep });
      } catch (err) {
        stopped = err;
      }
      expect(isDrkitError(stopped) && stopped.data.state, msg).toBe('resumable');
      const record = await readGroupMigration(a.site.meta, 'cg-1');
      expect(record?.completedSteps, msg).toBe(stopAfter + 1);
      if (stopAfter >= 1) expect(new Set(record!.members.map((m) => a.tree.getSnapshot(m.finalSnapshotId!).groupId)).size, `${msg}: one group snapshot`).toBe(1);

      // At the kill point: all members promoted at the target, or none.
      const atKill = await Promise.all(lineages.map((l) => b.status(l)));
      const promoted = atKill.filter((s) => s.writableVolumeId !== null).length;
      expect([0, MEMBERS.length], `${msg}: ${promoted} of ${MEMBERS.length} promoted`).toContain(promoted);
      expect(promoted === MEMBERS.length, msg).toBe(stopAfter >= MIGRATION_STEPS.indexOf('promote-target'));
      sawPromoted ||= promoted === MEMBERS.length;

      await b.crash();
      await a.close();
      a = await openDurableSite(dir, 'A');
      b = await startTargetProcess(dir, 'B', cleanups);
      const done = await resumeGroupMigration({ source: a.site, target: b.remote, groupId: 'cg-1' }, { retries: 0 });
      expect(done.state, msg).toBe('completed');
      await expectAllMigrated(a, b, lineages, expected, done.record, msg);
      await b.crash();
      await a.close();
    }
    expect(sawPromoted).toBe(true);
  }, 180_000);

  it('a target killed in the middle of the promotion has promoted no member (before its commit) or all (after it); resume completes', async () => {
    for (const crashMode of ['crash-before-promote-commit', 'crash-after-promote-commit'] as const) {
      const dir = mkdtempSync(join(tmpdir(), 'drkit-migrate-group-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      let a = await openDurableSite(dir, 'A');
      let b = await startTargetProcess(dir, 'B', cleanups, crashMode);
      const { volumes, lineages, expected } = await groupOf(a, b, crashMode.length);
      let stopped: unknown;
      try {
        await migrateGroup({ source: a.site, target: b.remote, groupId: 'cg-1', lineages }, { retries: 0, sourceVolumes: volumes });
      } catch (err) {
        stopped = err;
      }
      expect(isDrkitError(stopped) && [stopped.data.state, stopped.data.step], crashMode).toEqual(['resumable', 'promote-target']);
      expect(await b.exited(), `${crashMode}: the target crashed itself`).toBe('SIGKILL');
      await a.close();
      a = await openDurableSite(dir, 'A');
      b = await startTargetProcess(dir, 'B', cleanups);
      const promoted = (await Promise.all(lineages.map((l) => b.status(l)))).filter((s) => s.writableVolumeId !== null).length;
      expect(promoted, crashMode).toBe(crashMode === 'crash-before-promote-commit' ? 0 : MEMBERS.length);
      const done = await resumeGroupMigration({ source: a.site, target: b.remote, groupId: 'cg-1' }, { retries: 0 });
      expect(done.state, crashMode).toBe('completed');
      await expectAllMigrated(a, b, lineages, expected, done.record, crashMode);
      await b.crash();
      await a.close();
    }
  }, 120_000);
});
