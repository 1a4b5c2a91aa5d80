/**
 * The sending side of replication: ships one snapshot, or the members of a consistency
 * group, to a receiver through a {@link ReplicationPort}.
 *
 * For each snapshot: find the newest snapshot both sites hold (by origin) and diff
 * against it (full when none); for each batch of changed blocks ask the receiver which
 * fingerprints it already has (global dedup at the target), ship only the missing
 * extents — in the form the store keeps them when compressed at rest, else compressed
 * (zstd by default) when that pays, each with its xxh64 — then the block map;
 * finally commit every member in one call, so a group lands atomically.
 *
 * Bounded memory: at most PIPELINE_BATCHES batches of BATCH_BLOCKS blocks are in flight.
 * Resumable: sessions are named deterministically, the receiver reports where to resume,
 * and have-queries skip extents that already arrived, so a retry after a disconnect or a
 * crash resends nothing the receiver acknowledged.
 */
import { createHash } from 'node:crypto';
import { bytesToKey } from '../core/bytes.js';
import { AbortError, DrkitError, throwIfAborted } from '../core/errors.js';
import type { Xxh64 } from '../core/checksum.js';
import type { Clock } from '../adapters/clock.js';
import { CODEC_RAW, type EncodedExtent, type ExtentCodec } from '../dedup/codec.js';
import type { CodecPool } from '../dedup/codec-pool.js';
import type { SnapshotTree } from '../snapshot/index.js';
import type { SnapshotInfo } from '../snapshot/index.js';
import { originOf, volumeKeyOf } from './origin.js';
import type { BeginRequest, ReplicationPort, WireBlock, WireExtent } from './replication-port.js';
import { Throttle } from './throttle.js';
import { ByteBudget } from './internal/byte-budget.js';
import { ArenaPool } from './internal/arena-pool.js';

/** Blocks per batch: 256 x 16 KiB = 4 MiB of logical data, one leaf of the block map. */
export const BATCH_BLOCKS = 256;
/** Batches in flight at once: overlaps round trips while bounding memory (~4 x 4 MiB). */
export const PIPELINE_BATCHES = 4;
/** Fingerprints per have-query (the protocol's bound). */
const HAVE_QUERY_MAX = 4096;
/**
 * Encoded bytes of extents per extents call: with one extent at most 4 MiB, a call stays
 * under the protocol's 8 MiB frame payload with room for entry headers.
 */
const EXTENTS_CALL_BYTES = 4 * 1024 * 1024;
/**
 * Encoded extent bytes on the wire awaiting the receiver's answer, over all batches in
 * flight: two full extents calls, so one is decoded and hashed while the next crosses
 * the link, and the receiver's decode window stays the same whatever the volume size.
 */
export const SENDER_IN_FLIGHT_EXTENT_BYTES = 2 * EXTENTS_CALL_BYTES;

/** Progress of a replication (`completedBytes` counts scanned logical bytes). */
export interface ReplicationProgress {
  readonly phase: 'scan' | 'transfer' | 'commit' | 'done';
  readonly completedBytes: number;
  readonly totalBytes: number;
  /** Logical bytes of changed blocks whose content the target already had. */
  readonly dedupedBytes: number;
  /** Logical bytes of changed blocks that are zero (sent as holes). */
  readonly zeroBytes: number;
  /** Raw bytes of extents shipped. */
  readonly sentExtentBytes: number;
  /** Bytes those extents took on the wire after compression. */
  readonly compressedExtentBytes: number;
  /** Bytes on the connection both ways, frames, headers and tags included (set by `Site` over a connection). */
  readonly wireBytes?: number;
}

/** Options of a replication. */
export interface ReplicateOptions {
  signal?: AbortSignal;
  onProgress?: (progress: ReplicationProgress) => void;
  /** Cap on extent bytes per second on the wire. @defaultValue unlimited */
  bandwidthBytesPerSec?: number;
  /** A limiter shared with other transfers (a site's `maxBytesPerSecond`); takes precedence over `bandwidthBytesPerSec`. */
  throttle?: Throttle;
}

/** What a replication did. */
export interface ReplicationResult {
  /** The snapshots' ids at the target, in the order given. */
  readonly remoteSnapshotIds: readonly string[];
  /** Per member: the local base snapshot diffed against (undefined = full). */
  readonly baseSnapshotIds: readonly (string | undefined)[];
  readonly progress: ReplicationProgress;
}

