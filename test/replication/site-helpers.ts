/** Shared helpers of the replication tests: sites over MemoryTransport and snapshot contents. */
import { MemoryExtentStore, MemoryMetaStore, SystemClock, type MemoryTransport } from '../../src/adapters/index.js';
import { isDrkitError, type DrkitError } from '../../src/core/errors.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site, type RemoteSite, type SiteOptions } from '../../src/replication/index.js';

/** Every byte of snapshot `snapshotId` (tests use small volumes). */
export async function snapshotBytes(tree: SnapshotTree, snapshotId: string): Promise<Uint8Array> {
  const r = tree.openSnapshot(snapshotId);
  try {
    return await r.read(0, r.byteLength);
  } finally {
    await r.close();
  }
}

/** A site over memory stores that accepts every peer with `psk`, not listening yet; `cleanups` gets its close. */
export async function unlistenedSite(siteId: string, psk: Uint8Array, cleanups: (() => Promise<void>)[]): Promise<{ site: Site; tree: SnapshotTree }> {
  const meta = await MemoryMetaStore.open();
  const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
  const site = await Site.open({ siteId, tree, meta, peerKeys: () => psk });
  cleanups.push(() => site.close());
  return { site, tree };
}

/** A site over memory stores listening at `${siteId}:7000` on `net`, every peer sharing `psk`, and how to reach it. */
export async function memorySite(siteId: string, net: MemoryTransport, psk: Uint8Array, options: Partial<SiteOptions> = {}): Promise<{ site: Site; tree: SnapshotTree; remote: RemoteSite }> {
  const meta = await MemoryMetaStore.open();
  const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
  const site = await Site.open({ siteId, tree, meta, peerKeys: () => psk, clock: new SystemClock(), ...options });
  const listener = await site.listen(net, `${siteId}:7000`);
  return { site, tree, remote: { siteId, address: listener.address, transport: net, psk } };
}

/** The DrkitError `p` rejects with (anything else, or no rejection, fails the test). */
export async function errorOf(p: Promise<unknown>): Promise<DrkitError> {
  try {
    await p;
  } catch (err) {
    if (isDrkitError(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}
