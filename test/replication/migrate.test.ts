// Migrate as one resumable operation between Sites talking the real protocol over
// MemoryTransport. Crashes drop every object of a site and reopen it from the same
// MetaStore and ExtentStore; failures are injected after each step takes effect but
// before its completion is recorded (the hardest place to crash).
import { describe, expect, it } from 'vitest';
import { DrkitError, equalBytes, isDrkitError } from '../../src/index.js';
import { MemoryExtentStore, MemoryMetaStore, MemoryTransport, VirtualClock } from '../../src/adapters/index.js';
import type { Connection, MetaStore, Transport } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import {
  MIGRATION_STEPS,
  Site,
  detectSplitBrain,
  lineageStatus,
  migrate,
  planMigration,
  readMigration,
  resumeMigration,
  rollbackMigration,
  snapshotPromoted,
  type RemoteSite,
} from '../../src/replication/index.js';
import { errorOf } from './site-helpers.js';

const PSK = new Uint8Array(32).fill(7);
const BLOCK_BYTES = 4096;
const VOLUME_BYTES = 256 * BLOCK_BYTES;
const NO_RETRY = { retries: 0 };

interface Stores {
  meta: MemoryMetaStore;
  extents: MemoryExtentStore;
}
interface OpenSite {
  site: Site;
  tree: SnapshotTree;
  remote: RemoteSite;
}

let opened = 0;
/** Opens (or reopens after a crash) a site on its stores, listening at a fresh address. */
async function openSite(siteId: string, stores: Stores, net: Transport, clock: VirtualClock): Promise<OpenSite> {
  const tree = await SnapshotTree.open({ meta: stores.meta, extents: stores.extents, clock });
  const site = await Site.open({ siteId, tree, meta: stores.meta, clock, peerKeys: () => PSK });
  const listener = await site.listen(net, `${siteId}-${++opened}:7000`);
  return { site, tree, remote: { siteId, address: listener.address, transport: net, psk: PSK } };
}

async function newStores(): Promise<Stores> {
  return { meta: await MemoryMetaStore.open(), extents: await MemoryExtentStore.open() };
}

/** Refuses the first `failures` connections with a transient code (a lost link). */
class FlakyTransport implements Transport {
  constructor(private readonly inner: Transport, public failures: number) {}
  async connect(address: string, options?: Parameters<Transport['connect']>[1]): Promise<Connection> {
    if (this.failures > 0) {
      this.failures--;
      throw new DrkitError('CONNECTION_REFUSED', 'injected: link down');
    }
    return this.inner.connect(address, options);
  }
  listen(address: string, options: Parameters<Transport['listen']>[1]) {
    return this.inner.listen(address, options);
  }
}

/** A MetaStore that fails the one batch recording completion of step `failAfter` (the step took effect). */
class FailingStateStore implements MetaStore {
  failed = false;
  constructor(private readonly inner: MetaStore, private readonly failAfter: number) {}
  get: MetaStore['get'] = (k, o) => this.inner.get(k, o);
  getMany: MetaStore['getMany'] = (k, o) => this.inner.getMany(k, o);
  iterate: MetaStore['iterate'] = (r, o) => this.inner.iterate(r, o);
  flush: MetaStore['flush'] = (o) => this.inner.flush(o);
  stats: MetaStore['stats'] = () => this.inner.stats();
  close: MetaStore['close'] = () => this.inner.close();
  batch: MetaStore['batch'] = async (ops, o) => {
    const op = ops[0];
    if (!this.failed && op?.kind === 'put') {
      const rec = JSON.parse(new TextDecoder().decode(op.value)) as { completedSteps?: number; startedStep?: string; lastError?: unknown };
      if (rec.completedSteps === this.failAfter + 1 && rec.startedStep === undefined && rec.lastError === undefined) {
        this.failed = true;
        throw new DrkitError('INJECTED_FAULT', `injected crash after step ${MIGRATION_STEPS[this.failAfter]}`);
      }
    }
    return this.inner.batch(ops, o);
  };
}

async function bytesOf(tree: SnapshotTree, volumeId: string): Promise<Uint8Array> {
  const v = await tree.openVolume(volumeId);
  try {
    return await v.read(0, v.byteLength);
  } finally {
    await v.close();
  }
}