/** The sending site's parts. */
export interface SenderContext {
  readonly tree: SnapshotTree;
  readonly siteId: string;
  readonly codec: ExtentCodec;
  /** When set, extents are compressed on its worker threads (frees the sending thread). */
  readonly codecPool?: CodecPool;
  readonly xxh: Xxh64;
  readonly clock: Clock;
  /** Bound on extent bytes in flight (see {@link SENDER_IN_FLIGHT_EXTENT_BYTES}). @defaultValue SENDER_IN_FLIGHT_EXTENT_BYTES */
  readonly inFlightExtentBytes?: number;
}

interface Counters {
  completedBytes: number;
  totalBytes: number;
  dedupedBytes: number;
  zeroBytes: number;
  sentExtentBytes: number;
  compressedExtentBytes: number;
}

/**
 * Replicates `snapshotIds` (one snapshot, or the members of one consistency group) to
 * the receiver behind `port`, committing them together.
 * @throws ABORTED, CORRUPTION (a local extent fails verification), and the port's errors
 */
export async function replicateSnapshots(
  ctx: SenderContext,
  port: ReplicationPort,
  targetSiteId: string,
  snapshotIds: readonly string[],
  options: ReplicateOptions = {},
): Promise<ReplicationResult> {
  if (snapshotIds.length === 0) throw new DrkitError('INVALID_ARGUMENT', 'nothing to replicate');
  const infos = snapshotIds.map((id) => ctx.tree.getSnapshot(id));
  const groupKey = infos.length > 1 ? `${ctx.siteId}/${infos.map((i) => i.id).join('+')}` : undefined;
  const counters: Counters = { completedBytes: 0, totalBytes: 0, dedupedBytes: 0, zeroBytes: 0, sentExtentBytes: 0, compressedExtentBytes: 0 };
  const report = (phase: ReplicationProgress['phase']) => options.onProgress?.({ phase, ...counters });
  const throttle = options.throttle ?? (options.bandwidthBytesPerSec === undefined ? undefined : new Throttle(options.bandwidthBytesPerSec, ctx.clock));

  // Plan: a base and a session per member.
  const plans: { info: SnapshotInfo; sessionId: string; base: string | undefined; resumeBlock: number; committed?: string }[] = [];
  for (const info of infos) {
    throwIfAborted(options.signal);
    const origin = originOf(info, ctx.siteId);
    const volumeKey = volumeKeyOf(origin);
    const held = new Set((await port.list(volumeKey)).map((h) => `${h.originSiteId}/${h.originSnapshotId}`));
    let base = pickBase(ctx, info, held);
    const request = (b: string | undefined): BeginRequest => ({
      sessionId: sessionIdOf(origin.siteId, origin.snapshotId, ctx.siteId, targetSiteId),
      volumeKey,
      originSiteId: origin.siteId,
      originSnapshotId: origin.snapshotId,
      originVolumeId: origin.volumeId,
      ...(b === undefined ? {} : baseFields(originOf(ctx.tree.getSnapshot(b), ctx.siteId), origin.siteId)),
      byteLength: info.byteLength,
      blockBytes: info.blockBytes,
      snapshot: {
        name: info.name,
        createdMs: info.createdMs,
        consistency: info.consistency,
        ...(info.fallbackReason === undefined ? {} : { fallbackReason: info.fallbackReason }),
        userMetadata: info.userMetadata,
      },
      ...(groupKey === undefined ? {} : { groupKey }),
    });
    let response = await port.begin(request(base));
    if (!response.baseFound) {
      base = undefined;
      response = await port.begin(request(undefined));
    }
    plans.push({ info, sessionId: request(base).sessionId, base, resumeBlock: response.resumeBlock, ...(response.committedSnapshotId ? { committed: response.committedSnapshotId } : {}) });
  }

  // Scan: the total is the changed bytes still to send (cheap: a diff skips shared subtrees).
  report('scan');
  for (const p of plans) {
    if (p.committed !== undefined) continue;
    for await (const r of ctx.tree.diff(p.base, p.info.id, { signal: options.signal })) {
      const end = r.blockIndex + r.blockCount;
      if (end > p.resumeBlock) counters.totalBytes += (end - Math.max(r.blockIndex, p.resumeBlock)) * p.info.blockBytes;
    }
  }

  for (const p of plans) {
    if (p.committed !== undefined) continue;
    await sendMember(ctx, port, p.sessionId, p.info, p.base, p.resumeBlock, counters, throttle, options, report);
  }
  report('commit');
  throwIfAborted(options.signal);
  // Every transfer ends in a commit, even when all members were already there: a pulling
  // peer learns from it that the transfer is over.
  const allThere = plans.every((p) => p.committed !== undefined);
  const pending = allThere ? plans.map((p) => p.sessionId) : plans.filter((p) => p.committed === undefined).map((p) => p.sessionId);
  const committed = await port.commit(pending);
  const byPlan = new Map(pending.map((id, i) => [id, committed[i]!]));
  const remoteSnapshotIds = plans.map((p) => byPlan.get(p.sessionId) ?? p.committed!);
  report('done');
  return { remoteSnapshotIds, baseSnapshotIds: plans.map((p) => p.base), progress: { phase: 'done', ...counters } };
}

