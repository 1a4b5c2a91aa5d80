// CLI benches (issue 15): `drkit import` of the standard workload image (bench/workload.mjs)
// against the library call it wraps (LocalSite.open + createVolume + copyDevice + close,
// in this process), on the same image file and machine. Target: the CLI within 1.1x of
// the library, i.e. ratio (CLI MB/s / library MB/s) >= 0.91.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { RawFileBlockDevice } from '../../dist/adapters/node.js';
import { LocalSite, copyDevice } from '../../dist/local/index.js';
import { mbPerSec } from '../util.mjs';
import { writeStandardImage } from '../workload.mjs';

const MiB = 1024 * 1024;
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli.js');

/** The library path the CLI's import wraps, timed from opening the site to closing it. */
async function libraryImport(dir, image) {
  const start = performance.now();
  const site = await LocalSite.open({ dir, create: true });
  const source = await RawFileBlockDevice.open({ path: image, readOnly: true });
  const vol = await site.tree.createVolume({ name: 'v', byteLength: source.byteLength });
  await copyDevice(source, vol, { targetIsZero: true });
  await vol.close();
  await source.close();
  await site.close();
  return performance.now() - start;
}

/** Writes every dirty page of the system back (sync(1)), so no run pays for an earlier one's. */
function writeBack() {
  const r = spawnSync('sync');
  if (r.status !== 0) throw new Error('sync failed');
}

export default [
  {
    name: 'cli.import',
    async run({ dir, log }) {
      const byteLength = Number(process.env.DRKIT_BENCH_IMAGE_MIB ?? 1024) * MiB;
      const image = join(dir, 'standard.img');
      await writeStandardImage(image, { byteLength });
      // Each run starts with no dirty pages left by the previous step: a first measurement
      // without this charged the second run with the writeback of the first one's 1 GiB.
      writeBack();
      const libraryMs = await libraryImport(join(dir, 'lib-site'), image);
      // The CLI: a fresh process, `init` not timed (the library side's create is timed, so
      // the CLI is charged its process start and module load on top of the same work).
      const site = join(dir, 'cli-site');
      const init = spawnSync(process.execPath, [cli, 'init', site], { encoding: 'utf8' });
      if (init.status !== 0) throw new Error(`drkit init failed: ${init.stderr}`);
      writeBack();
      const start = performance.now();
      const run = spawnSync(process.execPath, [cli, '--site', site, 'import', image, '--volume', 'v'], { encoding: 'utf8' });
      const cliMs = performance.now() - start;
      if (run.status !== 0) throw new Error(`drkit import failed: ${run.stderr}`);
      log(`  library ${libraryMs.toFixed(0)} ms, cli ${cliMs.toFixed(0)} ms`);
      const cliMBps = mbPerSec(byteLength, cliMs);
      const libraryMBps = mbPerSec(byteLength, libraryMs);
      return [
        {
          bench: 'cli.import',
          value: cliMBps,
          unit: 'MB/s',
          byteLength,
          image: 'standard workload (40% random, 30% text, 20% zero, 10% copies)',
          reference: 'LocalSite.open + copyDevice + close in-process (library.import MB/s)',
          referenceValue: libraryMBps,
          ratio: cliMBps / libraryMBps,
          cliMs,
          libraryMs,
          processStartIncluded: true,
          flushIncluded: true,
        },
      ];
    },
  },
  {
    // The backup and the restore as a user runs them with the drkit command, every step its
    // own process: `drkit serve` (the target, in its own process, started before the clock),
    // `drkit import` + `snapshot` + `replicate --to` (the full backup), then, against a
    // fresh `drkit serve`, `drkit restore --from --to FILE` (streamed into a raw file,
    // fsynced, checked against the image). The command runs as an executable, so with its
    // process settings (src/cli/internal/process-settings.ts); DRKIT_BENCH_CLI_AS=node runs
    // `node dist/cli.js` instead, without them. Each process's wall, CPU and peak RSS come
    // from GNU time (/usr/bin/time, Debian package `time`).
    name: 'cli.backup',
    produces: ['cli.backup', 'cli.restore'],
    async run({ dir, log }) {
      if (!existsSync(GNU_TIME)) throw new Error(`cli.backup needs GNU time at ${GNU_TIME} (apt-get install -y time)`);
      const byteLength = Number(process.env.DRKIT_BENCH_IMAGE_MIB ?? 1024) * MiB;
      const asNode = process.env.DRKIT_BENCH_CLI_AS === 'node';
      const image = join(dir, 'standard.img');
      await writeStandardImage(image, { byteLength });
      const imageSha = await sha256OfFile(image);
      const psk = join(dir, 'psk.hex');
      writeFileSync(psk, randomBytes(32).toString('hex'));
      const src = join(dir, 'src');
      const dr = join(dir, 'dr');
      const run = (args) => timed(asNode, args);
      await run(['init', src, '--site-id', 'src', '--no-write-log']);
      await run(['init', dr, '--site-id', 'dr', '--storage-only', '--no-write-log']);
      writeBack();
      let server = await serveTimed(asNode, ['--site', dr, 'serve', '--listen', '127.0.0.1:0', '--psk-file', psk]);
      const imported = await run(['--site', src, 'import', image, '--volume', 'vm']);
      const snapshotted = await run(['--site', src, 'snapshot', 'vm', '--name', 'v1']);
      const replicated = await run(['--site', src, 'replicate', 'v1', '--to', server.remote, '--psk-file', psk]);
      const listed = await run(['--json', '--site', src, 'list', '--remote', server.remote, '--psk-file', psk]);
      const remoteSnapshotId = JSON.parse(listed.stdout.trim().split('\n')[0]).snapshotId;
      const receiver = await server.stop();
      rmSync(image); // nothing reads it again (its pages would only crowd the restore's)
      writeBack();
      server = await serveTimed(asNode, ['--site', dr, 'serve', '--listen', '127.0.0.1:0', '--psk-file', psk]);
      const restoredPath = join(dir, 'restored.img');
      const restored = await run(['--site', src, 'restore', remoteSnapshotId, '--from', server.remote, '--to', restoredPath, '--psk-file', psk]);
      const serving = await server.stop();
      const verified = (await sha256OfFile(restoredPath)) === imageSha;
      const backupSeconds = imported.wallSeconds + snapshotted.wallSeconds + replicated.wallSeconds;
      const processSettings = asNode ? 'none (node dist/cli.js)' : 'the command\'s (dist/cli.js as an executable)';
      log(`  import ${imported.wallSeconds} s, snapshot ${snapshotted.wallSeconds} s, replicate ${replicated.wallSeconds} s, restore ${restored.wallSeconds} s`);
      return [
        {
          bench: 'cli.backup',
          value: mbPerSec(byteLength, backupSeconds * 1000),
          unit: 'MB/s',
          wallSeconds: +backupSeconds.toFixed(2),
          cpuSeconds: +(imported.cpuSeconds + snapshotted.cpuSeconds + replicated.cpuSeconds + receiver.cpuSeconds).toFixed(2),
          importPeakRssBytes: imported.peakRssBytes,
          replicatePeakRssBytes: replicated.peakRssBytes,
          receiverPeakRssBytes: receiver.peakRssBytes,
          receiverCpuSeconds: receiver.cpuSeconds,
          importSeconds: imported.wallSeconds,
          replicateSeconds: replicated.wallSeconds,
          processSettings,
          note: 'drkit import + snapshot + replicate --to, each a process; the target is `drkit serve` in its own process; cpuSeconds includes the target\'s',
        },
        {
          bench: 'cli.restore',
          value: mbPerSec(byteLength, restored.wallSeconds * 1000),
          unit: 'MB/s',
          wallSeconds: restored.wallSeconds,
          cpuSeconds: restored.cpuSeconds,
          peakRssBytes: restored.peakRssBytes,
          receiverPeakRssBytes: serving.peakRssBytes,
          servingCpuSeconds: serving.cpuSeconds,
          verified,
          processSettings,
          note: 'drkit restore --from --to FILE in a fresh process (fsync included), from a fresh `drkit serve`; receiverPeakRssBytes = the serving site',
        },
      ];
    },
  },
];

