// The NBD server against the real disk tools (Debian: libnbd-bin, qemu-utils, e2fsprogs).
// The server runs in this process and the tools are child processes started with async
// spawn (a spawnSync would block the event loop the server runs on). A missing tool skips
// the tests that need it, loudly: a warning names the tool and the package to install.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceExtentStore } from '../../src/adapters/index.js';
import { LmdbMetaStore, RawFileBlockDevice } from '../../src/adapters/node.js';
import { NbdServer } from '../../src/nbd/index.js';
import { SnapshotTree } from '../../src/snapshot/index.js';
import { memoryFixture, type Fixture } from './nbd-fixtures.js';

/** Where Debian puts the tools; /usr/sbin is not on a non-root PATH. */
const SEARCH_DIRS = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
/** Deadline of one tool run: they take well under a second here; a hang must fail the test, not the suite. */
const TOOL_TIMEOUT_MS = 60_000;

function findTool(name: string): string | undefined {
  for (const dir of SEARCH_DIRS) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

const PACKAGE_OF: Record<string, string> = { nbdinfo: 'libnbd-bin', nbdcopy: 'libnbd-bin', 'qemu-img': 'qemu-utils', 'qemu-io': 'qemu-utils', mke2fs: 'e2fsprogs', e2fsck: 'e2fsprogs' };
const tools = Object.fromEntries(Object.keys(PACKAGE_OF).map((t) => [t, findTool(t)])) as Record<string, string | undefined>;
const missing = (...names: string[]): boolean => {
  const absent = names.filter((n) => tools[n] === undefined);
  if (absent.length > 0) {
    console.warn(`NBD real-client test SKIPPED: ${absent.join(', ')} not installed (apt-get install -y ${[...new Set(absent.map((n) => PACKAGE_OF[n]))].join(' ')})`);
  }
  return absent.length > 0;
};

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a tool to completion without blocking the event loop (the server shares it). */
function run(tool: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(tools[tool] ?? tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), TOOL_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function ok(tool: string, args: string[]): Promise<RunResult> {
  const r = await run(tool, args);
  if (r.code !== 0) throw new Error(`${tool} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

let dir = '';
let fx: Fixture;
let tcp: NbdServer;
let unix: NbdServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'drkit-nbd-'));
  fx = await memoryFixture();
  tcp = await NbdServer.start({ tree: fx.tree, listen: { port: 0 } });
  unix = await NbdServer.start({ tree: fx.tree, listen: { socketPath: join(dir, 'nbd.sock') } });
});
afterAll(async () => {
  await tcp?.close();
  await unix?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('NBD with real clients', () => {
  it.skipIf(missing('nbdinfo'))('nbdinfo --list shows every export with its size and mode', async () => {
    const clone = await fx.tree.clone('snap-1', { name: 'clone-a' });
    await clone.close();
    for (const server of [tcp, unix]) {
      const r = await ok('nbdinfo', ['--list', '--json', server.uri()]);
      const exports = (JSON.parse(r.stdout) as { exports: { 'export-name': string; 'export-size': number; is_read_only: boolean; description: string }[] }).exports;
      expect(exports.map((e) => [e['export-name'], e['export-size'], e.is_read_only])).toEqual([
        ['disk', fx.image.length, false],
        ['clone-a', fx.image.length, false],
        ['disk@s1', fx.image.length, true],
      ]);
      expect(exports[2]!.description).toMatch(/snapshot snap-1/);
    }
  });

  it.skipIf(missing('nbdcopy'))('nbdcopy of a snapshot over a Unix socket produces its exact bytes', async () => {
    const out = join(dir, 'nbdcopy.raw');
    writeFileSync(out, '');
    await ok('nbdcopy', [unix.uri('disk@s1'), out]);
    expect(Buffer.compare(readFileSync(out), Buffer.from(fx.image))).toBe(0);
  });

  it.skipIf(missing('qemu-img'))('qemu-img convert of a snapshot over TCP and over a Unix socket produces its exact bytes', async () => {
    for (const [name, server] of [['tcp', tcp], ['unix', unix]] as const) {
      const out = join(dir, `qemu-img-${name}.raw`);
      await ok('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', server.uri('disk@s1'), out]);
      expect(Buffer.compare(readFileSync(out), Buffer.from(fx.image))).toBe(0);
    }
  });

  it.skipIf(missing('qemu-io'))('qemu-io writes, zeroes and discards on a clone over NBD; a snapshot of the clone reads them back', async () => {
    const clone = await fx.tree.clone('snap-1', { name: 'clone-io' });
    const KiB = 1024;
    const r = await ok('qemu-io', [
      '-f', 'raw',
      '-c', `write -P 0x5a ${64 * KiB} ${128 * KiB}`,
      '-c', `write -z ${256 * KiB} ${64 * KiB}`,
      '-c', `discard ${400 * KiB} ${32 * KiB}`,
      '-c', `read -P 0x5a ${64 * KiB} ${128 * KiB}`,
      '-c', 'flush',
      tcp.uri('clone-io'),
    ]);
    expect(r.stdout).not.toMatch(/Pattern verification failed|error/i);
    const expected = Buffer.from(fx.image);
    expected.fill(0x5a, 64 * KiB, 192 * KiB);
    expected.fill(0, 256 * KiB, 320 * KiB);
    expected.fill(0, 400 * KiB, 432 * KiB);
    const snap = await fx.tree.snapshot(clone.id, { name: 'after-qemu-io' });
    const reader = fx.tree.openSnapshot(snap.id);
    expect(Buffer.compare(Buffer.from(await reader.read(0, reader.byteLength)), expected)).toBe(0);
    await reader.close();
    await clone.close();
    // The source snapshot is untouched.
    const source = fx.tree.openSnapshot('snap-1');
    expect(Buffer.compare(Buffer.from(await source.read(0, source.byteLength)), Buffer.from(fx.image))).toBe(0);
    await source.close();
  });

  it.skipIf(missing('mke2fs', 'e2fsck', 'qemu-img'))('an ext4 image imported into a volume, exported and copied out with qemu-img passes e2fsck -fn', async () => {
    const MiB = 1024 * 1024;
    const imageBytes = 32 * MiB;
    const files = join(dir, 'files');
    mkdirSync(join(files, 'etc'), { recursive: true });
    writeFileSync(join(files, 'etc', 'hostname'), 'drkit-test\n');
    writeFileSync(join(files, 'README'), 'an ext4 file system exported by drkit over NBD\n'.repeat(1000));
    writeFileSync(join(files, 'random.bin'), fx.image.subarray(0, 3 * MiB + 123));
    const image = join(dir, 'ext4.raw');
    writeFileSync(image, '');
    await ok('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', files, image, `${imageBytes / 1024}k`]);
    expect((await run('e2fsck', ['-fn', image])).code).toBe(0);

    // A persistent tree, as a site would have it.
    const device = await RawFileBlockDevice.open({ path: join(dir, 'extents.img'), create: { byteLength: 64 * MiB } });
    const meta = await LmdbMetaStore.open({ path: join(dir, 'metadata'), create: true });
    const extents = await DeviceExtentStore.open({ device, meta });
    const tree = await SnapshotTree.open({ meta, extents });
    const server = await NbdServer.start({ tree, listen: { socketPath: join(dir, 'ext4.sock') } });
    try {
      const source = await RawFileBlockDevice.open({ path: image, readOnly: true });
      const vol = await tree.createVolume({ name: 'fs', byteLength: imageBytes });
      for (let off = 0; off < imageBytes; off += MiB) await vol.write(off, await source.read(off, MiB));
      await source.close();
      await tree.snapshot(vol.id, { name: 'backup' });
      await vol.close();

      const out = join(dir, 'ext4-out.raw');
      await ok('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', server.uri('fs@backup'), out]);
      expect(Buffer.compare(readFileSync(out), readFileSync(image))).toBe(0);
      const fsck = await run('e2fsck', ['-fn', out]);
      expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
    } finally {
      await server.close();
      await tree.close();
      await extents.close();
      await meta.close();
      await device.close();
    }
  });
});
