// Progress users can show, and cancellation at any point (issue #13 item 6): pull and
// replicate report phase, logical, extent and wire bytes (frames included); an abort
// mid-transfer rejects ABORTED and a later call completes from the checkpointed session.
import { describe, expect, it } from 'vitest';
import { MemoryTransport } from '../../src/adapters/index.js';
import type { ReplicationProgress } from '../../src/replication/index.js';
import type { SnapshotTree } from '../../src/snapshot/index.js';
import { equalBytes } from '../../src/core/bytes.js';
import { errorOf, memorySite, snapshotBytes } from './site-helpers.js';

const PSK = new Uint8Array(32).fill(3);
const BLOCK = 16 * 1024;
const BLOCKS = 1200;

async function snapshotOf(tree: SnapshotTree): Promise<string> {
  const vol = await tree.createVolume({ name: 'disk', byteLength: BLOCKS * BLOCK, blockBytes: BLOCK });
  const text = new TextEncoder().encode('progress that users can show, phase by phase; '.repeat(400)).subarray(0, BLOCK);
  for (let b = 0; b < BLOCKS; b += 2) await vol.write(b * BLOCK, text.map((c, i) => (i < 2 ? (b >> (8 * i)) & 0xff : c)));
  const s = await tree.snapshot(vol.id, { name: 'v1' });
  await vol.close();
  return s.id;
}

describe('transfer progress and cancellation', () => {
  it('replicate reports wire bytes (frames both ways) above the compressed extent bytes', async () => {
    const net = MemoryTransport.create();
    const a = await memorySite('A', net, PSK);
    const b = await memorySite('B', net, PSK);
    const id = await snapshotOf(a.tree);
    const seen: ReplicationProgress[] = [];
    const r = await a.site.replicate(id, b.remote, { onProgress: (p) => seen.push(p) });
    expect(r.progress.wireBytes).toBeGreaterThan(r.progress.compressedExtentBytes);
    expect(seen.filter((p) => p.phase === 'transfer').every((p) => typeof p.wireBytes === 'number')).toBe(true);
    expect(seen.at(-1)!.phase).toBe('done');
    await a.site.close();
    await b.site.close();
  });

  it('pull reports its phases with logical, extent and wire bytes', async () => {
    const net = MemoryTransport.create();
    const a = await memorySite('A', net, PSK);
    const b = await memorySite('B', net, PSK);
    const id = await snapshotOf(a.tree);
    const seen: ReplicationProgress[] = [];
    const pulled = await b.site.pull(a.remote, id, { onProgress: (p) => seen.push(p) });
    const phases = [...new Set(seen.map((p) => p.phase))];
    expect(phases[0]).toBe('scan');
    expect(phases).toContain('commit');
    expect(phases.at(-1)).toBe('done');
    const done = seen.at(-1)!;
    expect(done.completedBytes).toBe(BLOCKS * BLOCK / 2); // the written half; the rest is never mapped
    expect(done.sentExtentBytes).toBeGreaterThan(0);
    expect(done.compressedExtentBytes).toBeLessThan(done.sentExtentBytes);
    expect(done.wireBytes).toBeGreaterThan(done.compressedExtentBytes);
    expect(equalBytes(await snapshotBytes(b.tree, pulled.id), await snapshotBytes(a.tree, id))).toBe(true);
    await a.site.close();
    await b.site.close();
  });

  it('a pull aborted mid-transfer rejects ABORTED, commits nothing, and a second pull completes', async () => {
    const net = MemoryTransport.create();
    const a = await memorySite('A', net, PSK);
    const b = await memorySite('B', net, PSK);
    const id = await snapshotOf(a.tree);
    const controller = new AbortController();
    let transferring = 0;
    const err = await errorOf(
      b.site.pull(a.remote, id, {
        signal: controller.signal,
        retries: 0,
        onProgress: (p) => {
          if (p.phase !== 'transfer') return;
          transferring++;
          controller.abort();
        },
      }),
    );
    expect(transferring).toBe(1);
    expect(err.code).toBe('ABORTED');
    expect(b.site.listSnapshots()).toEqual([]);
    const pulled = await b.site.pull(a.remote, id);
    expect(equalBytes(await snapshotBytes(b.tree, pulled.id), await snapshotBytes(a.tree, id))).toBe(true);
    await a.site.close();
    await b.site.close();
  });

  it('a replicate aborted mid-transfer rejects ABORTED at once, and a later one completes', async () => {
    const net = MemoryTransport.create();
    const a = await memorySite('A', net, PSK);
    const b = await memorySite('B', net, PSK);
    const id = await snapshotOf(a.tree);
    const controller = new AbortController();
    const err = await errorOf(
      a.site.replicate(id, b.remote, {
        signal: controller.signal,
        retries: 0,
        onProgress: (p) => {
          if (p.phase === 'transfer') controller.abort();
        },
      }),
    );
    expect(err.code).toBe('ABORTED');
    expect(b.site.listSnapshots()).toEqual([]);
    const r = await a.site.replicate(id, b.remote);
    expect(equalBytes(await snapshotBytes(b.tree, r.remoteSnapshotIds[0]!), await snapshotBytes(a.tree, id))).toBe(true);
    await a.site.close();
    await b.site.close();
  });
});
