/** Shared helpers of the NearSync tests: a source site with a write log and a target site over memory stores. */
import { DeviceExtentStore, MemoryBlockDevice, MemoryExtentStore, MemoryMetaStore, SystemClock, type Clock, type MemoryTransport, type Transport } from '../../src/adapters/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { Site, type RemoteSite } from '../../src/replication/index.js';

export const PSK = new Uint8Array(32).fill(7);

/** A source site whose tree has a write log of `logBytes` (memory devices). */
export async function sourceSite(siteId: string, options: { logBytes?: number; clock?: Clock; onHoldDropped?: (holder: string) => void } = {}): Promise<{ site: Site; tree: SnapshotTree; close(): Promise<void> }> {
  const meta = await MemoryMetaStore.open();
  const extents = await DeviceExtentStore.open({ device: await MemoryBlockDevice.create({ byteLength: 64 << 20 }), meta });
  const log = await MemoryBlockDevice.create({ byteLength: options.logBytes ?? 8 << 20 });
  const clock = options.clock ?? new SystemClock();
  const tree = await SnapshotTree.open({ meta, extents, writeLog: log, clock, ...(options.onHoldDropped === undefined ? {} : { onWriteLogHoldDropped: (h: string) => options.onHoldDropped!(h) }) });
  const site = await Site.open({ siteId, tree, meta, peerKeys: () => PSK, clock });
  return { site, tree, close: () => site.close() };
}

/** A target site over memory stores listening at `${siteId}:7000` on `net`, and how to reach it. */
export async function targetSite(siteId: string, net: MemoryTransport | Transport, options: { clock?: Clock; meta?: MemoryMetaStore; tree?: SnapshotTree } = {}): Promise<{ site: Site; tree: SnapshotTree; meta: MemoryMetaStore; remote: RemoteSite }> {
  const meta = options.meta ?? (await MemoryMetaStore.open());
  const tree = options.tree ?? (await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() }));
  const clock = options.clock ?? new SystemClock();
  const site = await Site.open({ siteId, tree, meta, peerKeys: () => PSK, clock });
  const listener = await site.listen(net, `${siteId}:7000`);
  return { site, tree, meta, remote: { siteId, address: listener.address, transport: net, psk: PSK } };
}
