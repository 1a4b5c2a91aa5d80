// A fresh process that runs a full backup as a backup tool's command does (bench
// replicate.initial, issue #13): open site A's stores in <dir>, import the image file into
// a new volume (copyDevice: 1 MiB reads, 4 ahead), snapshot it, replicate the snapshot to the site at
// <address> (another process), exit. Prints one JSON line: wall and CPU of the import and
// of the whole (the process's CPU from its start, module loading included), its own peak RSS (VmHWM), wire bytes and the replication's progress.
// Usage: node bench/backup-process.mjs <dir> <imagePath> <byteLength> <address>
// DRKIT_BENCH_COMPRESSION_WORKERS sets Site's compressionWorkers.
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { RawFileBlockDevice, TcpTransport } from '../dist/adapters/node.js';
import { copyDevice } from '../dist/local/index.js';
import { countingTransport, peakRssBytes } from './util.mjs';
import { BENCH_PSK, fileSite } from './site-stores.mjs';

const [dir, imagePath, byteLengthText, address] = process.argv.slice(2);
const byteLength = Number(byteLengthText);
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const workers = process.env.DRKIT_BENCH_COMPRESSION_WORKERS;

const t0 = performance.now();
const cpu0 = cpuSeconds();
const a = await fileSite(dir, 'siteA', { compressionWorkers: workers === undefined ? undefined : Number(workers) });
const vol = await a.tree.createVolume({ name: 'image', byteLength });
// The import as `drkit import` runs it: copyDevice from the image (read-only raw file) with
// its read-ahead, skipping all-zero chunks (a new volume reads as zeros).
const source = await RawFileBlockDevice.open({ path: imagePath, readOnly: true });
try {
  await copyDevice(source, vol, { byteLength, targetIsZero: true });
} finally {
  await source.close();
}
await vol.flush();
// Measured: leaving the 1 GiB image file in place (page cache, writeback) doubled the
// later restore.device's CPU (13.7 against 6.6 s, same code); nothing reads it again.
rmSync(imagePath, { force: true });
const importMs = performance.now() - t0;
const importCpuSeconds = cpuSeconds() - cpu0;
const snap = await a.tree.snapshot(vol.id, { name: 'v1' });
const tcp = countingTransport(TcpTransport.create());
const t1 = performance.now();
const result = await a.site.replicate(snap.id, { siteId: 'siteB', address, transport: tcp.transport, psk: BENCH_PSK });
const replicateMs = performance.now() - t1;
await vol.close();
await a.close();
const wallMs = performance.now() - t0;
process.stdout.write(
  `${JSON.stringify({ wallMs, importMs, replicateMs, cpuSeconds: cpuSeconds(), importCpuSeconds, maxRssBytes: peakRssBytes(), wireBytes: tcp.counter.bytes, snapshotId: snap.id, remoteSnapshotId: result.remoteSnapshotIds[0], progress: result.progress })}\n`,
);
