// A process writing to a volume on the real file stores and taking snapshots is
// SIGKILLed at a seeded moment (test/snapshot/fixtures/volume-writer.mjs, built package).
// Reopened here, the site must hold exactly the snapshots the child reported committed
// (plus at most the next one, committed but not yet reported), each bit-identical to the
// child's model; the only damage a kill may leave is leaked extents, which
// collectGarbage() removes. The child is the fault injector; the checks are here.
import { SeededPrng } from '../../src/testing/internal/seeded-prng.js';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import * as node from '../../src/adapters/node.js';
import { DeviceExtentStore } from '../../src/adapters/index.js';
import type { MetaStore } from '../../src/adapters/meta-store.js';
import { SnapshotTree } from '../../src/snapshot/index.js';

const SEEDS = Array.from({ length: 12 }, (_, i) => 9001 + i);
/** Latest kill, after the child's first snapshot line. */
const MAX_KILL_DELAY_MS = 1500;
const writer = join(__dirname, 'fixtures', 'volume-writer.mjs');

/** A MetaStore class of drkit/adapters/node, looked up by the name the child reports. */
type MetaStoreOpener = { open(options: { path: string; create?: boolean }): Promise<MetaStore> };
function metaStoreClass(name: string): MetaStoreOpener {
  const found = (node as Record<string, unknown>)[name] as MetaStoreOpener | undefined;
  if (typeof found?.open !== 'function') throw new Error(`the child used MetaStore ${name}, which src/adapters/node.ts does not export`);
  return found;
}

/** The kill delay of a seed, from the testing kit's generator. */
function killDelayMs(seed: number): number {
  return new SeededPrng(seed).below(MAX_KILL_DELAY_MS + 1);
}

interface SnapLine {
  snap: string;
  id: string;
  sha256: string;
}

