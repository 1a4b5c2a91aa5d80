// Two senders of the same snapshot to the same target at once (issue 14): one proceeds,
// the other is refused with BUSY (transient) while the first holds the snapshot, and a
// sender that retries then finds the snapshot committed. The target ends with exactly
// one copy, bit-identical. Covers two replicate() calls of one Site (same session id),
// two sites sending one origin snapshot (a chain and its origin: different session ids),
// and a first sender that disconnects (its hold ends with its connection).
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../../src/index.js';
import { MemoryExtentStore, MemoryMetaStore, MemoryTransport } from '../../src/adapters/index.js';
import { isDrkitError } from '../../src/core/errors.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { ReceiverState, sessionIdOf, type BeginRequest, type ReplicationProgress } from '../../src/replication/index.js';
import { SeededPrng } from '../../src/testing/index.js';
import { memorySite, snapshotBytes as content } from './site-helpers.js';

const KiB = 1024;
const PSK = new Uint8Array(32).fill(11);
/** 2 MiB at 1 MiB/s (after a 1 s burst): the first transfer stays in flight for about a second. */
const SLOW = { bandwidthBytesPerSec: 1024 * 1024 };

const makeSite = (siteId: string, net: MemoryTransport) => memorySite(siteId, net, PSK);


async function snapshotOfRandomVolume(tree: SnapshotTree, seed: number) {
  const vol = await tree.createVolume({ name: `v${seed}`, byteLength: 128 * 16 * KiB });
  await vol.write(0, new SeededPrng(seed).fill(new Uint8Array(vol.byteLength)));
  const snapshot = await tree.snapshot(vol.id, { name: 'snap' });
  await vol.close();
  return snapshot;
}

/** Resolves once `onProgress` saw the scan phase: every BEGIN was answered, so the receiver holds the session. */
function transferring(): { onProgress: (p: ReplicationProgress) => void; started: Promise<void> } {
  let resolve!: () => void;
  const started = new Promise<void>((r) => (resolve = r));
  return { onProgress: (p) => p.phase === 'scan' && resolve(), started };
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    if (isDrkitError(err)) return err.code;
    throw err;
  }
}

describe('concurrent senders of one snapshot to one target', () => {
  it('two replicate() calls of one site: the second gets BUSY, or waits and gets the same snapshot', async () => {
    const net = MemoryTransport.create();
    const a = await makeSite('A', net);
    const b = await makeSite('B', net);
    const s = await snapshotOfRandomVolume(a.tree, 1);
    const progress = transferring();
    const first = a.site.replicate(s.id, b.remote, { ...SLOW, onProgress: progress.onProgress, retries: 0 });
    await progress.started;
    expect(await codeOf(a.site.replicate(s.id, b.remote, { retries: 0 }))).toBe('BUSY');
    const waiting = a.site.replicate(s.id, b.remote, { retries: 8, retryDelayMs: 100 });
    const [r1, r2] = await Promise.all([first, waiting]);
    expect(r2.remoteSnapshotIds).toEqual(r1.remoteSnapshotIds);
    expect(b.site.listSnapshots().map((x) => x.id)).toEqual([...r1.remoteSnapshotIds]);
    expect(equalBytes(await content(b.tree, r1.remoteSnapshotIds[0]!), await content(a.tree, s.id))).toBe(true);
    expect(b.site.listVolumes()).toEqual([]);
    await a.site.close();
    await b.site.close();
  });

  it('an origin and a chain site sending the same origin snapshot: separate sessions, one copy at the target', async () => {
    const net = MemoryTransport.create();
    const a = await makeSite('A', net);
    const b = await makeSite('B', net);
    const c = await makeSite('C', net);
    const s = await snapshotOfRandomVolume(a.tree, 2);
    const atB = (await a.site.replicate(s.id, b.remote)).remoteSnapshotIds[0]!;
    expect(sessionIdOf('A', s.id, 'A', 'C')).not.toBe(sessionIdOf('A', s.id, 'B', 'C'));
    const progress = transferring();
    const fromA = a.site.replicate(s.id, c.remote, { ...SLOW, onProgress: progress.onProgress, retries: 0 });
    await progress.started;
    expect(await codeOf(b.site.replicate(atB, c.remote, { retries: 0 }))).toBe('BUSY');
    const fromB = b.site.replicate(atB, c.remote, { retries: 8, retryDelayMs: 100 });
    const [ra, rb] = await Promise.all([fromA, fromB]);
    expect(rb.remoteSnapshotIds).toEqual(ra.remoteSnapshotIds);
    expect(c.site.listSnapshots()).toHaveLength(1);
    expect(equalBytes(await content(c.tree, ra.remoteSnapshotIds[0]!), await content(a.tree, s.id))).toBe(true);
    for (const x of [a, b, c]) await x.site.close();
  });

  it('a sender that disconnects releases the snapshot: the next sender resumes its session', async () => {
    const net = MemoryTransport.create();
    const a = await makeSite('A', net);
    const b = await makeSite('B', net);
    const s = await snapshotOfRandomVolume(a.tree, 3);
    const controller = new AbortController();
    const progress = transferring();
    const first = a.site.replicate(s.id, b.remote, { ...SLOW, onProgress: progress.onProgress, signal: controller.signal, retries: 0 });
    await progress.started;
    controller.abort();
    expect(await codeOf(first)).toBe('ABORTED');
    // The receiver notices the closed connection and releases the session; a retrying sender gets it.
    const second = await a.site.replicate(s.id, b.remote, { retries: 8, retryDelayMs: 50 });
    expect(equalBytes(await content(b.tree, second.remoteSnapshotIds[0]!), await content(a.tree, s.id))).toBe(true);
    expect(b.site.listSnapshots()).toHaveLength(1);
    await a.site.close();
    await b.site.close();
  });
});

