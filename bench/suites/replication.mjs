// Replication benches (issue 4) on the standard workload of bench/workload.mjs: a 1 GiB
// image (40% random, 30% text-like, 20% zero, 10% copies, in 64 KiB regions) imported
// into a volume at site A and replicated to site B (another process, TCP loopback) by a
// fresh backup process (bench/backup-process.mjs, raw-file stores, as a backup tool's
// command runs); this process then reopens site A for the rest: version 2 (5% of the 4 KiB
// blocks rewritten at random) replicated incrementally; a 1%-modified clone shows
// global dedup; TLS and restore-from-remote close the set.
// Scale with DRKIT_BENCH_IMAGE_MIB (default 1024); DRKIT_BENCH_BACKUP_ONLY=1 stops after
// replicate.incremental (for iterating on the backup path with a profiler);
// DRKIT_BENCH_COMPRESSION_WORKERS sets site A's compressionWorkers; DRKIT_SITE_DIRECT=1
// opens both sites' extent devices with O_DIRECT; DRKIT_BENCH_NODE_ARGS passes node
// flags to the child processes.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { RawFileBlockDevice, TcpTransport, TlsTransport } from '../../dist/adapters/node.js';
import { applyVersion2, writeStandardImage } from '../workload.mjs';
import { mbPerSec, countingTransport } from '../util.mjs';
import { BENCH_PSK, fileSite } from '../site-stores.mjs';
import { createReadStream, mkdirSync, readFileSync } from 'node:fs';

