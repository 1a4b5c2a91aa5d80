// Migrate between two Node processes that share nothing but a TCP address (issue 14):
// the source is this process, the target a child over durable stores. The promotion is
// asked for over the protocol (PROMOTE_REQ). For every step, the migration is stopped
// right after it, then BOTH sides crash — the child is killed with SIGKILL, this side drops
// every object — and come back from their files (the child on a new port); resuming with
// the new address completes it: the target writes the lineage at generation 1 with the
// source's bytes, the source no longer writes it. Uses the built package.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DrkitError, isDrkitError } from '../../dist/index.js';
import { MIGRATION_STEPS, lineageStatus, migrate, originOf, resumeMigration, volumeKeyOf } from '../../dist/replication/index.js';
import { SeededPrng } from '../../dist/testing/index.js';
import { openDurableSite } from './fixtures/durable-site.mjs';
import { startTargetProcess, type TargetProcess } from './target-process.js';

const KiB = 1024;
const VOLUME_BYTES = 64 * 16 * KiB;
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startTarget(dir: string): Promise<TargetProcess> {
  return startTargetProcess(dir, 'B', cleanups);
}

describe('migrate by address between two processes', () => {
  it('stopped after any step, with both sides crashed, resumes to completion', async () => {
    for (let stopAfter = 0; stopAfter < MIGRATION_STEPS.length - 1; stopAfter++) {
      const msg = `stopped after ${MIGRATION_STEPS[stopAfter]}`;
      const dir = mkdtempSync(join(tmpdir(), 'drkit-migrate-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      let a = await openDurableSite(dir, 'A');
      let b = await startTarget(dir);
      const vol = await a.tree.createVolume({ name: 'db', byteLength: VOLUME_BYTES });
      const expected = new SeededPrng(stopAfter + 1).fill(new Uint8Array(VOLUME_BYTES));
      await vol.write(0, expected);
      const s0 = await a.tree.snapshot(vol.id, { name: 's0' });
      const lineage = volumeKeyOf(originOf(s0, 'A'));
      await a.site.replicate(s0.id, b.remote, { retries: 0 });
      // Written after the last replication: only the final snapshot carries it.
      const late = new SeededPrng(99).fill(new Uint8Array(16 * KiB));
      await vol.write(0, late);
      expected.set(late, 0);

      const onStep = (step: string) => {
        if (step === MIGRATION_STEPS[stopAfter]) throw new DrkitError('INJECTED_FAULT', `stop after ${step}`);
      };
      let stopped: unknown;
      try {
        await migrate({ source: a.site, target: b.remote, lineage }, { retries: 0, sourceVolume: vol, onStep });
      } catch (err) {
        stopped = err;
      }
      expect(isDrkitError(stopped) && stopped.data.state, msg).toBe('resumable');

      await b.crash();
      await a.close();
      a = await openDurableSite(dir, 'A');
      b = await startTarget(dir);
      const done = await resumeMigration({ source: a.site, target: b.remote, lineage }, { retries: 0 });
      expect(done.state, msg).toBe('completed');
      expect((await lineageStatus(a.site, lineage)).writableVolumeId, msg).toBeUndefined();
      const atTarget = await b.status(lineage);
      expect(atTarget.generation, msg).toBe(1);
      expect(atTarget.writableVolumeId, msg).toBe(done.record.targetVolumeId);
      expect(atTarget.sha256, msg).toBe(createHash('sha256').update(expected).digest('hex'));
      await a.close();
    }
  }, 120_000);
});
