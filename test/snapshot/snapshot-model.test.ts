// Model-based tests of SnapshotTree against the flat-array SnapshotModel, on memory
// stores, on crash-prone stores (LogMetaStore + DeviceExtentStore over
// FaultyBlockDevice, memory- and raw-file-backed), and on the default stores
// (LmdbMetaStore + DeviceExtentStore) with the extents device crash-prone: a process
// crash, where LMDB keeps its committed transactions and the device loses unflushed writes. fast-check prints the seed and the
// shrunk operation list of any failure; rerun with DRKIT_SEED=<seed>.
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlockDevice } from '../../src/adapters/index.js';
import { DeviceExtentStore, LogMetaStore, MemoryBlockDevice, MemoryExtentStore, MemoryMetaStore, VirtualClock } from '../../src/adapters/index.js';
import { LmdbMetaStore, RawFileBlockDevice } from '../../src/adapters/node.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { FaultyBlockDevice, runSnapshotWorkload, snapshotOpsArbitrary, type SnapshotWorkloadEnv } from '../../src/testing/index.js';

const seed = process.env.DRKIT_SEED === undefined ? 20261125 : Number(process.env.DRKIT_SEED);
const clock = new VirtualClock(1_700_000_000_000);

/** Geometries: one small (single leaf) and one taller tree (> 256 blocks: height 2). */
const geometries = [
  { byteLength: 16 * 4096, blockBytes: 4096 },
  { byteLength: 300 * 512, blockBytes: 512 },
];

async function memoryEnv(): Promise<SnapshotWorkloadEnv> {
  const meta = await MemoryMetaStore.open();
  const extents = await MemoryExtentStore.open();
  let tree = await SnapshotTree.open({ meta, extents, clock });
  return {
    tree: () => tree,
    reopen: async () => {
      await tree.flush();
      await tree.close();
      tree = await SnapshotTree.open({ meta, extents, clock });
      return tree;
    },
  };
}

/** Metadata and extents on two crash-prone devices; the extent index shares the MetaStore. */
async function faultyEnv(runSeed: number, makeInner: (name: string) => Promise<BlockDevice>): Promise<SnapshotWorkloadEnv> {
  const metaInner = await makeInner('meta');
  const dataInner = await makeInner('data');
  let generation = 0;
  let metaDev!: FaultyBlockDevice;
  let dataDev!: FaultyBlockDevice;
  let meta!: LogMetaStore;
  let extents!: DeviceExtentStore;
  let tree!: SnapshotTree;
  const open = async () => {
    generation++;
    metaDev = new FaultyBlockDevice(metaInner, { seed: runSeed * 1000 + generation, ownsInner: false });
    dataDev = new FaultyBlockDevice(dataInner, { seed: runSeed * 1000 + generation + 500, ownsInner: false });
    meta = await LogMetaStore.open({ device: metaDev, compactMinDeadBytes: 64 * 1024 });
    extents = await DeviceExtentStore.open({ device: dataDev, meta, allocationUnitBytes: 512 });
    tree = await SnapshotTree.open({ meta, extents, clock });
    return tree;
  };
  await open();
  return {
    tree: () => tree,
    reopen: async () => {
      await tree.flush();
      await tree.close();
      await extents.close();
      await meta.close();
      await metaDev.close();
      await dataDev.close();
      return open();
    },
    crash: async () => {
      await metaDev.crash();
      await dataDev.crash();
      return open();
    },
    armCrash: (afterWrites) => (generation % 2 === 0 ? dataDev : metaDev).crashAfterWrites(afterWrites),
    disarmCrash: () => {
      metaDev.crashAfterWrites(Number.MAX_SAFE_INTEGER);
      dataDev.crashAfterWrites(Number.MAX_SAFE_INTEGER);
      return metaDev.crashed || dataDev.crashed;
    },
  };
}

