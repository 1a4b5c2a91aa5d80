// The receiver's block-map path alone, without network, frames or extent payloads (issue #13
// item 4): ReceiverState driven directly through an initial transfer of a 65,536-block
// volume (20% zero blocks, the rest distinct: the standard image's 1 GiB block map) and an
// incremental that rewrites 12,207 blocks at random (v2's count), in the sender's batches of
// 256 blocks, checkpointing every 4,096 blocks as the 64 MiB default does at 16 KiB. Blocks
// are 1 KiB so extents cost little: what differs between the phases per extent is the
// block map and its reference counts. LMDB metadata (as a site), memory extent store.
// Prints the receiver's CPU per phase (the bench's own hashing subtracted), which is
// steadier on a loaded machine than the cross-process bench.
// Usage: node bench/receiver-apply.mjs [distDir] [blockBytes]   (npm run build first)
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const dist = process.argv[2] ?? new URL('../dist/', import.meta.url).pathname;
const blockBytes = Number(process.argv[3] ?? 1024);
const { MemoryExtentStore } = await import(join(dist, 'adapters/index.js'));
const { LmdbMetaStore } = await import(join(dist, 'adapters/node.js'));
const { SnapshotTree } = await import(join(dist, 'snapshot/index.js'));
const { loadXxh64 } = await import(join(dist, 'dedup/index.js'));
const { ReceiverState } = await import(join(dist, 'replication/index.js'));
const dir = mkdtempSync(join(tmpdir(), 'rxb-'));
const BLOCKS = 65536, CHANGED = 12207, BATCH = 256;
const meta = await LmdbMetaStore.open({ path: join(dir, 'x.meta'), create: true });
const extents = await MemoryExtentStore.open();
const tree = await SnapshotTree.open({ meta, extents });
const rx = await ReceiverState.open(tree, meta, 'B', { checkpointBytes: 4096 * blockBytes });
const xxh = await loadXxh64();
let seq = 0;
function content(tag) { const b = new Uint8Array(blockBytes); const v = new DataView(b.buffer); v.setUint32(0, tag); v.setUint32(4, seq++); return b; }
function wire(data) { return { fingerprint: new Uint8Array(createHash('sha256').update(data).digest()), checksum: xxh.hash(data), codec: 0, rawLength: data.length, data }; }
// Math.imul: a float LCG loses its low bits past 2^53 and cycles.
let rand = 12345; const rnd = () => ((rand = (Math.imul(rand, 1103515245) + 12345) >>> 0) / 2 ** 32);
async function transfer(name, base, blocks) {
  const sessionId = `s-${name}`;
  const req = { sessionId, volumeKey: 'A/v', originSiteId: 'A', originSnapshotId: name, originVolumeId: 'v', byteLength: BLOCKS * blockBytes, blockBytes, snapshot: { name, createdMs: 1, consistency: 'crash', userMetadata: {} }, ...(base ? { baseOriginSnapshotId: base } : {}) };
  const c0 = process.cpuUsage(); const t0 = performance.now(); let hashMs = 0;
  await rx.begin(req);
  for (let i = 0; i < blocks.length; i += BATCH) {
    const batch = blocks.slice(i, i + BATCH);
    const h0 = process.cpuUsage();
    const we = batch.filter((b) => b.data).map((b) => wire(b.data));
    const h1 = process.cpuUsage(h0); hashMs += (h1.user + h1.system) / 1000;
    if (we.length) await rx.extents(we);
    await rx.blocks(sessionId, batch.at(-1).blockIndex + 1, batch.map((b, j) => ({ blockIndex: b.blockIndex, fingerprint: b.data ? we[batch.slice(0, j).filter((x) => x.data).length].fingerprint : undefined })));
  }
  await rx.commit([sessionId]);
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1000 - hashMs;
  const ext = blocks.filter((b) => b.data).length;
  console.log(`${name}: ${blocks.length} blocks, ${ext} extents, receiver CPU ${cpu.toFixed(0)} ms (${(cpu / ext * 1000).toFixed(1)} us/extent), wall ${(performance.now() - t0).toFixed(0)} ms`);
  return cpu / ext;
}
const v1 = []; for (let b = 0; b < BLOCKS; b++) v1.push({ blockIndex: b, data: rnd() < 0.2 ? undefined : content(1) });
const initial = await transfer('v1', undefined, v1);
const picked = new Set(); while (picked.size < CHANGED) picked.add(Math.floor(rnd() * BLOCKS));
const v2 = [...picked].sort((a, b) => a - b).map((b) => ({ blockIndex: b, data: content(2) }));
const inc = await transfer('v2', 'v1', v2);
console.log(`ratio incremental/initial per extent: ${(inc / initial).toFixed(2)}`);
await rx.close(); await tree.close(); await extents.close(); await meta.close();
rmSync(dir, { recursive: true, force: true });
