// A fresh process that restores one snapshot of a remote site straight into a raw file
// (bench restore.device, issue #13), as a backup tool's restore runs: connect, stream the
// blocks into the file, fsync. Prints one JSON line with its own wall, CPU and peak RSS.
// Usage: node bench/restore-device-process.mjs <address> <remoteSiteId> <snapshotId> <outPath> <byteLength>
// The device is opened with O_DIRECT (`direct: true`); DRKIT_RESTORE_DIRECT=0 writes through the page cache.
// DRKIT_RESTORE_CHECKPOINT_MIB sets `checkpointBytes` (default: the library's, 64 MiB).
// DRKIT_RESTORE_VERIFY_WORKERS sets `verifyWorkers` (default: the library's, 0: in this thread); 1 hashes on a worker.
import { peakRssBytes } from './util.mjs';
import { performance } from 'node:perf_hooks';
import { MemoryExtentStore, MemoryMetaStore } from '../dist/adapters/index.js';
import { RawFileBlockDevice, TcpTransport } from '../dist/adapters/node.js';
import { SnapshotTree } from '../dist/snapshot/index.js';
import { Site, fileRestoreCheckpoints } from '../dist/replication/index.js';


const [address, remoteSiteId, snapshotId, outPath, byteLengthText] = process.argv.slice(2);
const t0 = performance.now();
const psk = new Uint8Array(32).fill(42);
const meta = await MemoryMetaStore.open();
const tree = await SnapshotTree.open({ meta, extents: await MemoryExtentStore.open() });
const site = await Site.open({ siteId: 'restorer', tree, meta, peerKeys: () => psk });
const direct = process.env.DRKIT_RESTORE_DIRECT !== '0';
const device = await RawFileBlockDevice.open({ path: outPath, create: { byteLength: Number(byteLengthText) }, direct });
const verifyWorkers = process.env.DRKIT_RESTORE_VERIFY_WORKERS;
const checkpointMiB = process.env.DRKIT_RESTORE_CHECKPOINT_MIB;
const result = await site.restoreToDevice({ siteId: remoteSiteId, address, transport: TcpTransport.create(), psk }, snapshotId, device, {
  deviceZeroed: true,
  ...(verifyWorkers === undefined ? {} : { verifyWorkers: Number(verifyWorkers) }),
  ...(checkpointMiB === undefined ? {} : { checkpointBytes: Number(checkpointMiB) * 1024 * 1024 }),
  checkpoints: fileRestoreCheckpoints(`${outPath}.drkit-restore`),
});
await device.close();
await site.close();
const wallMs = performance.now() - t0;
const u = process.resourceUsage();
process.stdout.write(`${JSON.stringify({ wallMs, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000, userCpuMs: u.userCPUTime / 1000, systemCpuMs: u.systemCPUTime / 1000, minorPageFaults: u.minorPageFault, voluntaryContextSwitches: u.voluntaryContextSwitches, involuntaryContextSwitches: u.involuntaryContextSwitches, maxRssBytes: peakRssBytes(), progress: result.progress, writtenBytes: device.writtenBytes })}\n`);
