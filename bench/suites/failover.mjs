// Failover benches (issue 6): in one process over MemoryTransport with memory stores, so
// they measure drkit's own work. A volume (DRKIT_BENCH_FAILOVER_MIB, default 256 MiB, of
// random 16 KiB blocks) is replicated A -> B; B is promoted (failover.promote: median of
// five promotions of fresh clones, ms); 5% of the blocks are rewritten on the promoted
// side and A fails back (failback.resync: seconds, with the bytes on the wire).
import { MemoryExtentStore, MemoryMetaStore, MemoryTransport } from '../../dist/adapters/index.js';
import { SnapshotTree } from '../../dist/snapshot/index.js';
import { Site, demote, failback, failover, snapshotPromoted } from '../../dist/replication/index.js';
import { median, seededBytes, timeMs, countingTransport } from '../util.mjs';

const MiB = 1024 * 1024;
const VOLUME_BYTES = Number(process.env.DRKIT_BENCH_FAILOVER_MIB ?? 256) * MiB;
const BLOCK_BYTES = 16 * 1024;
const psk = new Uint8Array(32).fill(42);

async function makeSite(siteId, net) {
  const meta = await MemoryMetaStore.open();
  const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
  const site = await Site.open({ siteId, tree, meta, peerKeys: () => psk });
  const listener = await site.listen(net, `${siteId}:7000`);
  const { counter, transport } = countingTransport(net, { countReads: true });
  return { site, tree, counter, remote: { siteId, address: listener.address, transport, psk } };
}

export default [
  {
    name: 'failover',
    async run({ log }) {
      const net = MemoryTransport.create();
      const a = await makeSite('A', net);
      const b = await makeSite('B', net);
      const vol = await a.tree.createVolume({ name: 'db', byteLength: VOLUME_BYTES, blockBytes: BLOCK_BYTES });
      const CHUNK_BYTES = 4 * MiB; // bounded memory while filling
      for (let off = 0; off < VOLUME_BYTES; off += CHUNK_BYTES) await vol.write(off, seededBytes(Math.min(CHUNK_BYTES, VOLUME_BYTES - off), 1 + off / CHUNK_BYTES));
      const s1 = await a.tree.snapshot(vol.id, { name: 's1' });
      const lineage = `A/${vol.id}`;
      await a.site.replicate(s1.id, b.remote);
      log(`failover: ${VOLUME_BYTES / MiB} MiB replicated`);

      const promoteMs = [];
      let promotion;
      for (let i = 0; i < 5; i++) {
        if (promotion !== undefined) {
          await promotion.volume.close();
          await demote(b.site, lineage, { force: true });
        }
        promoteMs.push(await timeMs(async () => {
          promotion = await failover(b.site, lineage, { name: `db-dr-${i}` });
        }));
      }

      const blockCount = VOLUME_BYTES / BLOCK_BYTES;
      const changedBlocks = Math.round(blockCount * 0.05);
      const changed = new Set();
      let x = 12345;
      while (changed.size < changedBlocks) {
        x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
        changed.add(x % blockCount);
      }
      for (const blockIndex of changed) await promotion.volume.write(blockIndex * BLOCK_BYTES, seededBytes(BLOCK_BYTES, 7 + blockIndex));
      await snapshotPromoted(b.site, lineage, { name: 'p1' });
      b.counter.bytes = 0;
      let result;
      const resyncMs = await timeMs(async () => {
        result = await failback(a.site, b.remote, lineage);
      });
      if (result.commonSnapshotId !== s1.id) throw new Error('bench: failback did not find the common snapshot');
      await promotion.volume.close();
      await vol.close();
      await a.site.close();
      await b.site.close();
      const params = { volumeBytes: VOLUME_BYTES, blockBytes: BLOCK_BYTES };
      return [
        { bench: 'failover.promote', value: median(promoteMs), unit: 'ms', ...params },
        { bench: 'failback.resync', value: resyncMs / 1000, unit: 's', changedBlocks, wireBytes: b.counter.bytes, deltaBytes: changedBlocks * BLOCK_BYTES, ...params },
      ];
    },
  },
];