/**
 * Metadata, extents and a write log on three crash-prone devices. The log is large
 * enough that the workload never fills it (a full log drains, which commits durably
 * earlier than the model expects); its own backpressure is tested in write-log.test.ts.
 */
async function loggedEnv(runSeed: number): Promise<SnapshotWorkloadEnv> {
  const inner = { meta: await MemoryBlockDevice.create({ byteLength: 1 << 20 }), data: await MemoryBlockDevice.create({ byteLength: 1 << 20 }), log: await MemoryBlockDevice.create({ byteLength: 4 << 20 }) };
  let generation = 0;
  let devs!: { meta: FaultyBlockDevice; data: FaultyBlockDevice; log: FaultyBlockDevice };
  let meta!: LogMetaStore;
  let extents!: DeviceExtentStore;
  let tree!: SnapshotTree;
  const open = async () => {
    generation++;
    const seedOf = (k: number) => runSeed * 1000 + generation * 3 + k;
    devs = {
      meta: new FaultyBlockDevice(inner.meta, { seed: seedOf(0), ownsInner: false }),
      data: new FaultyBlockDevice(inner.data, { seed: seedOf(1), ownsInner: false }),
      log: new FaultyBlockDevice(inner.log, { seed: seedOf(2), ownsInner: false }),
    };
    meta = await LogMetaStore.open({ device: devs.meta, compactMinDeadBytes: 64 * 1024 });
    extents = await DeviceExtentStore.open({ device: devs.data, meta, allocationUnitBytes: 512 });
    tree = await SnapshotTree.open({ meta, extents, clock, writeLog: devs.log });
    return tree;
  };
  await open();
  const all = () => [devs.meta, devs.data, devs.log];
  return {
    tree: () => tree,
    reopen: async () => {
      await tree.flush();
      await tree.close();
      await extents.close();
      await meta.close();
      for (const d of all()) await d.close();
      return open();
    },
    crash: async () => {
      for (const d of all()) await d.crash();
      return open();
    },
    armCrash: (afterWrites) => all()[generation % 3]!.crashAfterWrites(afterWrites),
    disarmCrash: () => {
      for (const d of all()) d.crashAfterWrites(Number.MAX_SAFE_INTEGER);
      return all().some((d) => d.crashed);
    },
  };
}

