#!/usr/bin/env node
// drkit example: a planned migration between two sites in two processes that share
// nothing but a TCP address and a pre-shared key.
//   1. site B runs in a child process (this script, started with "target") and listens;
//   2. site A writes a volume, snapshots it and replicates it to B;
//   3. A keeps writing, then migrates the lineage to B by address: stop writes, final
//      snapshot, replicate, demote A, promote B over the protocol (PROMOTE_REQ), reverse;
//   4. A asks B's status over the wire and checks there is no split brain.
// Usage: npm run example:migrate
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MemoryExtentStore, MemoryMetaStore } from '../dist/adapters/index.js';
import { TcpTransport } from '../dist/adapters/node.js';
import { SnapshotTree } from '../dist/snapshot/index.js';
import { Site, detectSplitBrain, migrate, originOf, volumeKeyOf } from '../dist/replication/index.js';

const KEY = new Uint8Array(32).fill(0x5a); // shared by A and B out of band
const MiB = 1024 * 1024;

async function openSite(siteId) {
  const meta = await MemoryMetaStore.open();
  const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
  return { tree, site: await Site.open({ siteId, tree, meta, peerKeys: () => KEY }) };
}

if (process.argv[2] === 'target') {
  // The child: site B, reachable only through its address. Exits when stdin closes.
  const { site } = await openSite('B');
  const listener = await site.listen(TcpTransport.create(), '127.0.0.1:0');
  process.stdout.write(`${listener.address}\n`);
  process.stdin.resume();
  process.stdin.on('end', async () => {
    await site.close();
    process.exit(0);
  });
} else {
  const say = (msg) => console.log(msg);
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'target'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [address] = await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next().then((r) => [r.value]);
  say(`1. site B runs in process ${child.pid}, listening at ${address}`);
  const b = { siteId: 'B', address, transport: TcpTransport.create(), psk: KEY };

  const a = await openSite('A');
  const volume = await a.tree.createVolume({ name: 'db', byteLength: 16 * MiB });
  const data = new Uint8Array(volume.byteLength);
  for (let i = 0; i < data.length; i += 4) new DataView(data.buffer).setUint32(i, Math.imul(i + 1, 2654435761) >>> 0);
  await volume.write(0, data);
  const first = await a.tree.snapshot(volume.id, { name: 'first' });
  const lineage = volumeKeyOf(originOf(first, 'A'));
  const sent = await a.site.replicate(first.id, b);
  say(`2. A replicated ${first.name} of lineage ${lineage} to B: ${sent.progress.compressedExtentBytes} bytes of extents on the wire`);

  await volume.write(3 * MiB, new Uint8Array(MiB).fill(7));
  say('3. A wrote 1 MiB more; migrating to B by address:');
  const result = await migrate({ source: a.site, target: b, lineage }, { sourceVolume: volume, onStep: (step) => say(`   - ${step} done`) });
  say(`   migration ${result.state}: B writes ${lineage} at generation ${result.record.targetGeneration} (volume ${result.record.targetVolumeId})`);

  const status = await a.site.remoteStatus(b, { lineage });
  const report = await detectSplitBrain({ site: a.site, lineage, remotes: [b] });
  say(`4. B over the wire: generation ${status.generation}, writes through ${status.writableVolumeId}; split brain: ${report.splitBrain}, current site: ${report.currentSiteId}`);
  if (result.state !== 'completed' || status.writableVolumeId === undefined || report.splitBrain || report.currentSiteId !== 'B') process.exitCode = 1;

  await a.site.close();
  child.stdin.end();
}
