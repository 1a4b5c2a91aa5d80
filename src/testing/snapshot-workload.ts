/**
 * Runs a snapshot workload against a SnapshotTree and the {@link SnapshotModel} side by
 * side and checks, after every operation, that every snapshot still reads back exactly
 * as it was created ("a snapshot never changes after creation"), that diffs report
 * exactly the changed blocks, and at the end that the tree's verifier is clean.
 * Crash operations need an environment that can crash and reopen the stores.
 */
import { equalBytes, toHex } from '../core/bytes.js';
import { DrkitError, isDrkitError } from '../core/errors.js';
import type { SnapshotTree } from '../snapshot/index.js';
import type { Volume } from '../snapshot/index.js';
import type { SnapshotOp } from './snapshot-arbitraries.js';
import { SnapshotModel, type ModelSnapshot, type ModelVolume } from './snapshot-model.js';

/** What the runner needs from the system under test. */
export interface SnapshotWorkloadEnv {
  /** The tree as currently open. */
  tree(): SnapshotTree;
  /** Flushes, closes and reopens the tree (a clean restart). */
  reopen(): Promise<SnapshotTree>;
  /** Simulates power loss now and reopens the tree on what survived. */
  crash?(): Promise<SnapshotTree>;
  /** Arms a crash at the `afterWrites`th device write from now. */
  armCrash?(afterWrites: number): void;
  /** Cancels an armed crash; returns true when it already fired (perhaps in background I/O the operation did not wait for). */
  disarmCrash?(): boolean;
}

/** Options of {@link runSnapshotWorkload}. */
export interface SnapshotWorkloadOptions {
  byteLength: number;
  blockBytes: number;
}

/** Statistics of one run. */
export interface SnapshotWorkloadStats {
  opsRun: number;
  crashes: number;
  snapshotsChecked: number;
}

const isCrash = (err: unknown): boolean => {
  for (let e: unknown = err; e !== undefined && e !== null; e = (e as { cause?: unknown }).cause) {
    if (isDrkitError(e, 'CRASHED')) return true;
  }
  return false;
};

function fail(message: string, data: Record<string, unknown> = {}): never {
  throw new DrkitError('INTERNAL', `snapshot workload: ${message}`, { data });
}

/**
 * Runs `ops`. Throws (with the op index in the message) at the first divergence.
 * @throws INTERNAL describing the divergence
 */
