#!/usr/bin/env node
// drkit demo: the main job end to end on raw files.
//   1. a raw file as a block device: write, flush, reopen, verify;
//   2. open a site on a directory with one call (LocalSite: extents on a raw data file,
//      metadata in LMDB, the write log), import that disk image into a redirect-on-write
//      volume, snapshot, modify, diff, clone, restore;
//   3. export the restored volume back to a raw file and compare checksums;
//   4. close everything, reopen from the files, verify every reference and checksum;
//   5. replicate to a second site over TCP (full, then incremental), and restore from it:
//      pulled into a site, and streamed straight into a raw file;
//   6. the DR cycle: site A is lost, site B fails over and takes writes, A returns and fails
//      back (its own late writes kept as a clone, only the delta shipped), A is primary again;
//   7. the `drkit` command lists site A from a process of its own.
// Usage: npm run demo [-- --keep]   (--keep leaves the work directory in place)
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { loadXxh64 } from '../dist/index.js';
import { RawFileBlockDevice, TcpTransport } from '../dist/adapters/node.js';
import { LocalSite, copyDevice } from '../dist/local/index.js';
import { demote, failback, failover, originOf, promote, snapshotPromoted, volumeKeyOf } from '../dist/replication/index.js';

const MiB = 1024 * 1024;
const IMAGE_BYTES = 64 * MiB;
const CHUNK_BYTES = MiB; // copy granularity between raw files and volumes

const dir = mkdtempSync(join(tmpdir(), 'drkit-demo-'));
const keep = process.argv.includes('--keep');
const xxh = await loadXxh64();
const say = (msg) => console.log(msg);
const hex = (n) => n.toString(16).padStart(16, '0');

/** xxh64 of a whole device, read in chunks. */
async function checksumOf(device) {
  const h = xxh.create();
  for (let off = 0; off < device.byteLength; off += CHUNK_BYTES) h.update(await device.read(off, Math.min(CHUNK_BYTES, device.byteLength - off)));
  return h.digest();
}

/** A disk-like image: text, random bytes, zero runs and repeated regions. */
function imageChunk(index) {
  const out = new Uint8Array(CHUNK_BYTES);
  const kind = index % 4;
  if (kind === 0) out.set(new TextEncoder().encode(`block ${index}: the quick brown fox jumps over the lazy dog. `.repeat(CHUNK_BYTES / 64)).subarray(0, CHUNK_BYTES));
  if (kind === 1) {
    let x = index * 2654435761 || 1;
    for (let i = 0; i < out.length; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      out[i] = x & 0xff;
    }
  }
  if (kind === 3) out.fill(0x5a); // identical in every such chunk: dedups to one extent per block
  return out; // kind 2: zeros, stored as holes
}

const psk = new Uint8Array(32).fill(7); // a pre-shared key between the sites

/** A whole site on its own directory (extents, LMDB metadata, write log, tree, Site): one call. */
const openSite = (name, siteId) => LocalSite.open({ dir: join(dir, name), create: true, siteId, replication: { peerKeys: () => psk } });

