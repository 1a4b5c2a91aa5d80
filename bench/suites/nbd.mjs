// NBD export bench (issue 15): nbdcopy of a 1 GiB snapshot exported over a Unix socket,
// against reading the same snapshot through the library in 1 MiB reads in the same run.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { NbdServer } from '../../dist/nbd/index.js';
import { mbPerSec, median, timeMs } from '../util.mjs';
import { standardImageChunks } from '../workload.mjs';
import { fileTree } from './snapshot.mjs';

const MiB = 1024 * 1024;
/** Library reads of the reference: 1 MiB, the unit nbdcopy-sized clients reach for. */
const READ_BYTES = MiB;
/** Alternating runs of each side; the median is reported (the machine is shared). */
const REPEATS = 3;

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${stderr}`))));
  });
}

/**
 * nbdcopy of the snapshot's bytes from qemu-nbd serving them as a plain raw file, to a raw
 * file: the client and output-file ceiling on this machine (undefined without qemu-nbd).
 */
async function qemuNbdCeiling(tree, snapshotId, dir, byteLength) {
  const raw = join(dir, 'plain.raw');
  const reader = tree.openSnapshot(snapshotId);
  const fd = openSync(raw, 'w');
  for (let off = 0; off < byteLength; off += READ_BYTES) writeSync(fd, await reader.read(off, READ_BYTES), 0, READ_BYTES, off);
  closeSync(fd);
  await reader.close();
  const sock = join(dir, 'qemu.sock');
  const server = spawn('qemu-nbd', ['-f', 'raw', '-r', '-t', '-k', sock, '-x', 'plain', '-e', '4', raw], { stdio: 'ignore' });
  const failed = new Promise((resolve) => server.on('error', () => resolve(true)));
  try {
    for (let i = 0; i < 100 && !existsSync(sock); i++) if (await Promise.race([failed, new Promise((r) => setTimeout(() => r(false), 50))])) return undefined;
    if (!existsSync(sock)) return undefined;
    const out = join(dir, 'plain-copy.raw');
    writeFileSync(out, '');
    const ms = await timeMs(() => run('nbdcopy', [`nbd+unix:///plain?socket=${sock}`, out]));
    rmSync(out);
    return mbPerSec(byteLength, ms);
  } finally {
    server.kill('SIGTERM');
    rmSync(raw, { force: true });
  }
}

export default [
  {
    name: 'nbd.read',
    async run({ dir, log }) {
      const byteLength = Number(process.env.DRKIT_BENCH_IMAGE_MIB ?? 1024) * MiB;
      const t = await fileTree(dir, 'nbd', 64 * MiB);
      const vol = await t.tree.createVolume({ name: 'disk', byteLength });
      for (const { byteOffset, data } of standardImageChunks({ byteLength })) await vol.write(byteOffset, data);
      await vol.flush();
      const snap = await t.tree.snapshot(vol.id, { name: 'bench' });
      await vol.close();
      const server = await NbdServer.start({ tree: t.tree, listen: { socketPath: join(dir, 'nbd.sock') } });
      const out = join(dir, 'copy.raw');
      const libraryRuns = [];
      const nbdRuns = [];
      const nullRuns = [];
      let clientCeilingMBps;
      try {
        for (let r = 0; r < REPEATS; r++) {
          const reader = t.tree.openSnapshot(snap.id);
          libraryRuns.push(await timeMs(async () => {
            for (let off = 0; off < byteLength; off += READ_BYTES) await reader.read(off, READ_BYTES);
          }));
          await reader.close();
          writeFileSync(out, '');
          nbdRuns.push(await timeMs(() => run('nbdcopy', [server.uri('disk@bench'), out])));
          rmSync(out);
          // What bounds it: the same copy to null: (no output file) is the server's side.
          nullRuns.push(await timeMs(() => run('nbdcopy', [server.uri('disk@bench'), 'null:'])));
          log(`  run ${r + 1}: library ${mbPerSec(byteLength, libraryRuns[r]).toFixed(0)} MB/s, nbdcopy ${mbPerSec(byteLength, nbdRuns[r]).toFixed(0)} MB/s, to null: ${mbPerSec(byteLength, nullRuns[r]).toFixed(0)} MB/s`);
        }
        // And the client's side: nbdcopy of the same bytes served by qemu-nbd from a raw file.
        clientCeilingMBps = await qemuNbdCeiling(t.tree, snap.id, dir, byteLength);
      } finally {
        await server.close();
        await t.close();
      }
      const nbdMBps = mbPerSec(byteLength, median(nbdRuns));
      const referenceMBps = mbPerSec(byteLength, median(libraryRuns));
      return [
        {
          bench: 'nbd.read',
          value: nbdMBps,
          unit: 'MB/s',
          reference: 'volume.seqread',
          referenceMBps,
          ratio: nbdMBps / referenceMBps,
          toNullMBps: mbPerSec(byteLength, median(nullRuns)),
          clientCeilingMBps,
          byteLength,
          image: 'standard workload (40% random, 30% text, 20% zero, 10% copies)',
          client: 'nbdcopy (defaults) to a raw file, Unix socket',
          referenceIoBytes: READ_BYTES,
          backing: 'raw files (DeviceExtentStore + LmdbMetaStore)',
          repeats: REPEATS,
        },
      ];
    },
  },
];