export async function runSnapshotWorkload(env: SnapshotWorkloadEnv, ops: readonly SnapshotOp[], options: SnapshotWorkloadOptions): Promise<SnapshotWorkloadStats> {
  const { byteLength, blockBytes } = options;
  let model = new SnapshotModel();
  const handles = new Map<string, Volume>();
  const stats: SnapshotWorkloadStats = { opsRun: 0, crashes: 0, snapshotsChecked: 0 };

  const first = await env.tree().createVolume({ name: 'v0', byteLength, blockBytes });
  handles.set(first.id, first);
  model.createVolume(first.id, byteLength);

  const handle = async (v: ModelVolume) => {
    let h = handles.get(v.id);
    if (h === undefined) {
      h = await env.tree().openVolume(v.id);
      handles.set(v.id, h);
    }
    return h;
  };
  const pickVol = (i: number) => pickVolume(model, i);
  const pickSnap = (i: number) => pickSnapshot(model, i);

  const apply = async (op: SnapshotOp, m: SnapshotModel): Promise<void> => {
    const tree = env.tree();
    switch (op.kind) {
      case 'write': {
        const v = pickVol(op.vol);
        await (await handle(v)).write(op.byteOffset, op.data);
        m.write(v, op.byteOffset, op.data);
        return;
      }
      case 'discard': {
        const v = pickVol(op.vol);
        await (await handle(v)).discard(op.byteOffset, op.byteLength);
        m.discard(v, op.byteOffset, op.byteLength);
        return;
      }
      case 'snapshot': {
        const v = pickVol(op.vol);
        const info = await tree.snapshot(v.id, { name: `s-of-${v.id}` });
        m.snapshot([v], [info.id]);
        return;
      }
      case 'group': {
        const vols = [...new Set(op.vols.map(pickVol))];
        const infos = await tree.snapshotGroup(vols.map((v) => v.id), { name: 'cg' });
        m.snapshot(vols, infos.map((i) => i.id));
        return;
      }
      case 'clone': {
        const s = pickSnap(op.snap);
        if (s === undefined) return;
        const vol = await tree.clone(s.id, { name: `clone-of-${s.id}` });
        handles.set(vol.id, vol);
        m.clone(s, vol.id);
        return;
      }
      case 'restore': {
        const s = pickSnap(op.snap);
        if (s === undefined) return;
        const v = pickVol(op.vol);
        await tree.restore(v.id, s.id);
        m.restore(v, s);
        return;
      }
      case 'deleteSnapshot': {
        const s = pickSnap(op.snap);
        if (s === undefined) return;
        await tree.deleteSnapshot(s.id);
        m.deleteSnapshot(s);
        return;
      }
      case 'deleteVolume': {
        if (m.volumes.length <= 1) return;
        const v = pickVol(op.vol);
        await handles.get(v.id)?.close();
        handles.delete(v.id);
        await tree.deleteVolume(v.id);
        m.deleteVolume(v);
        return;
      }
      case 'diff': {
        const to = pickSnap(op.to);
        if (to === undefined) return;
        const from = op.from < 0 ? undefined : pickSnap(op.from);
        const got: number[] = [];
        for await (const r of tree.diff(from?.id, to.id)) {
          r.fingerprints.forEach((fp, i) => {
            const b = r.blockIndex + i;
            const content = to.bytes.subarray(b * blockBytes, (b + 1) * blockBytes);
            const zero = content.every((x) => x === 0);
            if (zero !== (fp === undefined)) fail(`diff reports block ${b} as ${fp === undefined ? 'zero' : 'data'}`);
            if (fp !== undefined && !equalBytes(fp, tree.fingerprinter.fingerprint(content))) fail(`diff fingerprint of block ${b} is wrong`);
            got.push(b);
          });
        }
        const want = SnapshotModel.changedBlocks(from?.bytes, to.bytes, blockBytes);
        if (got.join(',') !== want.join(',')) fail(`diff(${from?.id}, ${to.id}) = [${got}], expected [${want}]`);
        return;
      }
      case 'read': {
        const s = pickSnap(op.snap);
        if (s === undefined) return;
        const reader = tree.openSnapshot(s.id);
        try {
          const got = await reader.read(op.byteOffset, op.byteLength);
          if (!equalBytes(got, s.bytes.subarray(op.byteOffset, op.byteOffset + op.byteLength))) fail(`read of ${s.id} differs`);
        } finally {
          await reader.close();
        }
        return;
      }
      case 'flush':
        await tree.flush();
        m.commit();
        return;
      case 'reclaim':
        await tree.reclaim({ maxNodes: op.maxNodes });
        m.commit();
        return;
      case 'reopen':
        handles.clear();
        await env.reopen();
        m.commit();
        return;
      case 'crash':
        if (env.crash === undefined) return;
        handles.clear();
        await env.crash();
        stats.crashes++;
        m.crash();
        return;
      case 'crashDuring':
        return;
    }
  };

  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    try {
      if (op.kind === 'crashDuring' && env.crash !== undefined && env.armCrash !== undefined) {
        const pre = cloneModel(model);
        env.armCrash(op.afterWrites);
        try {
          await apply(op.op, model);
          if (env.disarmCrash?.() === true) throw new DrkitError('CRASHED', 'armed crash fired in background I/O');
        } catch (err) {
          if (!isCrash(err)) throw err;
          handles.clear();
          await env.crash();
          stats.crashes++;
          model = await reconcileAfterCrash(env.tree(), op.op, pre, model);
        }
      } else {
        await apply(op, model);
      }
      stats.opsRun++;
      stats.snapshotsChecked += await checkState(env.tree(), model, handles, false);
    } catch (err) {
      throw new DrkitError('INTERNAL', `op #${i} ${describe(op)} failed: ${(err as Error).message}`, { cause: err });
    }
  }
  await env.tree().collectGarbage();
  const report = await env.tree().verify({ readData: true });
  if (!report.ok) fail(`verifier found ${report.problems.length} problems: ${JSON.stringify(report.problems.slice(0, 5))}`);
  await checkState(env.tree(), model, handles, true);
  for (const h of handles.values()) await h.close();
  return stats;
}