function patterned(seed: number, byteLength: number): Uint8Array {
  const out = new Uint8Array(byteLength);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < byteLength; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    new DataView(out.buffer).setUint32(i, x);
  }
  return out;
}


/** Two sites; A writes a volume of seeded content, replicated once to B. */
async function setup(seed: number) {
  const clock = new VirtualClock(1_000_000);
  const net = MemoryTransport.create();
  const storesA = await newStores();
  const storesB = await newStores();
  const a = await openSite('A', storesA, net, clock);
  const b = await openSite('B', storesB, net, clock);
  const vol = await a.tree.createVolume({ name: 'db', byteLength: VOLUME_BYTES, blockBytes: BLOCK_BYTES });
  await vol.write(0, patterned(seed, VOLUME_BYTES));
  const s0 = await a.tree.snapshot(vol.id, { name: 's0' });
  await a.site.replicate(s0.id, b.remote, NO_RETRY);
  await clock.advance(1000);
  await vol.write(3 * BLOCK_BYTES, patterned(seed + 1, 5 * BLOCK_BYTES)); // not yet replicated
  const expected = await vol.read(0, VOLUME_BYTES);
  return { clock, net, storesA, storesB, a, b, vol, lineage: `A/${vol.id}`, expected };
}

async function expectMigrated(a: OpenSite, b: OpenSite, lineage: string, volumeId: string, expected: Uint8Array, msg: string) {
  const sa = await lineageStatus(a.site, lineage);
  const sb = await lineageStatus(b.site, lineage);
  expect(sa.writableVolumeId, msg).toBeUndefined();
  expect(sb.writableVolumeId, msg).toBeDefined();
  expect(sb.generation, msg).toBe(1);
  expect(equalBytes(await bytesOf(b.tree, sb.writableVolumeId!), expected), `${msg}: target holds the source's writes`).toBe(true);
  expect(equalBytes(await bytesOf(a.tree, volumeId), expected), `${msg}: source volume unchanged`).toBe(true);
  expect(detectSplitBrain([sa, sb]), msg).toMatchObject({ splitBrain: false, currentSiteId: 'B', generation: 1 });
  const record = await readMigration(a.site.meta, lineage);
  expect(record, msg).toMatchObject({ status: 'completed', primarySiteId: 'B', replicaSiteId: 'A', targetGeneration: 1 });
}

