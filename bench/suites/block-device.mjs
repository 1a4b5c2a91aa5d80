// Block device benches: the raw-file adapter against plain node:fs on the same machine,
// same file sizes, same I/O sizes. Each bench runs REPEATS times and reports the median,
// because fsync time on this VM's disk varies several-fold between runs.
import fs from 'node:fs';
import { join } from 'node:path';
import { RawFileBlockDevice } from '../../dist/adapters/node.js';
import { timeMs, median, mbPerSec, seededBytes } from '../util.mjs';

/** Repeats per bench: odd, so the median is a measured run. */
const REPEATS = 5;
const SEQ_BYTES = 512 * 1024 * 1024;
const SEQ_IO_BYTES = 64 * 1024;
const RAND_BYTES = 256 * 1024 * 1024;
const RAND_IO_BYTES = 4096;
/** Random writes per run: 64 Ki x 4 KiB = 256 MiB written (the file size), 256 fsyncs. */
const RAND_WRITES = 65536;
const RAND_FLUSH_EVERY = 256;

function randomOffsets(seed) {
  let x = seed >>> 0 || 1;
  const blocks = RAND_BYTES / RAND_IO_BYTES;
  const out = new Array(RAND_WRITES);
  for (let i = 0; i < RAND_WRITES; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = (x % blocks) * RAND_IO_BYTES;
  }
  return out;
}

function freshPath(dir, name) {
  const path = join(dir, name);
  fs.rmSync(path, { force: true });
  return path;
}

async function repeat(fn) {
  const values = [];
  for (let i = 0; i < REPEATS; i++) values.push(await fn(i));
  return median(values);
}

const seqData = seededBytes(SEQ_IO_BYTES, 7);
const randData = seededBytes(RAND_IO_BYTES, 9);
const seqParams = { byteLength: SEQ_BYTES, ioBytes: SEQ_IO_BYTES, fsyncIncluded: true, repeats: REPEATS };
const randParams = { byteLength: RAND_BYTES, ioBytes: RAND_IO_BYTES, writes: RAND_WRITES, flushEvery: RAND_FLUSH_EVERY, repeats: REPEATS };

export default [
  {
    name: 'fs.seqwrite',
    async run({ dir }) {
      const value = await repeat(async () => {
        const path = freshPath(dir, 'fs-seq');
        const fd = fs.openSync(path, 'w+');
        const ms = await timeMs(() => {
          for (let off = 0; off < SEQ_BYTES; off += SEQ_IO_BYTES) fs.writeSync(fd, seqData, 0, SEQ_IO_BYTES, off);
          fs.fdatasyncSync(fd);
        });
        fs.closeSync(fd);
        fs.rmSync(path);
        return mbPerSec(SEQ_BYTES, ms);
      });
      return [{ bench: 'fs.seqwrite', value, unit: 'MB/s', api: 'fs.writeSync+fdatasyncSync', ...seqParams }];
    },
  },
  {
    name: 'rawfile.seqwrite',
    async run({ dir }) {
      const value = await repeat(async () => {
        const path = freshPath(dir, 'raw-seq');
        const dev = await RawFileBlockDevice.open({ path, create: { byteLength: SEQ_BYTES } });
        const ms = await timeMs(async () => {
          for (let off = 0; off < SEQ_BYTES; off += SEQ_IO_BYTES) await dev.write(off, seqData);
          await dev.flush();
        });
        await dev.close();
        fs.rmSync(path);
        return mbPerSec(SEQ_BYTES, ms);
      });
      return [{ bench: 'rawfile.seqwrite', value, unit: 'MB/s', api: 'RawFileBlockDevice.write+flush', ...seqParams }];
    },
  },
  {
    name: 'fs.randwrite4k',
    async run({ dir }) {
      const value = await repeat(async (i) => {
        const offsets = randomOffsets(1000 + i);
        const path = freshPath(dir, 'fs-rand');
        const fd = fs.openSync(path, 'w+');
        fs.ftruncateSync(fd, RAND_BYTES);
        const ms = await timeMs(() => {
          for (let k = 0; k < RAND_WRITES; k++) {
            fs.writeSync(fd, randData, 0, RAND_IO_BYTES, offsets[k]);
            if (k % RAND_FLUSH_EVERY === RAND_FLUSH_EVERY - 1) fs.fdatasyncSync(fd);
          }
        });
        fs.closeSync(fd);
        fs.rmSync(path);
        return RAND_WRITES / (ms / 1000);
      });
      return [{ bench: 'fs.randwrite4k', value, unit: 'IOPS', api: 'fs.writeSync+fdatasyncSync', ...randParams }];
    },
  },
  {
    name: 'rawfile.randwrite4k',
    async run({ dir }) {
      const value = await repeat(async (i) => {
        const offsets = randomOffsets(1000 + i);
        const path = freshPath(dir, 'raw-rand');
        const dev = await RawFileBlockDevice.open({ path, create: { byteLength: RAND_BYTES } });
        const ms = await timeMs(async () => {
          for (let k = 0; k < RAND_WRITES; k++) {
            await dev.write(offsets[k], randData);
            if (k % RAND_FLUSH_EVERY === RAND_FLUSH_EVERY - 1) await dev.flush();
          }
        });
        await dev.close();
        fs.rmSync(path);
        return RAND_WRITES / (ms / 1000);
      });
      return [{ bench: 'rawfile.randwrite4k', value, unit: 'IOPS', api: 'RawFileBlockDevice.write+flush', ...randParams }];
    },
  },
  {
    name: 'rawfile.seqread',
    async run({ dir }) {
      const path = freshPath(dir, 'raw-read');
      const dev = await RawFileBlockDevice.open({ path, create: { byteLength: SEQ_BYTES } });
      for (let off = 0; off < SEQ_BYTES; off += SEQ_IO_BYTES) await dev.write(off, seqData);
      await dev.flush();
      const value = await repeat(async () => {
        const ms = await timeMs(async () => {
          for (let off = 0; off < SEQ_BYTES; off += SEQ_IO_BYTES) await dev.read(off, SEQ_IO_BYTES);
        });
        return mbPerSec(SEQ_BYTES, ms);
      });
      await dev.close();
      fs.rmSync(path);
      return [{ bench: 'rawfile.seqread', value, unit: 'MB/s', cache: 'warm', byteLength: SEQ_BYTES, ioBytes: SEQ_IO_BYTES, repeats: REPEATS }];
    },
  },
];
