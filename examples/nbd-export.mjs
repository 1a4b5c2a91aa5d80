// NBD export: a small volume and a snapshot of it served over a Unix socket, listed by
// nbdinfo (libnbd-bin) and read back by qemu-img (qemu-utils) when they are installed.
// The server runs in this process; the tools are child processes (async spawn: the
// server shares this event loop).
//
// Usage: npm run example:nbd
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryExtentStore, MemoryMetaStore } from '../dist/adapters/index.js';
import { NbdServer } from '../dist/nbd/index.js';
import { SnapshotTree } from '../dist/snapshot/index.js';
import { SeededPrng } from '../dist/testing/core.js';

const MiB = 1024 * 1024;
const VOLUME_BYTES = 16 * MiB;

/** Runs a tool; resolves with its exit code and output (code -1 when it is not installed). */
function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', () => resolve({ code: -1, out: `${cmd} is not installed` }));
    child.on('close', (code) => resolve({ code, out }));
  });
}
const sha = (bytes) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

const dir = mkdtempSync(join(tmpdir(), 'drkit-nbd-example-'));
const tree = await SnapshotTree.open({ meta: await MemoryMetaStore.open(), extents: await MemoryExtentStore.open() });
try {
  const vol = await tree.createVolume({ name: 'vm-disk', byteLength: VOLUME_BYTES });
  const image = new SeededPrng(15).fill(new Uint8Array(VOLUME_BYTES / 2)); // the second half stays a hole
  await vol.write(0, image);
  const golden = await tree.snapshot(vol.id, { name: 'golden' });
  await vol.write(0, new Uint8Array(4096).fill(1)); // the volume moves on; the snapshot does not

  const server = await NbdServer.start({ tree, listen: { socketPath: join(dir, 'nbd.sock') } });
  console.log(`[serve]   NBD on ${server.address.socketPath}`);
  for (const e of server.listExports()) console.log(`[export]  ${e.name.padEnd(16)} ${e.readOnly ? 'ro' : 'rw'}  ${e.description}`);

  const list = await run('nbdinfo', ['--list', server.uri()]);
  const lines = list.out.split('\n').filter((l) => /export=|export-size|is_read_only|block_size_preferred/.test(l));
  console.log(`[nbdinfo] --list ${list.code === 0 ? '' : `(${list.out.trim()})`}`);
  for (const l of lines) console.log(`          ${l.trim()}`);

  const out = join(dir, 'golden.raw');
  const convert = await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', server.uri(`vm-disk@${golden.name}`), out]);
  if (convert.code === 0) {
    const copied = readFileSync(out);
    const reader = tree.openSnapshot(golden.id);
    const want = await reader.read(0, VOLUME_BYTES);
    await reader.close();
    console.log(`[qemu-img] convert ${server.uri('vm-disk@golden')} -> golden.raw: sha256 ${sha(copied)} ${sha(copied) === sha(want) ? 'equals the snapshot' : 'DIFFERS from the snapshot'}`);
  } else console.log(`[qemu-img] skipped: ${convert.out.trim()}`);
  const s = server.stats();
  console.log(`[stats]   ${s.connectionsAccepted} connections, ${(s.bytesRead / MiB).toFixed(1)} MiB read, ${s.requests} requests`);
  await server.close(); // waits for requests in flight, flushes what clients wrote
  await vol.close();
} finally {
  await tree.close();
  rmSync(dir, { recursive: true, force: true });
}
