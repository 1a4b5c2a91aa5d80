// The receiving site's whole data path without network or frames (issue #13 item 4):
// ReceiverState driven through an initial transfer of the standard workload (bench/
// workload.mjs, 16 KiB extents) and its version-2 incremental, the way a sender drives it:
// per batch of 256 blocks, a have-query for the batch's distinct fingerprints, the missing
// extents compressed as the sender compresses them (zstd-1, raw when it does not pay) in
// calls of at most 4 MiB on the wire, each call's payloads copied into a fresh buffer (the
// frame a Peer would decode them from), then the batch's block map. The site is what
// test/replication/fixtures/site-process.mjs builds: a raw-file extent device growing from
// 64 MiB, LMDB metadata, DeviceExtentStore compressing at rest.
// CPU is counted only while the receiver works (process.cpuUsage around each awaited
// call; the sender's hashing and compression run between them), so the figures are the
// receiver's own, steadier on a loaded machine than the cross-process bench.
// Usage: node bench/receiver-extents.mjs [distDir] [imageMiB=1024]   (npm run build first)
// Prints one JSON line per phase: cpuSeconds, cpuMsPerMB (per MB of extent content
// sent), wallSeconds, receiverWallSeconds (inside the receiver's calls), extents, and the
// process's peak RSS at the end.
import * as crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { REGION_BYTES, fillRegion, regionPlan, version2Writes } from './workload.mjs';
import { peakRssBytes } from './util.mjs';

const dist = resolve(process.argv[2] ?? new URL('../dist/', import.meta.url).pathname);
const imageBytes = Number(process.argv[3] ?? 1024) * 1024 * 1024;
const { DeviceExtentStore } = await import(join(dist, 'adapters/index.js'));
const { LmdbMetaStore, RawFileBlockDevice } = await import(join(dist, 'adapters/node.js'));
const { SnapshotTree } = await import(join(dist, 'snapshot/index.js'));
const { ExtentCodec, loadXxh64 } = await import(join(dist, 'dedup/index.js'));
const { ReceiverState } = await import(join(dist, 'replication/index.js'));

const BLOCK_BYTES = 16 * 1024;
const BATCH_BLOCKS = 256;
const CALL_BYTES = 4 * 1024 * 1024;
const ENTRY_HEADER_BYTES = 32 + 8 + 1 + 4 + 4;

const dir = mkdtempSync(join(tmpdir(), 'rxe-'));
const device = await RawFileBlockDevice.open({ path: join(dir, 'B.extents'), create: { byteLength: 64 * 1024 * 1024 } });
const meta = await LmdbMetaStore.open({ path: join(dir, 'B.meta'), create: true });
const extents = await DeviceExtentStore.open({ device, meta, decoder: await ExtentCodec.open() });
const tree = await SnapshotTree.open({ meta, extents });
const rx = await ReceiverState.open(tree, meta, 'B');
const codec = await ExtentCodec.open();
const xxh = await loadXxh64();
const sha256 = (data) => new Uint8Array(crypto.hash('sha256', data, 'buffer'));
const scratch = new Uint8Array(BLOCK_BYTES + 1024) /* >= zstd's bound for 16 KiB */;

let rxMicros = 0;
let rxWallMs = 0;
/** Awaits the receiver's `fn`, counting the process CPU (all threads) and the wall time it takes. */
async function receiver(fn) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await fn();
  rxWallMs += performance.now() - t0;
  const c = process.cpuUsage(c0);
  rxMicros += c.user + c.system;
  return r;
}

const isZero = (b) => {
  const w = new BigUint64Array(b.buffer, b.byteOffset, b.byteLength / 8);
  for (let i = 0; i < w.length; i++) if (w[i] !== 0n) return false;
  return true;
};

/** Sends one batch of `{ blockIndex, data }` (data undefined = zeros) as a sender would. */
async function sendBatch(sessionId, cursorAfter, batch, counters) {
  const fps = batch.map((b) => (b.data === undefined ? undefined : sha256(b.data)));
  const unique = new Map();
  batch.forEach((b, i) => fps[i] !== undefined && !unique.has(Buffer.from(fps[i]).toString('hex')) && unique.set(Buffer.from(fps[i]).toString('hex'), i));
  const idx = [...unique.values()];
  const have = await receiver(() => rx.have(idx.map((i) => fps[i])));
  const missing = idx.filter((_, j) => !have[j]);
  let call = [];
  let callBytes = 0;
  const flush = async () => {
    if (call.length === 0) return;
    // One fresh buffer per call, the payloads views of it: the frame a Peer decodes.
    const frame = new Uint8Array(call.reduce((n, e) => n + ENTRY_HEADER_BYTES + e.data.byteLength, 0));
    let at = 0;
    const wire = call.map((e) => {
      at += ENTRY_HEADER_BYTES;
      frame.set(e.fingerprint, at - ENTRY_HEADER_BYTES);
      frame.set(e.data, at);
      const w = { fingerprint: frame.subarray(at - ENTRY_HEADER_BYTES, at - ENTRY_HEADER_BYTES + 32), checksum: e.checksum, codec: e.codec, rawLength: e.rawLength, data: frame.subarray(at, at + e.data.byteLength) };
      at += e.data.byteLength;
      return w;
    });
    await receiver(() => rx.extents(wire));
    call = [];
    callBytes = 0;
  };
  for (const i of missing) {
    const data = batch[i].data;
    const r = codec.compressInto(data, scratch);
    const payload = r.codec === 0 ? data : scratch.slice(0, r.byteLength);
    if (call.length > 0 && callBytes + payload.byteLength > CALL_BYTES) await flush();
    call.push({ fingerprint: fps[i], checksum: xxh.hash(data), codec: r.codec, rawLength: data.byteLength, data: payload });
    callBytes += payload.byteLength;
    counters.sentBytes += data.byteLength;
    counters.extents++;
  }
  await flush();
  await receiver(() => rx.blocks(sessionId, cursorAfter, batch.map((b, i) => ({ blockIndex: b.blockIndex, fingerprint: fps[i] }))));
}