const here = dirname(fileURLToPath(import.meta.url));
const siteProcess = join(here, '../../test/replication/fixtures/site-process.mjs');
const restoreProcess = join(here, '../restore-device-process.mjs');
const backupProcess = join(here, '../backup-process.mjs');
/** Extra node flags for the child processes, e.g. DRKIT_BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' (NODE_OPTIONS refuses --cpu-prof). */
const childNodeArgs = (process.env.DRKIT_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const tlsDir = join(here, '../../test/fixtures/tls');
const MiB = 1024 * 1024;
const IMAGE_BYTES = Number(process.env.DRKIT_BENCH_IMAGE_MIB ?? 1024) * MiB;
const psk = BENCH_PSK;
/** Site A's compression worker threads (Site's `compressionWorkers`); DRKIT_BENCH_COMPRESSION_WORKERS overrides. */
const compressionWorkers = process.env.DRKIT_BENCH_COMPRESSION_WORKERS === undefined ? undefined : Number(process.env.DRKIT_BENCH_COMPRESSION_WORKERS);

async function startChild(siteId, kind, dataDir) {
  const child = spawn(process.execPath, [...childNodeArgs, siteProcess, siteId, kind, dataDir, tlsDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => JSON.parse((await lines.next()).value);
  const ready = await next();
  return {
    address: ready.address,
    /** {maxRssBytes, cpuMs, extentBytes, storedBytes} of the child so far. */
    async stats() {
      child.stdin.write('stats\n');
      return next();
    },
    async maxRss() {
      return (await this.stats()).maxRssBytes;
    },
    stop() {
      child.stdin.end();
      return exited;
    },
  };
}

/** Runs bench/backup-process.mjs (a fresh process: import, snapshot, replicate) and returns its JSON line. */
async function backupInFreshProcess(dir, imagePath, address) {
  const child = spawn(process.execPath, [...childNodeArgs, backupProcess, dir, imagePath, String(IMAGE_BYTES), address], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`backup process exited with ${code}`);
  return JSON.parse(out);
}

/** Runs bench/restore-device-process.mjs (a fresh process) and returns its JSON line. */
async function restoreInFreshProcess(address, snapshotId, outPath) {
  const child = spawn(process.execPath, [...childNodeArgs, restoreProcess, address, 'siteB', snapshotId, outPath, String(IMAGE_BYTES)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`restore process exited with ${code}`);
  return JSON.parse(out);
}

async function fileDigest(path) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(chunk);
  return h.digest('hex');
}

const cpuSecondsNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function snapshotDigest(tree, snapshotId) {
  const r = tree.openSnapshot(snapshotId);
  const h = createHash('sha256');
  for (let off = 0; off < r.byteLength; off += 4 * MiB) h.update(await r.read(off, 4 * MiB));
  await r.close();
  return h.digest('hex');
}



export default [
  {
    name: 'replicate',
    produces: ['replicate.initial', 'replicate.incremental', 'restore.device', 'store.bytesAtRest', 'replicate.dedup', 'replicate.tls', 'restore.remote'],
    async run({ dir, log }) {
      const results = [];
      // The source image exists already (a backup tool reads a file): written before the clock.
      const imagePath = join(dir, 'image-v1.raw');
      await writeStandardImage(imagePath, { byteLength: IMAGE_BYTES });
      // The target runs already (a backup repository does): started before the clock.
      const b = await startChild('siteB', 'tcp', dir);
      const receiverCpuBefore = (await b.stats()).cpuMs / 1000;
      // Full backup, as a backup tool's: a fresh process imports the image into a volume,
      // snapshots it and replicates it (bench/backup-process.mjs); its wall time is taken
      // here, from spawn to exit.
      let t0 = performance.now();
      const backup = await backupInFreshProcess(dir, imagePath, b.address);
      const initialMs = performance.now() - t0;
      log(`  imported ${IMAGE_BYTES / MiB} MiB in ${backup.importMs.toFixed(0)} ms (${backup.importCpuSeconds.toFixed(2)} s CPU), replicated in ${backup.replicateMs.toFixed(0)} ms`);
      const r1 = { progress: backup.progress };
      const senderCpu = backup.cpuSeconds;
      const bAfter = await b.stats();
      const receiverCpu = bAfter.cpuMs / 1000 - receiverCpuBefore;
      // The later steps run in this process, on site A as the backup left it.
      const a = await fileSite(dir, 'siteA', { compressionWorkers });
      const s1 = a.tree.getSnapshot(backup.snapshotId);
      const vol = await a.tree.openVolume(s1.volumeId);
      const tcp = countingTransport(TcpTransport.create());
      const remote = { siteId: 'siteB', address: b.address, transport: tcp.transport, psk };
      results.push({
        bench: 'replicate.initial',
        value: mbPerSec(IMAGE_BYTES, initialMs),
        unit: 'MB/s',
        wallSeconds: +(initialMs / 1000).toFixed(2),
        cpuSeconds: +(senderCpu + receiverCpu).toFixed(2),
        senderCpuSeconds: +senderCpu.toFixed(2),
        receiverCpuSeconds: +receiverCpu.toFixed(2),
        peakRssBytes: backup.maxRssBytes,
        receiverPeakRssBytes: bAfter.maxRssBytes,
        wireBytes: backup.wireBytes,
        logicalBytes: IMAGE_BYTES,
        extentBytes: r1.progress.sentExtentBytes,
        compressedExtentBytes: r1.progress.compressedExtentBytes,
        zeroBytes: r1.progress.zeroBytes,
        dedupedBytes: r1.progress.dedupedBytes,
        importMs: Math.round(backup.importMs),
        importCpuSeconds: +backup.importCpuSeconds.toFixed(2),
        replicateMs: Math.round(backup.replicateMs),
        transport: 'tcp loopback, separate processes',
        note: 'the sender is a fresh process (bench/backup-process.mjs): wall from its spawn to its exit; peakRssBytes is its VmHWM',
      });
      results.push({
        bench: 'store.bytesAtRest',
        value: bAfter.storedBytes,
        unit: 'bytes',
        extentBytes: bAfter.extentBytes,
        note: 'device space of the target\'s DeviceExtentStore after v1 (allocation units and superblock included); extentBytes = content',
      });

      // Version 2: 5% of the 4 KiB blocks rewritten at random.
      await applyVersion2(vol);
      const s2 = await a.tree.snapshot(vol.id, { name: 'v2' });
      let changedBytes = 0;
      for await (const r of a.tree.diff(s1.id, s2.id)) changedBytes += r.byteLength;
      const before = tcp.counter.bytes;
      const receiverCpuBeforeInc = (await b.stats()).cpuMs / 1000;
      const senderCpuBeforeInc = cpuSecondsNow();
      t0 = performance.now();
      const r2 = await a.site.replicate(s2.id, remote);
      const incMs = performance.now() - t0;
      const incSenderCpu = cpuSecondsNow() - senderCpuBeforeInc;
      const incReceiverCpu = (await b.stats()).cpuMs / 1000 - receiverCpuBeforeInc;
      results.push({
        bench: 'replicate.incremental',
        value: incMs / 1000,
        unit: 's',
        wireBytes: tcp.counter.bytes - before,
        changedBytes,
        extentBytes: r2.progress.sentExtentBytes,
        rewrittenBytes: Math.round(IMAGE_BYTES * 0.05),
        blockBytes: vol.blockBytes,
        senderCpuSeconds: +incSenderCpu.toFixed(2),
        receiverCpuSeconds: +incReceiverCpu.toFixed(2),
        // The receiver's CPU per MB of extents received, here and in the initial transfer.
        receiverCpuMsPerMB: +((incReceiverCpu * 1000) / (r2.progress.sentExtentBytes / 1e6)).toFixed(2),
        initialReceiverCpuMsPerMB: +((receiverCpu * 1000) / (r1.progress.sentExtentBytes / 1e6)).toFixed(2),
      });

      if (process.env.DRKIT_BENCH_BACKUP_ONLY === '1') {
        await b.stop();
        await vol.close();
        await a.close();
        return results;
      }

      // Restore v2 from the remote site into a raw file, in a fresh process, fsync included.
      // The target restarts first, so its peak RSS is the restore's, not the backups'.
      await b.stop();
      const bRestore = await startChild('siteB', 'tcp', dir);
      const restoredPath = join(dir, 'restored-device.img');
      const restored = await restoreInFreshProcess(bRestore.address, r2.remoteSnapshotIds[0], restoredPath);
      const restoreReceiverRss = await bRestore.maxRss();
      await bRestore.stop();
      const verifiedDevice = (await fileDigest(restoredPath)) === (await snapshotDigest(a.tree, s2.id));
      results.push({
        bench: 'restore.device',
        value: mbPerSec(IMAGE_BYTES, restored.wallMs),
        unit: 'MB/s',
        wallSeconds: +(restored.wallMs / 1000).toFixed(2),
        cpuSeconds: +(restored.cpuMs / 1000).toFixed(2),
        peakRssBytes: restored.maxRssBytes,
        receiverPeakRssBytes: restoreReceiverRss,
        wireBytes: restored.progress.wireBytes,
        extentBytes: restored.progress.extentBytes,
        verified: verifiedDevice,
        note: 'peakRssBytes = the restoring process; receiverPeakRssBytes = the serving site (restarted before the restore); wall includes process start and fsync',
      });
      const b2 = await startChild('siteB', 'tcp', dir);
      remote.address = b2.address;

      // A clone of the replicated snapshot, 1% of its 4 KiB blocks modified.
      const clone = await a.tree.clone(s1.id, { name: 'clone' });
      const blocks4k = IMAGE_BYTES / 4096;
      const page = new Uint8Array(4096);
      let x = 99;
      for (let i = 0; i < blocks4k / 100; i++) {
        x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
        page.fill(i & 0xff, 0, 64);
        page[100] = x & 0xff;
        await clone.write((x % blocks4k) * 4096, page);
      }
      const s3 = await a.tree.snapshot(clone.id, { name: 'clone-1pct' });
      const before3 = tcp.counter.bytes;
      const r3 = await a.site.replicate(s3.id, remote);
      results.push({
        bench: 'replicate.dedup',
        value: (tcp.counter.bytes - before3) / IMAGE_BYTES,
        unit: 'wireBytes/logicalBytes',
        wireBytes: tcp.counter.bytes - before3,
        logicalBytes: IMAGE_BYTES,
        extentBytes: r3.progress.sentExtentBytes,
        dedupedBytes: r3.progress.dedupedBytes,
        note: 'new volume (clone) with no base at the target: every block is have-queried',
      });
      await b2.stop();

      // TLS: a fresh target in another process, full replication of v1.
      const tlsDirB = join(dir, 'tls-target');
      mkdirSync(tlsDirB);
      const bt = await startChild('siteB', 'tls', tlsDirB);
      const tls = countingTransport(
        TlsTransport.create({ key: readFileSync(join(tlsDir, 'siteA.key')), cert: readFileSync(join(tlsDir, 'siteA.crt')), ca: readFileSync(join(tlsDir, 'ca.crt')) }),
      );
      t0 = performance.now();
      const rt = await a.site.replicate(s1.id, { siteId: 'siteB', address: bt.address, transport: tls.transport, psk, authenticate: (p, id) => p.commonName === id });
      const tlsMs = performance.now() - t0;
      results.push({ bench: 'replicate.tls', value: mbPerSec(IMAGE_BYTES, tlsMs), unit: 'MB/s', logicalBytes: IMAGE_BYTES, wireBytes: tls.counter.bytes, transport: 'mutual TLS 1.3, separate processes' });

      // Restore from the remote: a fresh siteA pulls v1 back from the TLS target, then exports it to a raw file.
      const restoreDir = join(dir, 'restore');
      mkdirSync(restoreDir);
      const fresh = await fileSite(restoreDir, 'siteA');
      t0 = performance.now();
      const pulled = await fresh.site.pull({ siteId: 'siteB', address: bt.address, transport: tls.transport, psk, authenticate: (p, id) => p.commonName === id }, rt.remoteSnapshotIds[0]);
      const out = await RawFileBlockDevice.open({ path: join(dir, 'restored.img'), create: { byteLength: IMAGE_BYTES } });
      const reader = fresh.tree.openSnapshot(pulled.id);
      for (let off = 0; off < IMAGE_BYTES; off += 4 * MiB) await out.write(off, await reader.read(off, 4 * MiB));
      await out.flush();
      const restoreMs = performance.now() - t0;
      await reader.close();
      await out.close();
      const same = (await snapshotDigest(fresh.tree, pulled.id)) === (await snapshotDigest(a.tree, s1.id));
      results.push({ bench: 'restore.remote', value: mbPerSec(IMAGE_BYTES, restoreMs), unit: 'MB/s', logicalBytes: IMAGE_BYTES, verified: same, transport: 'mutual TLS 1.3', into: 'raw file' });
      bt.stop();
      await fresh.close();
      await vol.close();
      await clone.close();
      await a.close();
      return results;
    },
  },
];