try {
  say(`drkit demo in ${dir}\n`);

  // 1. Raw file as a block device.
  const imagePath = join(dir, 'disk.img');
  let disk = await RawFileBlockDevice.open({ path: imagePath, create: { byteLength: IMAGE_BYTES } });
  for (let i = 0; i < IMAGE_BYTES / CHUNK_BYTES; i++) await disk.write(i * CHUNK_BYTES, imageChunk(i));
  await disk.flush();
  const written = await checksumOf(disk);
  await disk.close();
  disk = await RawFileBlockDevice.open({ path: imagePath });
  const reread = await checksumOf(disk);
  say(`[raw file]   wrote ${IMAGE_BYTES / MiB} MiB to disk.img, flushed, reopened: xxh64 ${hex(reread)} ${reread === written ? 'matches' : 'DIFFERS'}`);
  if (reread !== written) throw new Error('raw file did not read back what was written');

  // 2. Import into a volume and work with snapshots.
  let s = await openSite('siteA', 'siteA');
  const vol = await s.tree.createVolume({ name: 'vm-disk', byteLength: IMAGE_BYTES });
  await copyDevice(disk, vol);
  const stats = await s.extents.stats();
  const blocks = IMAGE_BYTES / vol.blockBytes;
  say(`[import]     disk.img -> volume ${vol.id}: ${blocks} blocks of ${vol.blockBytes / 1024} KiB stored as ${stats.extentCount} extents (${(stats.extentBytes / MiB).toFixed(1)} MiB; zeros are holes, repeats dedup)`);

  const golden = await s.tree.snapshot(vol.id, { name: 'golden', userMetadata: { source: 'disk.img' } });
  say(`[snapshot]   ${golden.id} "golden" (${golden.consistency}-consistent), O(1): no data copied`);

  const patch = new TextEncoder().encode('patched by the demo '.repeat(200));
  for (const off of [5 * MiB + 100, 17 * MiB, 40 * MiB + 4096]) await vol.write(off, patch);
  const changed = await s.tree.snapshot(vol.id, { name: 'after-patch' });
  let changedBlocks = 0;
  for await (const r of s.tree.diff(golden.id, changed.id)) changedBlocks += r.blockCount;
  say(`[modify]     3 writes of ${patch.length} B; diff(golden, after-patch) = ${changedBlocks} changed blocks of ${blocks}`);

  const clone = await s.tree.clone(golden.id, { name: 'test-clone' });
  const cloneSum = await checksumOf(clone);
  say(`[clone]      ${clone.id} from golden: xxh64 ${hex(cloneSum)} ${cloneSum === written ? 'equals the original image' : 'DIFFERS'}`);
  await clone.write(0, new Uint8Array(4096).fill(1)); // the clone diverges; golden does not
  await clone.close();

  const beforeRestore = await checksumOf(vol);
  await s.tree.restore(vol.id, golden.id);
  say(`[restore]    vm-disk reverted in place to golden (was ${hex(beforeRestore)})`);

  // 3. Export back to a raw file and compare.
  const exported = await RawFileBlockDevice.open({ path: join(dir, 'exported.img'), create: { byteLength: IMAGE_BYTES } });
  await copyDevice(vol, exported);
  const exportedSum = await checksumOf(exported);
  say(`[export]     vm-disk -> exported.img: xxh64 ${hex(exportedSum)} ${exportedSum === written ? 'identical to disk.img' : 'DIFFERS from disk.img'}`);
  if (exportedSum !== written) throw new Error('export differs from the imported image');
  await exported.close();
  await vol.close();
  await disk.close();

  // 4. Reopen from the files and verify everything.
  await s.close();
  const openStart = performance.now();
  s = await openSite('siteA', 'siteA');
  const openMs = performance.now() - openStart;
  const metaStats = await s.meta.stats();
  const extentStats = await s.extents.stats();
  say(
    `[open]       stores reopened in ${openMs.toFixed(1)} ms: metadata in LMDB (${metaStats.keyCount} records, ${(metaStats.storedBytes / MiB).toFixed(1)} MiB on disk), ` +
      `${extentStats.extentCount} extents indexed there; nothing loaded into memory but headers and counters`,
  );
  const report = await s.tree.verify({ readData: true });
  const reader = s.tree.openSnapshot(golden.id);
  const goldenSum = await checksumOf(reader);
  await reader.close();
  say(`[reopen]     ${s.tree.listSnapshots().length} snapshots, ${s.tree.listVolumes().length} volumes; golden still ${goldenSum === written ? 'bit-identical' : 'DIFFERENT'}`);
  say(`[verify]     ${report.nodesChecked} map nodes, ${report.extentsChecked} extents re-read and re-fingerprinted: ${report.ok ? 'no problems' : JSON.stringify(report.problems)}`);
  if (!report.ok || goldenSum !== written) throw new Error('verification failed');

  // 5. A second site (its own raw files) behind TCP on loopback: replicate, then restore.
  const siteA = s.site;
  const b = await openSite('siteB', 'siteB');
  const siteB = b.site;
  const listener = await siteB.listen(TcpTransport.create(), '127.0.0.1:0');
  const remoteB = { siteId: 'siteB', address: listener.address, transport: TcpTransport.create(), psk };
  const full = await siteA.replicate(golden.id, remoteB);
  const p1 = full.progress;
  say(`[replicate]  golden -> siteB (${listener.address}, every frame authenticated under the PSK): ${(p1.totalBytes / MiB).toFixed(1)} MiB changed vs empty, ${(p1.sentExtentBytes / MiB).toFixed(1)} MiB of extents sent as ${(p1.compressedExtentBytes / MiB).toFixed(1)} MiB zstd, ${(p1.dedupedBytes / MiB).toFixed(1)} MiB deduped`);
  const inc = await siteA.replicate(changed.id, remoteB);
  say(`[replicate]  after-patch -> siteB, incremental against ${inc.baseSnapshotIds[0]}: ${(inc.progress.sentExtentBytes / 1024).toFixed(0)} KiB of extents sent`);
  const c = await openSite('siteA2', 'siteA');
  const siteA2 = c.site;
  const restored = await siteA2.pull(remoteB, full.remoteSnapshotIds[0]);
  const rr = c.tree.openSnapshot(restored.id);
  const restoredSum = await checksumOf(rr);
  await rr.close();
  say(`[restore]    a fresh siteA pulled golden back from siteB: ${restoredSum === written ? 'bit-identical to disk.img' : 'DIFFERS'}`);
  // Restore straight into a raw file (no local extent store in between), then what siteB keeps at rest.
  // O_DIRECT writes (whole 4 KiB units bypass the page cache), as `drkit restore --to` opens its target.
  const target = { path: join(dir, 'restored-from-B.img'), create: { byteLength: golden.byteLength } };
  const direct = await RawFileBlockDevice.open({ ...target, direct: true }).catch((err) => {
    if (err?.code === 'NOT_SUPPORTED') return RawFileBlockDevice.open(target); // a file system without O_DIRECT
    throw err;
  });
  const phases = new Set();
  const streamed = await siteA2.restoreToDevice(remoteB, full.remoteSnapshotIds[0], direct, { deviceZeroed: true, onProgress: (p) => phases.add(p.phase) });
  const directSum = await checksumOf(direct);
  const { directBytes } = direct.writtenBytes;
  await direct.close();
  const atRest = await b.extents.stats();
  say(
    `[restore]    golden streamed from siteB straight into restored-from-B.img (${[...phases].join(' > ')}; ${(directBytes / MiB).toFixed(1)} MiB written with O_DIRECT): ${(streamed.progress.wireBytes / MiB).toFixed(1)} MiB on the wire, ` +
      `${directSum === written ? 'bit-identical to disk.img' : 'DIFFERS'}; siteB holds ${(atRest.extentBytes / MiB).toFixed(1)} MiB of extents in ${(atRest.storedBytes / MiB).toFixed(1)} MiB (kept zstd-compressed as they arrived)`,
  );
  if (directSum !== written) throw new Error('device restore differs');

  // 6. The DR cycle. Site A writes after its last replicated snapshot, then is lost.
  const lineage = volumeKeyOf(originOf(changed, 'siteA'));
  const vmDisk = await s.tree.openVolume(vol.id);
  await vmDisk.write(30 * MiB, new TextEncoder().encode('written on A after the last replication'));
  await vmDisk.flush();
  const promoted = await failover(siteB, lineage, { name: 'vm-disk-dr' });
  say(`[failover]   siteA lost; siteB promoted its newest replica (${promoted.fromSnapshotId}) to writable ${promoted.volume.id}, generation ${promoted.generation}`);
  await promoted.volume.write(50 * MiB, new TextEncoder().encode('written on B while A was down'));
  const onB = await snapshotPromoted(siteB, lineage, { name: 'while-A-down' });
  const listenerA = await siteA.listen(TcpTransport.create(), '127.0.0.1:0');
  const remoteA = { siteId: 'siteA', address: listenerA.address, transport: TcpTransport.create(), psk };
  await vmDisk.close();
  const back = await failback(siteA, remoteB, lineage);
  say(`[failback]   siteA returned: common snapshot ${back.commonSnapshotId}; A's late writes kept as ${back.divergedVolumeId ? s.tree.getVolume(back.divergedVolumeId).name : '(none)'}; B's changes pulled as ${back.resyncedSnapshotId}`);
  await promoted.volume.write(51 * MiB, new TextEncoder().encode('last write on B before moving back'));
  const fin = await snapshotPromoted(siteB, lineage, { name: 'final-on-B' });
  const toA = await siteB.replicate(fin.id, remoteA);
  await promoted.volume.close();
  await demote(siteB, lineage, { force: true });
  const home = await promote(siteA, toA.remoteSnapshotIds[0], { volumeId: back.demotedVolumeId });
  const homeSum = await checksumOf(home.volume);
  const bReader = b.tree.openSnapshot(fin.id);
  const bSum = await checksumOf(bReader);
  await bReader.close();
  say(`[migrate]    B's final snapshot sent back (${(toA.progress.sentExtentBytes / 1024).toFixed(0)} KiB of extents, incremental); siteA primary again at generation ${home.generation}: ${homeSum === bSum ? 'bit-identical to B' : 'DIFFERS from B'}`);
  await home.volume.close();
  void onB;
  if (homeSum !== bSum) throw new Error('failback did not converge');
  for (const x of [b, c, s]) await x.close(); // each: stop serving, flush, close its five parts
  if (restoredSum !== written) throw new Error('remote restore differs');

  // The same site from the command line (`drkit`, docs/cli.md), in a process of its own.
  const cliRun = spawnSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js'), '--site', join(dir, 'siteA'), '--json', 'list'], { encoding: 'utf8' });
  if (cliRun.status !== 0) throw new Error(`drkit list failed: ${cliRun.stderr}`);
  const listed = cliRun.stdout.trim().split('\n').map((l) => JSON.parse(l));
  say(`[cli]        drkit --site siteA list: ${listed.filter((x) => x.type === 'volume').length} volumes, ${listed.filter((x) => x.type === 'snapshot').length} snapshots (\`npm run example:cli\`: a three-command backup and restore)`);

  // NBD: `drkit nbd` serves the site to real disk tools; nbdcopy reads the golden snapshot.
  const nbdcopy = ['/usr/bin/nbdcopy', '/usr/local/bin/nbdcopy'].find((p) => existsSync(p));
  if (nbdcopy === undefined) say('[nbd]        skipped: nbdcopy not installed (apt-get install -y libnbd-bin)');
  else {
    const socketPath = join(dir, 'nbd.sock');
    // Run as a user runs `drkit`: the file itself, whose first line starts node with the
    // command's process settings (src/cli/internal/process-settings.ts).
    const server = spawn(join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js'), ['--site', join(dir, 'siteA'), '--json', 'nbd', '--socket', socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    const serverExit = new Promise((resolve) => server.on('close', resolve));
    let out = '';
    await new Promise((resolve, reject) => {
      server.stdout.on('data', (d) => {
        out += d;
        if (out.includes('"listening"')) resolve();
      });
      serverExit.then((code) => reject(new Error(`drkit nbd exited (${code})`)));
    });
    const exports = out.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'export');
    const tuned = process.platform !== 'linux'
      ? 'not checked off Linux'
      : readFileSync(`/proc/${server.pid}/environ`, 'utf8').split('\0').includes('MALLOC_MMAP_THRESHOLD_=131072') && readFileSync(`/proc/${server.pid}/cmdline`, 'utf8').split('\0').includes('--max-semi-space-size=4')
        ? 'MALLOC_MMAP_THRESHOLD_=131072 and --max-semi-space-size=4 in effect'
        : 'NOT in effect';
    const goldenExport = exports.find((e) => e.name === 'vm-disk@golden');
    const copyPath = join(dir, 'nbd-copy.img');
    const copied = await new Promise((resolve) => spawn(nbdcopy, [goldenExport.uri, copyPath], { stdio: 'inherit' }).on('close', resolve));
    const copy = await RawFileBlockDevice.open({ path: copyPath });
    const copySum = await checksumOf(copy);
    await copy.close();
    server.kill('SIGTERM');
    const serverCode = await serverExit;
    say(`[cli]        drkit nbd runs as a command (pid ${server.pid}): process settings ${tuned}`);
    say(`[nbd]        drkit nbd: ${exports.length} exports; nbdcopy of export "${goldenExport.name}" (Unix socket) -> file: xxh64 ${hex(copySum)} ${copied === 0 && copySum === written ? 'identical to disk.img' : 'DIFFERS'}; SIGTERM -> exit ${serverCode}`);
    if (copied !== 0 || copySum !== written || serverCode !== 0) throw new Error('NBD export did not serve the snapshot');
  }

  // The write log, in a process of its own that is SIGKILLed mid-stream (examples/write-log.mjs).
  const logRun = spawnSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'write-log.mjs')], { encoding: 'utf8' });
  for (const line of logRun.stdout.trim().split('\n')) say(`[write log]  ${line}`);
  if (logRun.status !== 0) throw new Error(`write-log example failed: ${logRun.stderr}`);
  // Metro: two site processes and the witness; SIGKILL of the peer, degraded writes, delta resync, planned swap (examples/metro.mjs).
  const metroRun = spawnSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'metro.mjs')], { encoding: 'utf8' });
  for (const line of metroRun.stdout.trim().split('\n')) say(`[metro]      ${line}`);
  if (metroRun.status !== 0) throw new Error(`metro example failed: ${metroRun.stderr}`);
  // NearSync: LWS from the write log to a target process over TCP, restored and composed there (examples/nearsync.mjs).
  const nsRun = spawnSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'nearsync.mjs')], { encoding: 'utf8' });
  for (const line of nsRun.stdout.trim().split('\n')) say(`[nearsync]   ${line}`);
  if (nsRun.status !== 0) throw new Error(`nearsync example failed: ${nsRun.stderr}`);
  say('\ndemo completed: every checksum matched');
} finally {
  if (keep) say(`(kept ${dir})`);
  else rmSync(dir, { recursive: true, force: true });
}
