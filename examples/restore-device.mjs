// Restore straight into a device (issue #13): site A replicates a snapshot to site B (its
// extents arrive zstd-compressed and stay so at rest), then a third, empty site restores
// it from B straight into a raw file — no local extent store in between. The first
// attempt is cancelled half-way with an AbortSignal; the second resumes from the
// checkpoint file beside the target and fetches only the rest. The result is compared
// with the source byte for byte.
//
// Usage: npm run build && node examples/restore-device.mjs
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawFileBlockDevice, TcpTransport } from '../dist/adapters/node.js';
import { LocalSite } from '../dist/local/index.js';
import { fileRestoreCheckpoints } from '../dist/replication/index.js';

const MiB = 1024 * 1024;
const VOLUME_BYTES = 64 * MiB;
const psk = new Uint8Array(32).fill(9);
const dir = mkdtempSync(join(tmpdir(), 'drkit-restore-device-'));
const say = (msg) => console.log(msg);
const open = (name, siteId) => LocalSite.open({ dir: join(dir, name), create: true, siteId, replication: { peerKeys: () => psk } });

async function digest(device, byteLength) {
  const h = createHash('sha256');
  for (let off = 0; off < byteLength; off += 4 * MiB) h.update(await device.read(off, 4 * MiB));
  return h.digest('hex');
}

try {
  const a = await open('siteA', 'siteA');
  const vol = await a.tree.createVolume({ name: 'disk', byteLength: VOLUME_BYTES });
  const text = new TextEncoder().encode('an extent of text that compresses well at rest. '.repeat(MiB / 32)).subarray(0, MiB);
  for (let i = 0; i < VOLUME_BYTES / MiB; i++) {
    if (i % 3 === 2) continue; // a hole: zeros
    const chunk = i % 3 === 0 ? text : randomBytes(MiB);
    await vol.write(i * MiB, chunk);
  }
  await vol.flush();
  const snap = await a.tree.snapshot(vol.id, { name: 'nightly' });
  const source = await digest(a.tree.openSnapshot(snap.id), VOLUME_BYTES);

  const b = await open('siteB', 'siteB');
  const listener = await b.site.listen(TcpTransport.create(), '127.0.0.1:0');
  const remoteB = { siteId: 'siteB', address: listener.address, transport: TcpTransport.create(), psk };
  const sent = await a.site.replicate(snap.id, remoteB);
  const atRest = await b.extents.stats();
  say(`[replicate] nightly -> siteB: ${(sent.progress.sentExtentBytes / MiB).toFixed(1)} MiB of extents, ${(sent.progress.compressedExtentBytes / MiB).toFixed(1)} MiB on the wire; siteB stores them in ${(atRest.storedBytes / MiB).toFixed(1)} MiB (compressed at rest)`);

  const restorer = await open('restorer', 'restorer');
  const target = join(dir, 'restored.img');
  const checkpoints = fileRestoreCheckpoints(`${target}.drkit-restore`);
  // O_DIRECT writes where the file system takes them, as `drkit restore --to` opens its target.
  const options = { path: target, create: { byteLength: VOLUME_BYTES } };
  const device = await RawFileBlockDevice.open({ ...options, direct: true }).catch((err) => (err?.code === 'NOT_SUPPORTED' ? RawFileBlockDevice.open(options) : Promise.reject(err)));
  const controller = new AbortController();
  const first = await restorer.site
    .restoreToDevice(remoteB, sent.remoteSnapshotIds[0], device, {
      deviceZeroed: true,
      checkpoints,
      checkpointBytes: 8 * MiB,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'transfer' && p.logicalBytes >= VOLUME_BYTES / 2) controller.abort();
      },
    })
    .catch((err) => err);
  const saved = await checkpoints.load();
  say(`[restore]   first attempt cancelled half-way: ${first.code}; checkpoint at ${((saved.cursorBlock * saved.blockBytes) / MiB).toFixed(0)} MiB (${existsSync(`${target}.drkit-restore`) ? 'restored.img.drkit-restore' : 'missing'})`);
  const second = await restorer.site.restoreToDevice(remoteB, sent.remoteSnapshotIds[0], device, {
    deviceZeroed: true,
    checkpoints,
    onProgress: (p) => {
      if (p.phase === 'done') say(`[restore]   resumed from ${(p.resumedFromBytes / MiB).toFixed(0)} MiB: ${(p.extentBytes / MiB).toFixed(1)} MiB of extents, ${(p.wireBytes / MiB).toFixed(1)} MiB on the wire (frames included)`);
    },
  });
  const restored = await digest(device, VOLUME_BYTES);
  const { directBytes, bufferedBytes } = device.writtenBytes;
  await device.close();
  say(`[device]    ${(directBytes / MiB).toFixed(1)} MiB written with O_DIRECT, ${(bufferedBytes / MiB).toFixed(1)} MiB through the page cache`);
  say(`[verify]    restored.img ${restored === source ? 'is bit-identical to the snapshot' : 'DIFFERS'} (${second.originSnapshotId}); restorer site holds ${restorer.tree.listSnapshots().length} snapshots (nothing landed there)`);
  await vol.close();
  for (const s of [restorer, b, a]) await s.close();
  if (restored !== source) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