const GNU_TIME = '/usr/bin/time';
const TIME_FORMAT = 'drkit-bench-time wall=%e user=%U sys=%S maxrss_kib=%M';

/** The command line of `drkit ARGS` under GNU time: the file itself (its first line picks node and the settings), or `node dist/cli.js`. */
function timedArgv(asNode, args) {
  return ['-f', TIME_FORMAT, ...(asNode ? [process.execPath, cli] : [cli]), ...args];
}

/** GNU time's last line of `stderr`: wall and CPU seconds, peak RSS bytes. */
function parseTime(stderr) {
  const m = /drkit-bench-time wall=([\d.]+) user=([\d.]+) sys=([\d.]+) maxrss_kib=(\d+)/.exec(stderr);
  if (m === null) throw new Error(`no GNU time report in: ${stderr.slice(-500)}`);
  return { wallSeconds: Number(m[1]), cpuSeconds: +(Number(m[2]) + Number(m[3])).toFixed(2), peakRssBytes: Number(m[4]) * 1024 };
}

/** Runs `drkit ARGS` to its end; rejects on a non-zero exit. */
function timed(asNode, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(GNU_TIME, timedArgv(asNode, args), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => (code === 0 ? resolve({ ...parseTime(stderr), stdout }) : reject(new Error(`drkit ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`))));
  });
}

/** Starts `drkit --json serve ...` under GNU time; resolves once it listens. stop() sends SIGTERM to drkit (not to time) and resolves with its figures. */
function serveTimed(asNode, args) {
  return new Promise((ready, fail) => {
    const child = spawn(GNU_TIME, timedArgv(asNode, ['--json', ...args]), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const closed = new Promise((done) => child.on('close', (code) => done(code)));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => {
      stdout += d;
      const line = stdout.split('\n').find((l) => l.includes('"listening"'));
      if (line === undefined) return;
      const { remote } = JSON.parse(line);
      ready({
        remote,
        async stop() {
          // GNU time's child is drkit's node (env execs it in place): the one process to stop.
          const pid = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
          process.kill(pid, 'SIGTERM');
          const code = await closed;
          if (code !== 0) throw new Error(`drkit serve exited ${code}: ${stderr.slice(-2000)}`);
          return parseTime(stderr);
        },
      });
    });
    void closed.then((code) => fail(new Error(`drkit serve exited early (${code}): ${stderr.slice(-2000)}`)));
  });
}

async function sha256OfFile(path) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(chunk);
  return h.digest('hex');
}
