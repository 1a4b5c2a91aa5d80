// codec.choice (issue #13): lz4 against zstd at low levels on the standard workload's
// 16 KiB extents, the data replication compresses. Input: the non-zero 16 KiB extents of
// the first 256 MiB of the standard image (bench/workload.mjs: random, text-like and
// copied regions; all-zero extents are holes and never compressed). For each codec:
// `value` = ratio, input bytes / output bytes (an extent whose output is over 90% of its
// input counts raw, as ExtentCodec keeps it), `savedPercent`, and MB/s per core of input
// for compress and decompress, from process CPU time (not wall: the machine is shared).
// Interleaved rounds, median reported.
import { ExtentCodec } from '../../dist/dedup/index.js';
import { median } from '../util.mjs';
import { standardImageChunks } from '../workload.mjs';

const EXTENT_BYTES = 16 * 1024;
const IMAGE_BYTES = 256 * 1024 * 1024;
const ROUNDS = 3;
const CODECS = [
  { name: 'lz4', options: { compression: 'lz4' } },
  { name: 'zstd-1', options: { compression: 'zstd', zstdLevel: -1 } },
  { name: 'zstd1', options: { compression: 'zstd', zstdLevel: 1 } },
  { name: 'zstd2', options: { compression: 'zstd', zstdLevel: 2 } },
  { name: 'zstd3', options: { compression: 'zstd', zstdLevel: 3 } },
  { name: 'zstd-3', options: { compression: 'zstd', zstdLevel: -3 } },
];

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function extentsOfImage() {
  const out = [];
  for (const { data } of standardImageChunks({ byteLength: IMAGE_BYTES })) {
    for (let o = 0; o < data.byteLength; o += EXTENT_BYTES) {
      const e = data.slice(o, o + EXTENT_BYTES);
      if (e.some((b) => b !== 0)) out.push(e);
    }
  }
  return out;
}

export default [
  {
    name: 'codec.choice',
    async run({ log }) {
      const extents = extentsOfImage();
      const inputBytes = extents.length * EXTENT_BYTES;
      log(`  ${extents.length} non-zero extents of 16 KiB (${(inputBytes / 1e6).toFixed(0)} MB)`);
      const codecs = await Promise.all(CODECS.map(async (c) => ({ ...c, codec: await ExtentCodec.open(c.options) })));
      const samples = new Map(CODECS.map((c) => [c.name, { c: [], d: [], out: 0 }]));
      for (let round = 0; round < ROUNDS; round++) {
        for (const { name, codec } of codecs) {
          const s = samples.get(name);
          let t = cpuMs();
          const encoded = extents.map((e) => codec.compress(e));
          s.c.push(cpuMs() - t);
          s.out = encoded.reduce((n, e) => n + e.bytes.byteLength, 0);
          t = cpuMs();
          for (const e of encoded) codec.decompress(e.codec, e.bytes, EXTENT_BYTES);
          s.d.push(cpuMs() - t);
        }
      }
      return CODECS.map(({ name }) => {
        const s = samples.get(name);
        return {
          bench: 'codec.choice',
          value: +(inputBytes / s.out).toFixed(3),
          unit: 'ratio',
          codec: name,
          savedPercent: +(100 * (1 - s.out / inputBytes)).toFixed(1),
          compressMBps: Math.round(inputBytes / 1e3 / median(s.c)),
          decompressMBps: Math.round(inputBytes / 1e3 / median(s.d)),
          inputBytes,
          outputBytes: s.out,
          note: 'MB/s per core of input, from process CPU time',
        };
      });
    },
  },
];