describe('migrate', () => {
  it('plans a dry run without changing anything', async () => {
    const { a, b, vol, lineage } = await setup(1);
    const snapshotsBefore = a.tree.listSnapshots().length;
    const plan = await planMigration({ source: a.site, target: b.remote, lineage });
    expect(plan.steps.map((s) => s.kind)).toEqual([...MIGRATION_STEPS]);
    expect(plan.steps.map((s) => s.runsAt)).toEqual(['source', 'source', 'source', 'source', 'target', 'source']);
    for (const s of plan.steps) expect(s.description.length).toBeGreaterThan(10);
    expect(plan).toMatchObject({ sourceSiteId: 'A', targetSiteId: 'B', sourceVolumeId: vol.id, sourceGeneration: 0, targetGeneration: 1, targetVolume: { name: 'db' } });
    expect(a.tree.listSnapshots().length).toBe(snapshotsBefore);
    expect(await readMigration(a.site.meta, lineage)).toBeUndefined();
    expect((await lineageStatus(a.site, lineage)).writableVolumeId).toBe(vol.id);
    expect((await errorOf(planMigration({ source: a.site, target: a.remote, lineage }))).code).toBe('INVALID_ARGUMENT');
    expect((await errorOf(planMigration({ source: b.site, target: a.remote, lineage }))).code).toBe('NOT_FOUND');
    await vol.close();
    await a.site.close();
    await b.site.close();
  });

  it('loses no acknowledged write when migrating during continuous writes, then replicates the other way', async () => {
    for (const seed of [101, 102, 103]) {
      const msg = `seed ${seed}`;
      const { a, b, vol, lineage } = await setup(seed);
      const RECORD_BYTES = 8;
      const acked: number[] = [];
      let stopCode: string | undefined;
      let started = 0;
      const writer = (async () => {
        for (let seq = 0; seq < VOLUME_BYTES / RECORD_BYTES; seq++) {
          const record = new Uint8Array(RECORD_BYTES);
          new DataView(record.buffer).setUint32(0, seq + 1);
          new DataView(record.buffer).setUint32(4, seed);
          started++;
          try {
            await vol.write(seq * RECORD_BYTES, record);
          } catch (err) {
            stopCode = isDrkitError(err) ? err.code : String(err);
            return;
          }
          acked.push(seq);
          // Memory stores resolve on microtasks: yield now and then so the migration runs alongside.
          if (seq % 4 === 0) await new Promise((r) => setImmediate(r));
        }
      })();
      while (acked.length < 20 + (seed % 7)) await new Promise((r) => setImmediate(r));
      const plan = await planMigration({ source: a.site, target: b.remote, lineage, targetVolume: { name: 'db-b' } });
      const result = await migrate({ source: a.site, target: b.remote, lineage, targetVolume: { name: 'db-b' } }, { ...NO_RETRY, plan, targetSite: b.site, sourceVolume: vol });
      await writer;
      expect(result, msg).toMatchObject({ state: 'completed', step: 'reverse-direction' });
      expect(stopCode, msg).toBe('NOT_OPEN');
      expect(acked.length, msg).toBeGreaterThan(20);
      const sb = await lineageStatus(b.site, lineage);
      const got = await bytesOf(b.tree, sb.writableVolumeId!);
      for (const seq of acked) {
        const dv = new DataView(got.buffer, seq * RECORD_BYTES, RECORD_BYTES);
        expect(dv.getUint32(0), `${msg}: acknowledged write ${seq} reached the target`).toBe(seq + 1);
        expect(dv.getUint32(4), msg).toBe(seed);
      }
      expect(b.tree.getVolume(sb.writableVolumeId!).name).toBe('db-b');
      await expectMigrated(a, b, lineage, vol.id, got, msg);
      // The direction is reversed: B's next snapshot replicates incrementally to A.
      const bv = await b.tree.openVolume(sb.writableVolumeId!);
      await bv.write(0, patterned(seed + 9, BLOCK_BYTES));
      const p1 = await snapshotPromoted(b.site, lineage, { name: 'p1' });
      const back = await b.site.replicate(p1.id, a.remote, NO_RETRY);
      expect(back.baseSnapshotIds[0], msg).toBeDefined();
      expect(back.progress.sentExtentBytes, msg).toBeLessThanOrEqual(BLOCK_BYTES);
      // A second migrate of a finished lineage from A is refused: A no longer writes it.
      expect((await errorOf(migrate({ source: a.site, target: b.remote, lineage }, { targetSite: b.site }))).code, msg).toBe('NOT_FOUND');
      await bv.close();
      await a.site.close();
      await b.site.close();
    }
  });

  it('stops resumable when a step fails or a side crashes after it, and resume completes it', async () => {
    for (let failAfter = 0; failAfter < MIGRATION_STEPS.length; failAfter++) {
      const msg = `crash after step ${MIGRATION_STEPS[failAfter]}`;
      const { clock, net, storesA, storesB, a, b, vol, lineage, expected } = await setup(200 + failAfter);
      const stateStore = new FailingStateStore(storesA.meta, failAfter);
      const options = { source: a.site, target: b.remote, lineage };
      const err = await errorOf(migrate(options, { ...NO_RETRY, stateStore, targetSite: b.site, sourceVolume: vol }));
      expect(stateStore.failed, msg).toBe(true);
      expect(err.code, msg).toBe('INJECTED_FAULT');
      expect(err.data, msg).toMatchObject({ state: 'resumable', step: MIGRATION_STEPS[failAfter] });
      const recorded = await readMigration(storesA.meta, lineage);
      expect(recorded, msg).toMatchObject({ status: 'running', completedSteps: failAfter, lastError: { code: 'INJECTED_FAULT' } });
      // A second migrate is refused while this one is under way.
      expect((await errorOf(migrate(options, { targetSite: b.site }))).code, msg).toBe('ALREADY_EXISTS');

      // Both sides crash: every object dropped, reopened from the same stores.
      await a.site.close();
      await b.site.close();
      const a2 = await openSite('A', storesA, net, clock);
      const b2 = await openSite('B', storesB, net, clock);
      const result = await resumeMigration({ source: a2.site, target: b2.remote, lineage }, { ...NO_RETRY, targetSite: b2.site });
      expect(result, msg).toMatchObject({ state: 'completed', step: 'reverse-direction' });
      await expectMigrated(a2, b2, lineage, vol.id, expected, msg);
      expect(await resumeMigration({ source: a2.site, target: b2.remote, lineage }, { targetSite: b2.site }), msg).toMatchObject({ state: 'completed' });
      for (const s of [a2, b2]) {
        expect((await s.tree.verify({ readData: true })).problems, msg).toEqual([]);
        await s.site.close();
      }
    }
  });

  it('a failed replicate leaves it resumable; resumed with nothing but the target address, it promotes by PROMOTE_REQ', async () => {
    const { net, a, b, vol, lineage, expected } = await setup(300);
    const flaky = new FlakyTransport(net, 1);
    const target: RemoteSite = { ...b.remote, transport: flaky };
    const err = await errorOf(migrate({ source: a.site, target, lineage }, { ...NO_RETRY, sourceVolume: vol }));
    expect(err.code).toBe('CONNECTION_REFUSED');
    expect(err.transient).toBe(true);
    expect(err.data).toMatchObject({ state: 'resumable', step: 'replicate' });
    const done = await resumeMigration({ source: a.site, target, lineage }, NO_RETRY);
    expect(done).toMatchObject({ state: 'completed' });
    await expectMigrated(a, b, lineage, vol.id, expected, 'flaky replicate');
    // Resuming again, or repeating the promotion, is answered as done (idempotent).
    expect(await resumeMigration({ source: a.site, target, lineage }, NO_RETRY)).toMatchObject({ state: 'completed' });
    const again = await a.site.promoteRemote(target, [{ lineage, originSnapshotId: done.record.finalSnapshotId!, sourceGeneration: 0, volumeName: 'db' }], NO_RETRY);
    expect(again).toEqual([{ lineage, generation: 1, volumeId: done.record.targetVolumeId }]);
    // Even completed, a rollback by address takes the lineage back: the target (unwritten since) is demoted.
    expect(await rollbackMigration({ source: a.site, lineage, target }, NO_RETRY)).toMatchObject({ state: 'rolled-back' });
    expect(await lineageStatus(b.site, lineage)).toMatchObject({ writableVolumeId: undefined, generation: 0 });
    expect((await lineageStatus(a.site, lineage)).writableVolumeId).toBe(vol.id);
    await a.site.close();
    await b.site.close();
  });

  it('rolls back before the promotion: the source is primary again at its generation', async () => {
    // Stop after: final-snapshot (1), replicate (2), demote-source (3), and awaiting promote (4).
    for (const stopAfter of [1, 2, 3, 4]) {
      const msg = `rollback after step ${MIGRATION_STEPS[stopAfter]}`;
      const { a, b, vol, lineage, expected } = await setup(400 + stopAfter);
      const options = { source: a.site, target: b.remote, lineage };
      if (stopAfter === 4) {
        // The link fails when the promotion is asked for (the replicate used the first connections).
        const flaky = new FlakyTransport(b.remote.transport, 0);
        const onStep = (step: string) => {
          if (step === 'demote-source') flaky.failures = 1;
        };
        const err = await errorOf(migrate({ ...options, target: { ...b.remote, transport: flaky } }, { ...NO_RETRY, sourceVolume: vol, onStep }));
        expect(err.data, msg).toMatchObject({ state: 'resumable', step: 'promote-target' });
        // The promotion may have run at the target: rollback needs the target (address or Site) to check.
        expect((await errorOf(rollbackMigration({ source: a.site, lineage }))).code, msg).toBe('INVALID_ARGUMENT');
      } else {
        const onStep = (step: string) => {
          if (step === MIGRATION_STEPS[stopAfter - 1]) throw new DrkitError('INJECTED_FAULT', 'stop here');
        };
        const err = await errorOf(migrate(options, { ...NO_RETRY, sourceVolume: vol, targetSite: b.site, onStep }));
        expect(err.data, msg).toMatchObject({ state: 'resumable', step: MIGRATION_STEPS[stopAfter] });
      }
      // Checked by address for the last case: the target's status over the wire.
      const rolled = stopAfter === 4 ? await rollbackMigration({ source: a.site, lineage, target: b.remote }, NO_RETRY) : await rollbackMigration({ source: a.site, lineage }, { targetSite: b.site });
      expect(rolled, msg).toMatchObject({ state: 'rolled-back', step: MIGRATION_STEPS[stopAfter] });
      const sa = await lineageStatus(a.site, lineage);
      expect(sa, msg).toMatchObject({ writableVolumeId: vol.id, generation: 0 });
      expect((await lineageStatus(b.site, lineage)).writableVolumeId, msg).toBeUndefined();
      expect(await resumeMigration(options, { targetSite: b.site }), msg).toMatchObject({ state: 'rolled-back' });
      // A writes and replicates to B again, as before the migration.
      const reopened = await a.tree.openVolume(vol.id);
      expect(equalBytes(await reopened.read(0, VOLUME_BYTES), expected), msg).toBe(true);
      await reopened.write(0, patterned(9, BLOCK_BYTES));
      const s = await snapshotPromoted(a.site, lineage, { name: 'after-rollback' });
      const sent = await a.site.replicate(s.id, b.remote, NO_RETRY);
      expect(sent.baseSnapshotIds[0], msg).toBeDefined();
      // And a new migration may start.
      expect(await migrate(options, { ...NO_RETRY, sourceVolume: reopened, targetSite: b.site }), msg).toMatchObject({ state: 'completed' });
      await a.site.close();
      await b.site.close();
    }
  });

  it('rolls back a completed migration through targetSite (the target demoted in-process); refuses once the target wrote', async () => {
    for (const written of [false, true]) {
      const msg = written ? 'target written since' : 'target unwritten';
      const { a, b, vol, lineage } = await setup(600 + Number(written));
      const done = await migrate({ source: a.site, target: b.remote, lineage }, { ...NO_RETRY, sourceVolume: vol, targetSite: b.site });
      if (written) {
        const at = await b.tree.openVolume(done.record.targetVolumeId!);
        await at.write(0, patterned(61, BLOCK_BYTES));
        await at.close();
        expect((await errorOf(rollbackMigration({ source: a.site, lineage }, { targetSite: b.site }))).code, msg).toBe('DIVERGED');
        expect((await lineageStatus(b.site, lineage)).writableVolumeId, msg).toBe(done.record.targetVolumeId);
        expect((await lineageStatus(a.site, lineage)).writableVolumeId, msg).toBeUndefined();
      } else {
        expect(await rollbackMigration({ source: a.site, lineage }, { targetSite: b.site }), msg).toMatchObject({ state: 'rolled-back' });
        expect(await lineageStatus(b.site, lineage), msg).toMatchObject({ writableVolumeId: undefined, generation: 0 });
        expect(await lineageStatus(a.site, lineage), msg).toMatchObject({ writableVolumeId: vol.id, generation: 0 });
      }
      await a.site.close();
      await b.site.close();
    }
  });

  it('refuses to demote a source written after the stop, and resume retakes the final snapshot', async () => {
    const { a, b, vol, lineage } = await setup(500);
    const other = await a.tree.openVolume(vol.id); // a second writer the stop does not reach
    const onStep = async (step: string) => {
      if (step === 'replicate') await other.write(7 * BLOCK_BYTES, patterned(77, BLOCK_BYTES));
    };
    const err = await errorOf(migrate({ source: a.site, target: b.remote, lineage }, { ...NO_RETRY, sourceVolume: vol, targetSite: b.site, onStep }));
    expect(err.code).toBe('DIVERGED');
    expect(err.data).toMatchObject({ state: 'resumable', step: 'final-snapshot' });
    expect((await lineageStatus(a.site, lineage)).writableVolumeId).toBe(vol.id);
    await other.close();
    const late = await bytesOf(a.tree, vol.id);
    expect(await resumeMigration({ source: a.site, target: b.remote, lineage }, { ...NO_RETRY, targetSite: b.site })).toMatchObject({ state: 'completed' });
    await expectMigrated(a, b, lineage, vol.id, late, 'late write kept');
    await a.site.close();
    await b.site.close();
  });
});