/** The newest local snapshot of the same volume lineage that the target also holds. */
function pickBase(ctx: SenderContext, info: SnapshotInfo, held: Set<string>): string | undefined {
  const key = volumeKeyOf(originOf(info, ctx.siteId));
  let best: SnapshotInfo | undefined;
  for (const s of ctx.tree.listSnapshots()) {
    if (s.id === info.id || s.byteLength !== info.byteLength || s.blockBytes !== info.blockBytes) continue;
    const o = originOf(s, ctx.siteId);
    if (volumeKeyOf(o) !== key || !held.has(`${o.siteId}/${o.snapshotId}`)) continue;
    if (best === undefined || s.createdMs > best.createdMs) best = s;
  }
  return best?.id;
}

/** BEGIN's base fields; the base's site is named only when it differs (a promoted lineage), so older peers see unchanged messages otherwise. */
function baseFields(base: { siteId: string; snapshotId: string }, originSiteId: string): Pick<BeginRequest, 'baseOriginSnapshotId' | 'baseOriginSiteId'> {
  return base.siteId === originSiteId ? { baseOriginSnapshotId: base.snapshotId } : { baseOriginSnapshotId: base.snapshotId, baseOriginSiteId: base.siteId };
}

/**
 * Deterministic session name: the same transfer (same snapshot, same sender, same target)
 * resumes the same session, and two sending sites of one snapshot (a chain and its origin)
 * never share a session at the target.
 */
export function sessionIdOf(originSiteId: string, originSnapshotId: string, senderSiteId: string, targetSiteId: string): string {
  return createHash('sha256').update(`${originSiteId}\0${originSnapshotId}\0${senderSiteId}\0${targetSiteId}`).digest('hex').slice(0, 32);
}

async function sendMember(
  ctx: SenderContext,
  port: ReplicationPort,
  sessionId: string,
  info: SnapshotInfo,
  base: string | undefined,
  resumeBlock: number,
  counters: Counters,
  throttle: Throttle | undefined,
  options: ReplicateOptions,
  report: (phase: ReplicationProgress['phase']) => void,
): Promise<void> {
  const inflight = new Set<Promise<void>>();
  const budget = new ByteBudget(ctx.inFlightExtentBytes ?? SENDER_IN_FLIGHT_EXTENT_BYTES);
  const buffers: SenderBuffers = { arenas: new ArenaPool(), reads: new ArenaPool(READ_BUFFER_BYTES) };
  let blocksChain: Promise<unknown> = Promise.resolve();
  let failure: unknown;
  let batch: WireBlock[] = [];

  const launch = (blocks: WireBlock[]) => {
    // Block maps go in launch order (the chain is taken here, not when the extents are
    // done), so the receiver's cursor only moves forward and never passes a batch whose
    // map has not landed: a resume from the cursor then loses nothing.
    // A failed batch fails every later one's map too (the chain rejects).
    const prev = blocksChain;
    const cursorAfter = blocks[blocks.length - 1]!.blockIndex + 1;
    const mine = (async () => {
      await shipExtents(ctx, port, blocks, info.blockBytes, counters, throttle, budget, buffers, options.signal);
      await prev;
      return port.blocks(sessionId, cursorAfter, blocks);
    })();
    blocksChain = mine;
    const p = (async () => {
      await mine;
      counters.completedBytes += blocks.length * info.blockBytes;
      report('transfer');
    })().catch((err: unknown) => {
      failure ??= err;
    });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };

  for await (const range of ctx.tree.diff(base, info.id, { signal: options.signal })) {
    for (let i = 0; i < range.blockCount; i++) {
      const blockIndex = range.blockIndex + i;
      if (blockIndex < resumeBlock) continue;
      batch.push({ blockIndex, fingerprint: range.fingerprints[i] });
      if (batch.length >= BATCH_BLOCKS) {
        if (failure !== undefined) break;
        launch(batch);
        batch = [];
        while (inflight.size >= PIPELINE_BATCHES) await Promise.race(inflight);
        if (options.signal?.aborted) failure ??= new AbortError('replication aborted', { cause: options.signal.reason });
      }
    }
    if (failure !== undefined) break;
  }
  if (failure === undefined && batch.length > 0) launch(batch);
  await Promise.all(inflight);
  if (failure !== undefined) throw failure;
}