function describe(op: SnapshotOp): string {
  return JSON.stringify(op, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.length} bytes ${toHex(v.subarray(0, 4))}..>` : v));
}

function cloneModel(m: SnapshotModel): SnapshotModel {
  const c = new SnapshotModel();
  for (const v of m.volumes) c.volumes.push({ id: v.id, bytes: v.bytes.slice(), durable: v.durable.slice() });
  for (const s of m.snapshots) c.snapshots.push({ ...s });
  return c;
}

/**
 * After a crash in the middle of an operation the tree must be in the state before it
 * or (if its commit became durable) after it. `post` is the model with the operation
 * applied as far as it got. Returns the model that matches, crashed.
 */
async function reconcileAfterCrash(tree: SnapshotTree, op: SnapshotOp, pre: SnapshotModel, post: SnapshotModel): Promise<SnapshotModel> {
  const sysSnaps = new Set(tree.listSnapshots().map((s) => s.id));
  const sysVols = new Set(tree.listVolumes().map((v) => v.id));
  const committed = cloneModel(pre);
  committed.commit();
  const candidates = [pre, committed, post, synthesizePost(op, pre, sysSnaps, sysVols)]
    .filter((m): m is SnapshotModel => m !== undefined)
    .map((m) => {
      const c = cloneModel(m);
      c.crash();
      return c;
    });
  const problems: string[] = [];
  for (const c of candidates) {
    const sameSnaps = c.snapshots.length === sysSnaps.size && c.snapshots.every((s) => sysSnaps.has(s.id));
    const sameVols = c.volumes.length === sysVols.size && c.volumes.every((v) => sysVols.has(v.id));
    if (!sameSnaps || !sameVols) {
      problems.push(`ids differ: model snaps [${c.snapshots.map((s) => s.id)}] vols [${c.volumes.map((v) => v.id)}], tree [${[...sysSnaps]}] [${[...sysVols]}]`);
      continue;
    }
    const mismatch = await firstMismatch(tree, c);
    if (mismatch === undefined) {
      c.commit();
      return c;
    }
    problems.push(mismatch);
  }
  return fail(`state after crash matches neither before nor after the operation: ${problems.join(' | ')}`);
}

/**
 * The model after `op` completed, for operations whose new ids the crashed call never
 * returned: the ids are taken from what the reopened tree lists.
 */
function synthesizePost(op: SnapshotOp, pre: SnapshotModel, sysSnaps: Set<string>, sysVols: Set<string>): SnapshotModel | undefined {
  const freshSnaps = [...sysSnaps].filter((id) => !pre.snapshots.some((s) => s.id === id)).sort(bySeq);
  const freshVols = [...sysVols].filter((id) => !pre.volumes.some((v) => v.id === id)).sort(bySeq);
  const m = cloneModel(pre);
  if (op.kind === 'snapshot' && freshSnaps.length === 1) {
    m.snapshot([pickVolume(m, op.vol)], freshSnaps);
    return m;
  }
  if (op.kind === 'group' && freshSnaps.length > 0) {
    const vols = [...new Set(op.vols.map((i) => pickVolume(m, i)))];
    if (vols.length !== freshSnaps.length) return undefined;
    m.snapshot(vols, freshSnaps);
    return m;
  }
  if (op.kind === 'restore') {
    const s = pickSnapshot(m, op.snap);
    if (s === undefined) return undefined;
    m.restore(pickVolume(m, op.vol), s);
    return m;
  }
  if (op.kind === 'deleteSnapshot') {
    const s = pickSnapshot(m, op.snap);
    if (s === undefined || sysSnaps.has(s.id)) return undefined;
    m.deleteSnapshot(s);
    return m;
  }
  if (op.kind === 'deleteVolume') {
    const v = pickVolume(m, op.vol);
    if (m.volumes.length <= 1 || sysVols.has(v.id)) return undefined;
    m.deleteVolume(v);
    return m;
  }
  if (op.kind === 'clone' && freshVols.length === 1) {
    const s = pickSnapshot(m, op.snap);
    if (s === undefined) return undefined;
    m.clone(s, freshVols[0]!);
    return m;
  }
  return undefined;
}

function bySeq(a: string, b: string): number {
  return Number(a.slice(a.lastIndexOf('-') + 1)) - Number(b.slice(b.lastIndexOf('-') + 1));
}

function pickVolume(m: SnapshotModel, i: number): ModelVolume {
  return m.volumes[i % m.volumes.length]!;
}

function pickSnapshot(m: SnapshotModel, i: number): ModelSnapshot | undefined {
  return m.snapshots.length === 0 ? undefined : m.snapshots[i % m.snapshots.length];
}

async function firstMismatch(tree: SnapshotTree, m: SnapshotModel): Promise<string | undefined> {
  for (const s of m.snapshots) {
    const r = tree.openSnapshot(s.id);
    try {
      if (!equalBytes(await r.read(0, r.byteLength), s.bytes)) return `snapshot ${s.id} content differs`;
    } finally {
      await r.close();
    }
  }
  for (const v of m.volumes) {
    const h = await tree.openVolume(v.id);
    try {
      if (!equalBytes(await h.read(0, h.byteLength), v.bytes)) return `volume ${v.id} content differs`;
    } finally {
      await h.close();
    }
  }
  return undefined;
}

/** Every snapshot reads back bit-identical; with `volumesToo`, every volume as well. */
async function checkState(tree: SnapshotTree, m: SnapshotModel, handles: Map<string, Volume>, volumesToo: boolean): Promise<number> {
  const listed = tree.listSnapshots().map((s) => s.id).sort().join(',');
  const modelled = m.snapshots.map((s) => s.id).sort().join(',');
  if (listed !== modelled) fail(`snapshots listed [${listed}], model has [${modelled}]`);
  const mismatch = await firstMismatch(tree, volumesToo ? m : Object.assign(new SnapshotModel(), { snapshots: m.snapshots }));
  if (mismatch !== undefined) fail(mismatch);
  void handles;
  return m.snapshots.length;
}