async function transfer(name, base, batches) {
  const sessionId = `s-${name}`;
  const request = {
    sessionId, volumeKey: 'A/v', originSiteId: 'A', originSnapshotId: name, originVolumeId: 'v', byteLength: imageBytes, blockBytes: BLOCK_BYTES,
    snapshot: { name, createdMs: 1, consistency: 'crash', userMetadata: {} }, ...(base === undefined ? {} : { baseOriginSnapshotId: base }),
  };
  rxMicros = 0;
  rxWallMs = 0;
  const counters = { sentBytes: 0, extents: 0 };
  const t0 = performance.now();
  await receiver(() => rx.begin(request));
  for (const { cursorAfter, blocks } of batches()) await sendBatch(sessionId, cursorAfter, blocks, counters);
  await receiver(() => rx.commit([sessionId]));
  const cpuSeconds = rxMicros / 1e6;
  const line = { phase: name, extents: counters.extents, sentMB: +(counters.sentBytes / 1e6).toFixed(1), cpuSeconds: +cpuSeconds.toFixed(2), cpuMsPerMB: +((cpuSeconds * 1000) / (counters.sentBytes / 1e6)).toFixed(2), wallSeconds: +((performance.now() - t0) / 1000).toFixed(2), receiverWallSeconds: +(rxWallMs / 1000).toFixed(2) };
  console.log(JSON.stringify(line));
  return line;
}

const plan = regionPlan({ byteLength: imageBytes });
const blocksPerRegion = REGION_BYTES / BLOCK_BYTES;

/** Version 1, in batches of 256 blocks (fresh arrays: the sender's reads). */
function* initialBatches() {
  const region = new Uint8Array(REGION_BYTES);
  const blockCount = imageBytes / BLOCK_BYTES;
  for (let first = 0; first < blockCount; first += BATCH_BLOCKS) {
    const blocks = [];
    for (let b = first; b < Math.min(blockCount, first + BATCH_BLOCKS); b++) {
      if (b % blocksPerRegion === 0) fillRegion(plan, b / blocksPerRegion, region);
      const data = region.slice((b % blocksPerRegion) * BLOCK_BYTES, (b % blocksPerRegion + 1) * BLOCK_BYTES);
      blocks.push({ blockIndex: b, data: isZero(data) ? undefined : data });
    }
    yield { cursorAfter: blocks.at(-1).blockIndex + 1, blocks };
  }
}

/** Version 2's changed 16 KiB blocks (version 1 with its 4 KiB writes laid over), in batches of 256. */
function* incrementalBatches() {
  const v2 = version2Writes({ byteLength: imageBytes });
  const byBlock = new Map();
  for (const w of v2.writes()) {
    const b = Math.floor(w.byteOffset / BLOCK_BYTES);
    if (!byBlock.has(b)) byBlock.set(b, []);
    byBlock.get(b).push(w);
  }
  const changed = [...byBlock.keys()].sort((a, b) => a - b);
  const region = new Uint8Array(REGION_BYTES);
  for (let i = 0; i < changed.length; i += BATCH_BLOCKS) {
    const blocks = changed.slice(i, i + BATCH_BLOCKS).map((b) => {
      fillRegion(plan, Math.floor(b / blocksPerRegion), region);
      const data = region.slice((b % blocksPerRegion) * BLOCK_BYTES, (b % blocksPerRegion + 1) * BLOCK_BYTES);
      for (const w of byBlock.get(b)) data.set(w.data, w.byteOffset - b * BLOCK_BYTES);
      return { blockIndex: b, data };
    });
    yield { cursorAfter: i + BATCH_BLOCKS >= changed.length ? imageBytes / BLOCK_BYTES : blocks.at(-1).blockIndex + 1, blocks };
  }
}

const initial = await transfer('v1', undefined, initialBatches);
const incremental = await transfer('v2', 'v1', incrementalBatches);
console.log(JSON.stringify({ incrementalOverInitialPerMB: +(incremental.cpuMsPerMB / initial.cpuMsPerMB).toFixed(2), peakRssMiB: +(peakRssBytes() / 2 ** 20).toFixed(0), storedMB: +((await extents.stats()).storedBytes / 1e6).toFixed(1) }));
await rx.close();
await tree.close();
await extents.close();
await meta.close();
await device.close();
rmSync(dir, { recursive: true, force: true });