const tmp = mkdtempSync(join(tmpdir(), 'drkit-snapmodel-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileSeq = 0;

/**
 * The default stores, LMDB metadata and a crash-prone extents device (a process crash).
 * `expectExactStats` checks the LMDB store's counters against a scan: the tree's commits
 * pass `replaces` hints, which LmdbMetaStore trusts instead of reading each key.
 */
async function lmdbEnv(runSeed: number): Promise<SnapshotWorkloadEnv & { expectExactStats(): Promise<void> }> {
  const path = join(tmp, `lmdb-${++fileSeq}`);
  const dataInner = await RawFileBlockDevice.open({ path: `${path}.img`, create: { byteLength: 1 << 20 } });
  let generation = 0;
  let dataDev!: FaultyBlockDevice;
  let meta!: LmdbMetaStore;
  let extents!: DeviceExtentStore;
  let tree!: SnapshotTree;
  const open = async () => {
    generation++;
    dataDev = new FaultyBlockDevice(dataInner, { seed: runSeed * 1000 + generation, ownsInner: false });
    meta = await LmdbMetaStore.open({ path, create: true });
    extents = await DeviceExtentStore.open({ device: dataDev, meta, allocationUnitBytes: 512 });
    tree = await SnapshotTree.open({ meta, extents, clock });
    return tree;
  };
  await open();
  const closeAll = async () => {
    await tree.close();
    await extents.close();
    await meta.close();
  };
  return {
    tree: () => tree,
    reopen: async () => {
      await tree.flush();
      await closeAll();
      await dataDev.close();
      return open();
    },
    crash: async () => {
      await dataDev.crash();
      // tree.close() flushes, which fails on the crashed device: release every store anyway.
      for (const close of [() => tree.close(), () => extents.close(), () => meta.close()]) await close().catch(() => undefined);
      return open();
    },
    armCrash: (afterWrites) => dataDev.crashAfterWrites(afterWrites),
    disarmCrash: () => {
      dataDev.crashAfterWrites(Number.MAX_SAFE_INTEGER);
      return dataDev.crashed;
    },
    expectExactStats: async () => {
      await tree.flush();
      let keyCount = 0;
      let liveBytes = 0;
      for await (const [key, value] of meta.iterate()) {
        keyCount++;
        liveBytes += key.length + value.length;
      }
      const stats = await meta.stats();
      expect({ keyCount: stats.keyCount, liveBytes: stats.liveBytes }).toEqual({ keyCount, liveBytes });
    },
  };
}

describe('SnapshotTree against the model', () => {
  for (const g of geometries) {
    it(`memory stores, ${g.byteLength / g.blockBytes} blocks of ${g.blockBytes} B (seed ${seed})`, async () => {
      await fc.assert(
        fc.asyncProperty(snapshotOpsArbitrary({ byteLength: g.byteLength, faults: false, maxOps: 40 }), async (ops) => {
          await runSnapshotWorkload(await memoryEnv(), ops, g);
        }),
        { seed, numRuns: 60 },
      );
    });

    it(`crash-prone memory devices, ${g.byteLength / g.blockBytes} blocks (seed ${seed})`, async () => {
      let run = 0;
      let crashes = 0;
      await fc.assert(
        fc.asyncProperty(snapshotOpsArbitrary({ byteLength: g.byteLength, maxOps: 30 }), async (ops) => {
          const env = await faultyEnv(++run, () => MemoryBlockDevice.create({ byteLength: 1 << 20 }));
          crashes += (await runSnapshotWorkload(env, ops, g)).crashes;
        }),
        { seed, numRuns: 60 },
      );
      // The property is only meaningful if crashes really happened, inside operations too.
      expect(crashes).toBeGreaterThan(20);
    });
  }

  it(`default stores (LMDB metadata), crash-prone extents device (seed ${seed})`, async () => {
    let run = 0;
    let crashes = 0;
    const g = geometries[1]!;
    await fc.assert(
      fc.asyncProperty(snapshotOpsArbitrary({ byteLength: g.byteLength, maxOps: 25 }), async (ops) => {
        const env = await lmdbEnv(++run);
        crashes += (await runSnapshotWorkload(env, ops, g)).crashes;
        await env.expectExactStats();
      }),
      { seed, numRuns: 30 },
    );
    expect(crashes).toBeGreaterThan(5);
  });

  for (const g of geometries) {
    it(`write log on crash-prone devices, ${g.byteLength / g.blockBytes} blocks of ${g.blockBytes} B (seed ${seed})`, async () => {
      let run = 0;
      let crashes = 0;
      await fc.assert(
        fc.asyncProperty(snapshotOpsArbitrary({ byteLength: g.byteLength, maxOps: 30 }), async (ops) => {
          crashes += (await runSnapshotWorkload(await loggedEnv(++run), ops, g)).crashes;
        }),
        { seed, numRuns: 60 },
      );
      expect(crashes).toBeGreaterThan(20);
    });
  }

  it(`crash-prone raw files (seed ${seed})`, async () => {
    let run = 0;
    const g = geometries[0]!;
    await fc.assert(
      fc.asyncProperty(snapshotOpsArbitrary({ byteLength: g.byteLength, maxOps: 25 }), async (ops) => {
        const env = await faultyEnv(++run, (name) =>
          RawFileBlockDevice.open({ path: join(tmp, `${name}-${++fileSeq}.img`), create: { byteLength: 1 << 20 } }),
        );
        await runSnapshotWorkload(env, ops, g);
      }),
      { seed, numRuns: 15 },
    );
  });
});
