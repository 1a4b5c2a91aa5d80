// The receiver's trust boundary: an extent whose bytes do not hash to its fingerprint is
// refused before anything is stored, even when its xxh64 checksum is consistent (a sender
// bug or a malicious peer computes the checksum over the bytes it sends). Without this
// check, dedup would hand the planted bytes to every volume referencing that fingerprint.
import { describe, expect, it } from 'vitest';
import { MemoryExtentStore, MemoryMetaStore } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { sha256Fingerprinter } from '../../src/dedup/index.js';
import { loadXxh64 } from '../../src/core/checksum.js';

describe('SnapshotTree.putExtents', () => {
  it('refuses content under another content\'s fingerprint, with a consistent checksum, and stores nothing of the batch', async () => {
    const xxh = await loadXxh64();
    const extents = await MemoryExtentStore.open();
    const tree = await SnapshotTree.open({ meta: await MemoryMetaStore.open(), extents });
    const honest = new Uint8Array(4096).fill(1);
    const planted = new Uint8Array(4096).fill(2);
    const good = { fingerprint: sha256Fingerprinter.fingerprint(honest), data: honest, checksum: xxh.hash(honest) };
    const bad = { fingerprint: sha256Fingerprinter.fingerprint(new Uint8Array(4096).fill(3)), data: planted, checksum: xxh.hash(planted) };
    await expect(tree.putExtents([good, bad])).rejects.toMatchObject({ code: 'CORRUPTION' });
    expect(await tree.haveExtents([good.fingerprint, bad.fingerprint])).toEqual([false, false]);
    await tree.putExtents([good]);
    expect(await tree.haveExtents([good.fingerprint])).toEqual([true]);
  });
});