/** A BEGIN of A's snapshot snap-1 (4 blocks) under session `sessionId`. */
function beginOf(sessionId: string): BeginRequest {
  return {
    sessionId,
    volumeKey: 'A/vol-1',
    originSiteId: 'A',
    originSnapshotId: 'snap-1',
    originVolumeId: 'vol-1',
    byteLength: 4 * 16 * KiB,
    blockBytes: 16 * KiB,
    snapshot: { name: 's', createdMs: 1, consistency: 'crash', userMetadata: {} },
  };
}

describe('ReceiverState session ownership', () => {
  it('an owner touches only its own sessions: blocks, commit and abort of another owner\'s session are BUSY', async () => {
    const meta = await MemoryMetaStore.open();
    const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
    const receiver = await ReceiverState.open(tree, meta, 'B');
    const request = beginOf('session-1');
    const owner = {};
    const intruder = {};
    await receiver.begin(request, owner);
    expect(await codeOf(receiver.begin({ ...request, sessionId: 'session-2' }, intruder))).toBe('BUSY');
    expect(await codeOf(receiver.blocks('session-1', 1, [{ blockIndex: 0, fingerprint: undefined }], intruder))).toBe('BUSY');
    expect(await codeOf(receiver.commit(['session-1'], intruder))).toBe('BUSY');
    expect(await codeOf(receiver.abort('session-1', intruder))).toBe('BUSY');
    expect(await receiver.blocks('session-1', 4, [], owner)).toBe(4);
    // Released (its connection ended): another sender takes the session over and commits it.
    receiver.release(owner);
    await receiver.begin(request, intruder);
    expect(await receiver.commit(['session-1'], intruder)).toHaveLength(1);
    await receiver.close();
  });

  it('two sessions of one snapshot that both reach COMMIT commit it once (commits run one at a time)', async () => {
    const meta = await MemoryMetaStore.open();
    const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
    const receiver = await ReceiverState.open(tree, meta, 'C');
    // Two senders (no owners: in-process callers), e.g. the origin and a chain site.
    for (const id of ['from-A', 'from-B']) {
      await receiver.begin(beginOf(id));
      await receiver.blocks(id, 4, []);
    }
    const [first, second] = await Promise.all([receiver.commit(['from-A']), receiver.commit(['from-B'])]);
    expect(second).toEqual(first);
    expect(tree.listSnapshots()).toHaveLength(1);
    await receiver.close();
  });
});
