// A bench site on raw-file stores (extents on a RawFileBlockDevice, metadata in LMDB),
// shared by the replicate suite and the backup process it spawns.
import { join } from 'node:path';
import { DeviceExtentStore } from '../dist/adapters/index.js';
import { LmdbMetaStore, RawFileBlockDevice } from '../dist/adapters/node.js';
import { SnapshotTree } from '../dist/snapshot/index.js';
import { Site } from '../dist/replication/index.js';
import { ExtentCodec } from '../dist/dedup/index.js';

const MiB = 1024 * 1024;
/** The pre-shared key every bench site uses. */
export const BENCH_PSK = new Uint8Array(32).fill(42);

/** Opens (creating when absent) site `siteId`'s stores in `dir`; `compressionWorkers` as Site's. */
export async function fileSite(dir, siteId, { compressionWorkers } = {}) {
  // DRKIT_SITE_DIRECT=1: the extents device writes whole 4 KiB units with O_DIRECT.
  const device = await RawFileBlockDevice.open({ path: join(dir, `${siteId}.extents`), create: { byteLength: 64 * MiB, openExisting: true }, ...(process.env.DRKIT_SITE_DIRECT === '1' ? { direct: true } : {}) });
  const meta = await LmdbMetaStore.open({ path: join(dir, `${siteId}.meta`), create: true });
  const extents = await DeviceExtentStore.open({ device, meta, decoder: await ExtentCodec.open() });
  const tree = await SnapshotTree.open({ meta, extents });
  const site = await Site.open({ siteId, tree, meta, compressionWorkers, peerKeys: () => BENCH_PSK, authenticatePeer: (p, id) => p.commonName === id || p.commonName === undefined });
  return {
    site,
    tree,
    async close() {
      await site.close();
      await tree.close();
      await extents.close();
      await meta.close();
      await device.close();
    },
  };
}
