// A fresh process that runs a full backup as a backup tool's command does (bench
// replicate.initial, issue #13): open site A's stores in <dir>, import the image file into
// a new volume in CHUNK_BYTES reads, snapshot it, replicate the snapshot to the site at
// <address> (another process), exit. Prints one JSON line: wall and CPU of the import and
// of the whole (the process's CPU from its start, module loading included), its own peak RSS (VmHWM), wire bytes and the replication's progress.
// Usage: node bench/backup-process.mjs <dir> <imagePath> <byteLength> <address>
// DRKIT_BENCH_COMPRESSION_WORKERS sets Site's compressionWorkers.
import { open } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { TcpTransport } from '../dist/adapters/node.js';
import { CHUNK_BYTES } from './workload.mjs';
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
const handle = await open(imagePath, 'r');
const chunk = new Uint8Array(CHUNK_BYTES);
try {
  for (let byteOffset = 0; byteOffset < byteLength; byteOffset += CHUNK_BYTES) {
    const want = Math.min(CHUNK_BYTES, byteLength - byteOffset);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await handle.read(chunk, got, want - got, byteOffset + got);
      if (bytesRead === 0) throw new Error(`image file ends at ${byteOffset + got}`);
      got += bytesRead;
    }
    await vol.write(byteOffset, chunk.subarray(0, want));
  }
} finally {
  await handle.close();
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
