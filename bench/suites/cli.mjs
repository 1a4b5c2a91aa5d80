// CLI benches (issue 15): `drkit import` of the standard workload image (bench/workload.mjs)
// against the library call it wraps (LocalSite.open + createVolume + copyDevice + close,
// in this process), on the same image file and machine. Target: the CLI within 1.1x of
// the library, i.e. ratio (CLI MB/s / library MB/s) >= 0.91.
import { spawnSync } from 'node:child_process';
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
];
