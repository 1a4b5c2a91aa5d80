// The issue 4 standard workload: a deterministic raw disk image and its second version.
//
// Version 1 (writeStandardImage / standardImageChunks) is a sequence of 64 KiB regions
// (REGION_BYTES). Each region has one kind, and the kinds are dealt by a seeded
// Fisher-Yates shuffle of an exact multiset, so the mix is exact, not a probability:
//   random 40%  xorshift32 bytes (incompressible: lz4 passes them through);
//   text   30%  words from a seeded 128-word vocabulary, Zipf frequencies, with
//               spaces, punctuation and line breaks (lz4 ratio 2-3x, checked by
//               test/bench/workload.test.ts);
//   zero   20%  all zero bytes;
//   copy   10%  a byte-exact copy of another region, chosen uniformly among the random
//               and text regions (never a zero or another copy: a copy must be data a
//               deduplicating replicator can recognise).
// Counts per kind are the largest-remainder rounding of regionCount x percentage
// (16,384 regions in 1 GiB: 6,554 random, 4,915 text, 3,277 zero, 1,638 copy).
// A region's bytes are a pure function of (seed, region index), so a copy regenerates
// its source and the image streams in 1 MiB chunks (CHUNK_BYTES) with bounded memory.
//
// Version 2 (version2Writes / applyVersion2): 5% of the 4 KiB blocks (V2_BLOCK_BYTES,
// rounded to the nearest block), distinct and uniformly scattered (Floyd's sampling on
// a seeded generator), each overwritten with 4 KiB of seeded random bytes.
//
// Determinism: every random choice comes from xorshift32 seeded from `seed` (never
// Math.random). Random bytes are written as little-endian uint32 words (every platform
// Node runs on here is little-endian).
import { open } from 'node:fs/promises';

export const REGION_BYTES = 64 * 1024;
/** Streaming unit: bounds the generator's memory to one chunk (16 regions). */
export const CHUNK_BYTES = 1024 * 1024;
export const V2_BLOCK_BYTES = 4096;
/** Fraction of V2_BLOCK_BYTES blocks that version 2 overwrites. */
export const V2_CHANGED_FRACTION = 0.05;
export const DEFAULT_IMAGE_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_SEED = 4;

/** Region kinds, in the order of MIX. */
export const KIND = Object.freeze({ random: 0, text: 1, zero: 2, copy: 3 });
export const KIND_NAMES = Object.freeze(['random', 'text', 'zero', 'copy']);
/** Percentages of regions per kind (sum 100). */
export const MIX = Object.freeze([40, 30, 20, 10]);

/** Writes per applyVersion2 writev call: 64 x 4 KiB = 256 KiB per call. */
const V2_WRITES_PER_CALL = 64;
const VOCABULARY_WORDS = 128;
/** Word index for each 16-bit draw: the log-uniform curve, tabulated for speed. */
const WORD_OF_DRAW = Uint8Array.from({ length: 65536 }, (_, i) => Math.floor(Math.pow(VOCABULARY_WORDS + 1, i / 65536)) - 1);