/** Extents read from the store per read (at most {@link READ_BUFFER_BYTES} of them). */
const READ_BATCH = 64;
/** The reused buffer a sender reads stored extents into (64 x 16 KiB). */
const READ_BUFFER_BYTES = 1024 * 1024;

/** The reused memory of one member's transfer: call arenas and read buffers. */
interface SenderBuffers {
  readonly arenas: ArenaPool;
  readonly reads: ArenaPool;
}

/** Have-query, then read, compress and send the extents the receiver lacks. */
async function shipExtents(
  ctx: SenderContext,
  port: ReplicationPort,
  blocks: readonly WireBlock[],
  blockBytes: number,
  counters: Counters,
  throttle: Throttle | undefined,
  budget: ByteBudget,
  buffers: SenderBuffers,
  signal: AbortSignal | undefined,
): Promise<void> {
  // Distinct fingerprints of the batch with their block counts: one key string per block.
  const unique = new Map<string, { fingerprint: Uint8Array; uses: number }>();
  for (const b of blocks) {
    if (b.fingerprint === undefined) {
      counters.zeroBytes += blockBytes;
      continue;
    }
    const key = bytesToKey(b.fingerprint);
    const entry = unique.get(key);
    if (entry === undefined) unique.set(key, { fingerprint: b.fingerprint, uses: 1 });
    else entry.uses++;
  }
  const entries = [...unique.values()];
  const missing: Uint8Array[] = [];
  for (let i = 0; i < entries.length; i += HAVE_QUERY_MAX) {
    const slice = entries.slice(i, i + HAVE_QUERY_MAX);
    const have = await port.have(slice.map((e) => e.fingerprint));
    slice.forEach((e, j) => {
      // Held at the target: every block of it is deduped. Missing: it ships once, and
      // the batch's other blocks sharing it count as deduped.
      counters.dedupedBytes += (have[j] ? e.uses : e.uses - 1) * blockBytes;
      if (!have[j]) missing.push(e.fingerprint);
    });
  }
  let call: WireExtent[] = [];
  let callWireBytes = 0;
  // Compressed in this thread for a port that copies what it sends: into one arena per
  // call, reused once the call is answered, instead of a fresh buffer per extent.
  const arenas = port.releasesExtentData === true && ctx.codecPool === undefined ? buffers.arenas : undefined;
  const readBuffers = buffers.reads;
  let arena: Uint8Array | undefined;
  let arenaUsed = 0;
  // Throttled, a call is at most an eighth of a second's worth: sent at once after its wait, a
  // 4 MiB call would make a 512 KiB/s cap a burst of 4 MiB every 8 s.
  const callBytes = throttle === undefined ? EXTENTS_CALL_BYTES : Math.min(EXTENTS_CALL_BYTES, Math.ceil(throttle.bytesPerSec / 8));
  const flush = async () => {
    if (call.length === 0) return;
    await throttle?.take(callWireBytes, signal);
    const held = await budget.acquire(callWireBytes);
    try {
      await port.extents(call);
    } finally {
      budget.release(held);
    }
    call = [];
    callWireBytes = 0;
    arenaUsed = 0; // answered: the port copied the call's bytes, the arena is free again
  };
  /**
   * Puts one extent's wire bytes in the arena at arenaUsed, compressed when `compress`
   * and that pays, else copied as they are (the read buffer is then free for the next
   * read); flushes the call first when the extent might not fit.
   */
  const intoArena = async (data: Uint8Array, codec: number, compress: boolean): Promise<{ codec: number; bytes: Uint8Array }> => {
    arena ??= arenas!.take();
    if (arena.byteLength - arenaUsed < data.byteLength && call.length > 0) await flush();
    if (arena.byteLength - arenaUsed < data.byteLength) {
      // Larger than an arena: a buffer of its own (never a view of the reused read buffer).
      return compress ? ctx.codec.compress(data.slice()) : { codec, bytes: data.slice() };
    }
    if (compress) {
      const r = ctx.codec.compressInto(data, arena.subarray(arenaUsed));
      if (r.codec !== CODEC_RAW) {
        const bytes = arena.subarray(arenaUsed, arenaUsed + r.byteLength);
        arenaUsed += r.byteLength;
        return { codec: r.codec, bytes };
      }
    }
    arena.set(data, arenaUsed);
    const bytes = arena.subarray(arenaUsed, arenaUsed + data.byteLength);
    arenaUsed += data.byteLength;
    return { codec, bytes };
  };
  // With arenas, the store reads into one reused buffer: everything is copied or
  // compressed out of it before the next read.
  const readBuffer = arenas === undefined ? undefined : readBuffers.take();
  const readBatch = Math.max(1, Math.min(READ_BATCH, Math.floor((readBuffer?.byteLength ?? Infinity) / blockBytes)));
  try {
    for (let i = 0; i < missing.length; i += readBatch) {
      throwIfAborted(signal);
      const slice = missing.slice(i, i + readBatch);
      // Stored forms, verified by the store: an extent kept compressed at rest ships as is
      // (no decode, no re-encode, no second hash: its content checksum is in the index).
      // bulk: a transfer reads each extent once; caching its index entries would only
      // fill the store's cache (and the heap) with entries nobody asks for again.
      const stored = await ctx.tree.readStoredExtents(slice, readBuffer === undefined ? { signal, bulk: true } : { signal, into: readBuffer, bulk: true });
      // Raw extents are compressed, unless the store knows that did not pay when they arrived.
      const toCompress = (s: (typeof stored)[number]) => s.codec === CODEC_RAW && s.incompressible !== true;
      const compressed = arenas === undefined ? await compressAll(ctx, stored.filter(toCompress).map((s) => s.bytes), signal) : [];
      let r = 0;
      for (let j = 0; j < slice.length; j++) {
        const s = stored[j]!;
        // The checksum of the content, taken before the read buffer can be reused.
        const checksum = s.checksum ?? ctx.xxh.hash(s.bytes);
        let encoded: { readonly codec: number; readonly bytes: Uint8Array };
        if (arenas !== undefined) encoded = await intoArena(s.bytes, s.codec, toCompress(s));
        else encoded = toCompress(s) ? compressed[r++]! : { codec: s.codec, bytes: s.bytes };
        // One call stays within one wire frame: flush before an extent would overflow it.
        if (call.length > 0 && callWireBytes + encoded.bytes.length > callBytes) {
          const inArena = arena !== undefined && encoded.bytes.buffer === arena.buffer;
          const from = encoded.bytes.byteOffset - (arena?.byteOffset ?? 0);
          await flush();
          if (inArena) {
            // The flushed call's bytes are gone: this extent moves to the arena's start.
            arena!.copyWithin(0, from, from + encoded.bytes.byteLength);
            encoded = { codec: encoded.codec, bytes: arena!.subarray(0, encoded.bytes.byteLength) };
            arenaUsed = encoded.bytes.byteLength;
          }
        }
        call.push({ fingerprint: slice[j]!, checksum, codec: encoded.codec, rawLength: s.rawLength, data: encoded.bytes });
        callWireBytes += encoded.bytes.length;
        counters.sentExtentBytes += s.rawLength;
        counters.compressedExtentBytes += encoded.bytes.length;
      }
    }
    await flush();
  } finally {
    if (arena !== undefined) arenas!.give(arena);
    if (readBuffer !== undefined) readBuffers.give(readBuffer);
  }
}

/**
 * Compresses `raws` on the site's codec pool when it has one (a worker thread, so this
 * thread keeps reading and framing), else here. A pool already holding its bound of
 * batches (BUSY: other transfers of this site share it) costs a batch its parallelism,
 * never the transfer: that batch is compressed here.
 */
async function compressAll(ctx: SenderContext, raws: Uint8Array[], signal: AbortSignal | undefined): Promise<EncodedExtent[]> {
  if (ctx.codecPool === undefined || raws.length === 0) return raws.map((d) => ctx.codec.compress(d));
  try {
    return await ctx.codecPool.compressBatch(raws, { signal });
  } catch (err) {
    if (!(err instanceof DrkitError) || err.code !== 'BUSY') throw err;
    return raws.map((d) => ctx.codec.compress(d));
  }
}
