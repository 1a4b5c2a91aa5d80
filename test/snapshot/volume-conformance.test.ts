// A Volume (and a SnapshotReader's read side) is a BlockDevice: run the public
// conformance suite on volumes over memory stores and over a raw-file-backed store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceExtentStore, MemoryExtentStore, MemoryMetaStore } from '../../src/adapters/index.js';
import { LmdbMetaStore, RawFileBlockDevice } from '../../src/adapters/node.js';
import { SnapshotTree, type Volume } from '../../src/snapshot/index.js';
import { describeBlockDevice } from '../../src/testing/index.js';

const trees = new Map<Volume, SnapshotTree>();

describeBlockDevice({
  name: 'Volume (memory stores, 4 KiB blocks)',
  create: async ({ byteLength }) => {
    const tree = await SnapshotTree.open({ meta: await MemoryMetaStore.open(), extents: await MemoryExtentStore.open() });
    const vol = await tree.createVolume({ name: 'conformance', byteLength, blockBytes: 4096 });
    trees.set(vol, tree);
    return vol;
  },
  reopen: async (device) => {
    const vol = device as Volume;
    const tree = trees.get(vol)!;
    await vol.close();
    const next = await tree.openVolume(vol.id);
    trees.set(next, tree);
    return next;
  },
});

const dir = mkdtempSync(join(tmpdir(), 'drkit-volconf-'));
let n = 0;
const files = new Map<Volume, { i: number; close: () => Promise<void> }>();

/** Opens (or creates) the stores and tree of volume set `i` from its files: a real restart. */
async function openFiles(i: number, create: boolean) {
  const dataDev = await RawFileBlockDevice.open({ path: join(dir, `data-${i}.img`), ...(create ? { create: { byteLength: 4 << 20 } } : {}) });
  const meta = await LmdbMetaStore.open({ path: join(dir, `meta-${i}`), create });
  const extents = await DeviceExtentStore.open({ device: dataDev, meta });
  const tree = await SnapshotTree.open({ meta, extents });
  const close = async () => {
    await tree.close();
    await extents.close();
    await meta.close();
    await dataDev.close();
  };
  return { tree, close };
}
describeBlockDevice({
  name: 'Volume (raw-file DeviceExtentStore + LmdbMetaStore, the default stores, 16 KiB blocks)',
  byteLength: 256 * 1024,
  numRuns: 8,
  create: async ({ byteLength }) => {
    const i = ++n;
    const { tree, close } = await openFiles(i, true);
    const vol = await tree.createVolume({ name: 'conformance', byteLength });
    files.set(vol, { i, close });
    return vol;
  },
  reopen: async (device) => {
    const vol = device as Volume;
    const { i, close } = files.get(vol)!;
    await vol.close();
    await close();
    const reopened = await openFiles(i, false);
    const next = await reopened.tree.openVolume(vol.id);
    files.set(next, { i, close: reopened.close });
    return next;
  },
  cleanup: async () => rmSync(dir, { recursive: true, force: true }),
});