/** xorshift32 generator: returns a function yielding uint32s. Seed 0 is mapped to 1. */
export function xorshift32(seed) {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** A well-mixed 32-bit seed for stream `(seed, a, b)` (murmur3 finaliser). */
function mixSeed(seed, a, b = 0) {
  let h = (seed ^ Math.imul(a + 1, 0x9e3779b1) ^ Math.imul(b + 1, 0x85ebca77)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0 || 1;
}

/** Uniform integer in [0, n) from a xorshift32 stream (n <= 2^32). */
function below(next, n) {
  return Math.floor((next() / 0x100000000) * n);
}

function assertImageLength(byteLength) {
  if (!Number.isSafeInteger(byteLength) || byteLength <= 0 || byteLength % REGION_BYTES !== 0) {
    throw new RangeError(`byteLength must be a positive multiple of ${REGION_BYTES}, got ${byteLength}`);
  }
}

/** Largest-remainder apportionment of `total` items to MIX. */
export function kindCounts(regionCount) {
  const exact = MIX.map((pct) => (regionCount * pct) / 100);
  const counts = exact.map(Math.floor);
  let left = regionCount - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => [e - Math.floor(e), i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; left > 0; k++, left--) counts[order[k][1]] += 1;
  return counts;
}

/**
 * The layout of an image: `kinds[i]` (a KIND value) and `copyOf[i]` (source region of a
 * copy, -1 otherwise) for each region.
 */
export function regionPlan({ byteLength = DEFAULT_IMAGE_BYTES, seed = DEFAULT_SEED } = {}) {
  assertImageLength(byteLength);
  const regionCount = byteLength / REGION_BYTES;
  const counts = kindCounts(regionCount);
  const kinds = new Uint8Array(regionCount);
  let i = 0;
  counts.forEach((count, kind) => {
    kinds.fill(kind, i, i + count);
    i += count;
  });
  const next = xorshift32(mixSeed(seed, 0x6b696e64));
  for (let j = regionCount - 1; j > 0; j--) {
    const k = below(next, j + 1);
    const t = kinds[j];
    kinds[j] = kinds[k];
    kinds[k] = t;
  }
  const sources = [];
  for (let j = 0; j < regionCount; j++) if (kinds[j] === KIND.random || kinds[j] === KIND.text) sources.push(j);
  const copyOf = new Int32Array(regionCount).fill(-1);
  for (let j = 0; j < regionCount; j++) {
    if (kinds[j] !== KIND.copy) continue;
    if (sources.length === 0) kinds[j] = KIND.zero; // an image too small to hold data regions
    else copyOf[j] = sources[below(next, sources.length)];
  }
  return { byteLength, seed, regionCount, kinds, copyOf, counts };
}

/** Fills `out` with seeded random bytes (xorshift32 inlined: this is the hot loop). */
function fillRandom(out, streamSeed) {
  let x = streamSeed >>> 0 || 0x9e3779b9;
  const words = new Uint32Array(out.buffer, out.byteOffset, out.byteLength >>> 2);
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  for (let i = words.length * 4; i < out.byteLength; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
}

const vocabularies = new Map();

/** The seed's vocabulary: VOCABULARY_WORDS lowercase words of 2-10 letters, as bytes. */
function vocabulary(seed) {
  let words = vocabularies.get(seed);
  if (words) return words;
  const next = xorshift32(mixSeed(seed, 0x766f6361));
  words = [];
  for (let w = 0; w < VOCABULARY_WORDS; w++) {
    const n = 2 + below(next, 9);
    const word = new Uint8Array(n);
    for (let c = 0; c < n; c++) word[c] = 0x61 + below(next, 26);
    words.push(word);
  }
  vocabularies.set(seed, words);
  return words;
}

/**
 * Fills `out` with text-like bytes: words drawn log-uniformly (index = (V+1)^u - 1, so
 * P(word k) ~ 1/k: Zipf's law, as in prose; the commonest word is ~14% of words) from
 * the seed's vocabulary, separated by spaces, with punctuation (~5% of words end with
 * '.', ~5% with ','), a capital after each '.', and a line break for ~2% of spaces.
 * VOCABULARY_WORDS was tuned so that lz4 gives 2-3x on 16 KiB and on 64 KiB pieces
 * (2.2x and 2.4x measured). One xorshift32 draw per word: the high 16 bits pick the
 * word, the low 8 bits its punctuation.
 */
function fillText(out, seed, streamSeed) {
  const words = vocabulary(seed);
  let x = streamSeed >>> 0 || 0x9e3779b9;
  const end = out.byteLength;
  let p = 0;
  let capital = true;
  while (p < end) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const word = words[WORD_OF_DRAW[x >>> 16]];
    const r = x & 0xff;
    const n = Math.min(word.length, end - p);
    out[p] = capital ? word[0] - 0x20 : word[0];
    for (let c = 1; c < n; c++) out[p + c] = word[c];
    p += n;
    capital = false;
    if (p >= end) break;
    if (r < 12) {
      out[p++] = 0x2e; // '.'
      capital = true;
    } else if (r < 24) out[p++] = 0x2c; // ','
    if (p < end) out[p++] = r >= 250 ? 0x0a : 0x20;
  }
}

/** Writes region `index` of `plan` into `out` (REGION_BYTES long). */
export function fillRegion(plan, index, out) {
  const source = plan.kinds[index] === KIND.copy ? plan.copyOf[index] : index;
  const kind = plan.kinds[source];
  if (kind === KIND.random) fillRandom(out, mixSeed(plan.seed, 0x72616e64, source));
  else if (kind === KIND.text) fillText(out, plan.seed, mixSeed(plan.seed, 0x74657874, source));
  else out.fill(0);
  return out;
}

/**
 * The image in order, as up to CHUNK_BYTES chunks. The same buffer is reused for every
 * chunk: consume (or copy) each before asking for the next.
 */
export function* standardImageChunks({ byteLength = DEFAULT_IMAGE_BYTES, seed = DEFAULT_SEED } = {}) {
  const plan = regionPlan({ byteLength, seed });
  const chunk = new Uint8Array(CHUNK_BYTES);
  const regionsPerChunk = CHUNK_BYTES / REGION_BYTES;
  for (let first = 0; first < plan.regionCount; first += regionsPerChunk) {
    const count = Math.min(regionsPerChunk, plan.regionCount - first);
    for (let r = 0; r < count; r++) fillRegion(plan, first + r, chunk.subarray(r * REGION_BYTES, (r + 1) * REGION_BYTES));
    yield { byteOffset: first * REGION_BYTES, data: chunk.subarray(0, count * REGION_BYTES) };
  }
}

/**
 * Writes the version 1 image to `path` (created or truncated).
 * Returns { byteLength, regionCount, counts } where counts follow KIND_NAMES.
 */
export async function writeStandardImage(path, { byteLength = DEFAULT_IMAGE_BYTES, seed = DEFAULT_SEED } = {}) {
  const plan = regionPlan({ byteLength, seed });
  const handle = await open(path, 'w');
  try {
    for (const { byteOffset, data } of standardImageChunks({ byteLength, seed })) {
      let done = 0;
      while (done < data.byteLength) {
        const { bytesWritten } = await handle.write(data, done, data.byteLength - done, byteOffset + done);
        done += bytesWritten;
      }
    }
  } finally {
    await handle.close();
  }
  return { byteLength, regionCount: plan.regionCount, counts: plan.counts };
}

/**
 * Version 2's writes: `blockIndices` (sorted, distinct 4 KiB block indices),
 * `changedBytes`, and `writes()`, a generator of { byteOffset, data } (data is a fresh
 * V2_BLOCK_BYTES array each time).
 */
export function version2Writes({ byteLength = DEFAULT_IMAGE_BYTES, seed = DEFAULT_SEED } = {}) {
  if (!Number.isSafeInteger(byteLength) || byteLength <= 0 || byteLength % V2_BLOCK_BYTES !== 0) {
    throw new RangeError(`byteLength must be a positive multiple of ${V2_BLOCK_BYTES}, got ${byteLength}`);
  }
  const blockCount = byteLength / V2_BLOCK_BYTES;
  const pick = Math.round(blockCount * V2_CHANGED_FRACTION);
  // Floyd's algorithm: `pick` distinct uniform indices in O(pick) time and memory.
  const next = xorshift32(mixSeed(seed, 0x76657232));
  const chosen = new Set();
  for (let j = blockCount - pick; j < blockCount; j++) {
    const t = below(next, j + 1);
    chosen.add(chosen.has(t) ? j : t);
  }
  const blockIndices = Uint32Array.from(chosen).sort();
  return {
    blockByteLength: V2_BLOCK_BYTES,
    blockCount,
    blockIndices,
    changedBytes: blockIndices.length * V2_BLOCK_BYTES,
    *writes() {
      for (const blockIndex of blockIndices) {
        const data = new Uint8Array(V2_BLOCK_BYTES);
        fillRandom(data, mixSeed(seed, 0x626c6b32, blockIndex));
        yield { byteOffset: blockIndex * V2_BLOCK_BYTES, data };
      }
    },
  };
}

/**
 * Applies version 2 to a drkit BlockDevice (a Volume, a raw file, a memory device) whose
 * byteLength is the image's, in writev calls of V2_WRITES_PER_CALL blocks.
 * Returns { changedBytes, blockCount: number of blocks written }.
 */
export async function applyVersion2(device, { seed = DEFAULT_SEED, signal } = {}) {
  const v2 = version2Writes({ byteLength: device.byteLength, seed });
  let batch = [];
  for (const w of v2.writes()) {
    batch.push(w);
    if (batch.length === V2_WRITES_PER_CALL) {
      await device.writev(batch, { signal });
      batch = [];
    }
  }
  if (batch.length > 0) await device.writev(batch, { signal });
  return { changedBytes: v2.changedBytes, blockCount: v2.blockIndices.length };
}