/** Runs the writer until it is killed `delayMs` after its first snapshot line. */
async function runAndKill(dir: string, seed: number, blockBytes: number, delayMs: number, withLog: boolean) {
  const child = spawn(process.execPath, [writer, dir, String(seed), String(blockBytes), withLog ? 'log' : 'direct'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const lines: SnapLine[] = [];
  let metaStore = '';
  /** The last state confirmed durable by a flush, and the one a flush in progress announced. */
  let durable: string | undefined;
  let flushing: string | undefined;
  let killSent = false;
  let timer: NodeJS.Timeout | undefined;
  for await (const line of createInterface({ input: child.stdout! })) {
    const msg = JSON.parse(line) as SnapLine & { metaStore?: string; flushing?: string; durable?: string };
    if (msg.metaStore !== undefined) {
      metaStore = msg.metaStore;
      continue;
    }
    if (msg.flushing !== undefined) {
      flushing = msg.flushing;
      continue;
    }
    if (msg.durable !== undefined) {
      durable = msg.durable;
      flushing = undefined;
      continue;
    }
    // A snapshot is a durable commit too.
    durable = msg.sha256;
    flushing = undefined;
    lines.push(msg);
    if (lines.length === 1) {
      timer = setTimeout(() => {
        killSent = true;
        child.kill('SIGKILL');
      }, delayMs);
    }
  }
  const status = await exited;
  clearTimeout(timer);
  return { lines, metaStore, durable, flushing, ...status, killSent, stderr };
}

async function openSite(dir: string, metaStore: string, withLog: boolean) {
  const device = await node.RawFileBlockDevice.open({ path: join(dir, 'extents.data') });
  const meta = await metaStoreClass(metaStore).open({ path: join(dir, 'meta', 'meta.db'), create: true });
  const extents = await DeviceExtentStore.open({ device, meta });
  const logDevice = withLog ? await node.RawFileBlockDevice.open({ path: join(dir, 'write.log') }) : undefined;
  const tree = await SnapshotTree.open({ meta, extents, writeLog: logDevice });
  return {
    tree,
    async close() {
      await tree.close();
      await extents.close();
      await meta.close();
      await device.close();
      await logDevice?.close();
    },
  };
}

describe('a volume writer SIGKILLed at seeded moments', () => {
  // Not vacuous: across the seeds, many snapshots were checked byte for byte.
  let snapshotsChecked = 0;
  let seedsRun = 0;
  afterAll(() => {
    if (seedsRun === SEEDS.length) expect(snapshotsChecked, 'snapshots checked over all seeds').toBeGreaterThanOrEqual(2 * SEEDS.length);
  });
  for (const seed of SEEDS) {
    const blockBytes = seed % 2 === 0 ? 4096 : 16384;
    const delayMs = killDelayMs(seed);
    // Every third seed runs with a write log and flushes between snapshots.
    const withLog = seed % 3 === 0;
    it(`seed ${seed}: every reported snapshot reads back bit-identical (blockBytes ${blockBytes}, ${withLog ? 'write log, ' : ''}kill +${delayMs} ms)`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'drkit-volume-kill-'));
      const at = `seed ${seed} (blockBytes ${blockBytes}, kill ${delayMs} ms after the first snapshot)`;
      try {
        const run = await runAndKill(dir, seed, blockBytes, delayMs, withLog);
        // The crash really happened mid-run: the child did not exit by itself.
        expect(run.lines.length, `${at}: the child reported no snapshot; stderr: ${run.stderr}`).toBeGreaterThan(0);
        expect(run.killSent, `${at}: the child exited (code ${run.code}) before the kill; stderr: ${run.stderr}`).toBe(true);
        expect(run.signal, `${at}: the child was not killed by SIGKILL (code ${run.code}); stderr: ${run.stderr}`).toBe('SIGKILL');

        const site = await openSite(dir, run.metaStore, withLog);
        try {
          const [volume] = site.tree.listVolumes();
          expect(volume, `${at}: the volume is gone`).toBeDefined();
          const snaps = site.tree.listSnapshots({ volumeId: volume!.id });
          if (withLog) {
            // Every flushed write is there and no unflushed one: the volume is the last state
            // a flush or snapshot confirmed, or the one a flush (or an unreported snapshot)
            // in progress at the kill made durable.
            const allowed = [run.durable, run.flushing].filter((x): x is string => x !== undefined);
            if (snaps.length > run.lines.length) {
              const extra = site.tree.openSnapshot(snaps[run.lines.length]!.id);
              allowed.push(createHash('sha256').update(await extra.read(0, extra.byteLength)).digest('hex'));
              await extra.close();
            }
            const vol = await site.tree.openVolume(volume!.id);
            const now = createHash('sha256').update(await vol.read(0, vol.byteLength)).digest('hex');
            await vol.close();
            expect(allowed, `${at}: the volume holds neither the last durable state nor the one being made durable`).toContain(now);
          }
          const names = snaps.map((s) => s.name);
          const reported = run.lines.map((l) => l.snap);
          // Exactly the reported snapshots, plus at most the next one in sequence (it may have
          // committed just before the kill, its line unprinted).
          const next = `s${reported.length + 1}`;
          expect(names.slice(0, reported.length), `${at}: snapshots after reopen ${names.join(',')} vs reported ${reported.join(',')}`).toEqual(reported);
          expect(names.length - reported.length, `${at}: more than one unreported snapshot: ${names.join(',')}`).toBeLessThanOrEqual(1);
          if (names.length > reported.length) expect(names[reported.length], `${at}: the unreported snapshot is not the next in sequence`).toBe(next);

          for (const line of run.lines) {
            const info = snaps.find((s) => s.name === line.snap)!;
            expect(info.id, `${at}: ${line.snap} changed id`).toBe(line.id);
            const reader = site.tree.openSnapshot(line.id);
            try {
              const bytes = await reader.read(0, reader.byteLength);
              expect(createHash('sha256').update(bytes).digest('hex'), `${at}: ${line.snap} (${line.id}) does not read back as committed`).toBe(line.sha256);
            } finally {
              await reader.close();
            }
            snapshotsChecked++;
          }
          if (names.length > reported.length) {
            // The unreported one has no checksum to compare, but it must read back whole.
            const reader = site.tree.openSnapshot(snaps[reported.length]!.id);
            try {
              expect((await reader.read(0, reader.byteLength)).byteLength, `${at}: ${next} does not read back`).toBe(reader.byteLength);
            } finally {
              await reader.close();
            }
          }

          const report = await site.tree.verify();
          const others = report.problems.filter((p) => p.code !== 'LEAKED_EXTENT');
          expect(others, `${at}: verify after reopen: ${JSON.stringify(others.slice(0, 5))}`).toEqual([]);
          await site.tree.collectGarbage();
          const clean = await site.tree.verify();
          expect(clean.problems, `${at}: verify after collectGarbage: ${JSON.stringify(clean.problems.slice(0, 5))}`).toEqual([]);
          expect(clean.ok, `${at}: verify not ok after collectGarbage`).toBe(true);
          seedsRun++;
        } finally {
          await site.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
