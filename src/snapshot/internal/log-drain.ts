/**
 * Draining the write log: every write waiting in it is applied to the block map,
 * coalesced into whole blocks, so a block written many times between drains is
 * fingerprinted, stored and redirected once (no dead intermediate extents) and no
 * partial-block read-modify-write happens per write. Blocks go in steps of
 * {@link DRAIN_STEP_BLOCKS}, consecutive or not: one block-map lookup pass and one
 * ExtentStore read for the blocks that need their old content (those the logged writes
 * do not cover whole), one ExtentStore put and one block-map update per step. Runs under
 * the tree's mutex; the caller commits (with the log's new start) and then tells the log
 * it drained.
 */
import type { VolumeRecord } from '../records.js';
import { heightFor } from './block-map.js';
import { readBlocksInto } from './block-reader.js';
import { writeBlocks, type RowStores, type WholeBlock } from './redirect-on-write.js';
import type { PendingWrite } from './write-log.js';
import { knownBlockFingerprint } from './block-fingerprints.js';

/**
 * Blocks assembled and redirected per step: bounds the memory of one step (256 blocks of
 * 16 KiB = 4 MiB) and batches their extent reads and puts into one ExtentStore call each.
 */
export const DRAIN_STEP_BLOCKS = 256;

/** What a drain needs of the tree. */
export interface DrainContext {
  readonly stores: RowStores;
  /** The volume's record, or undefined when it was deleted (its writes are dropped). */
  volume(volumeId: string): VolumeRecord | undefined;
  markVolumeDirty(volumeId: string): void;
}

/**
 * Applies `writes` (pending writes of the log in log order: all of them, or a prefix) to
 * the block map (not yet committed).
 */
export async function drainWrites(writes: readonly PendingWrite[], ctx: DrainContext): Promise<void> {
  const byVolume = new Map<string, PendingWrite[]>();
  for (const w of writes) {
    const list = byVolume.get(w.volumeId);
    if (list === undefined) byVolume.set(w.volumeId, [w]);
    else list.push(w);
  }
  for (const [volumeId, list] of byVolume) {
    const record = ctx.volume(volumeId);
    if (record === undefined) continue;
    await drainVolume(ctx, record, list);
    ctx.markVolumeDirty(volumeId);
  }
}

/** The writes touching each block, in log order. */
function writesByBlock(writes: readonly PendingWrite[], blockBytes: number): Map<number, PendingWrite[]> {
  const byBlock = new Map<number, PendingWrite[]>();
  for (const w of writes) {
    const last = Math.floor((w.byteOffset + w.data.byteLength - 1) / blockBytes);
    for (let b = Math.floor(w.byteOffset / blockBytes); b <= last; b++) {
      const list = byBlock.get(b);
      if (list === undefined) byBlock.set(b, [w]);
      else list.push(w);
    }
  }
  return byBlock;
}

/** True when the writes together cover all of block `blockIndex`. */
function coversBlock(writes: readonly PendingWrite[], blockIndex: number, blockBytes: number): boolean {
  const start = blockIndex * blockBytes;
  const end = start + blockBytes;
  const spans = writes.map((w) => [Math.max(start, w.byteOffset), Math.min(end, w.byteOffset + w.data.byteLength)] as const).sort((a, b) => a[0] - b[0]);
  let reached = start;
  for (const [from, to] of spans) {
    if (from > reached) return false;
    reached = Math.max(reached, to);
  }
  return reached >= end;
}

async function drainVolume(ctx: DrainContext, record: VolumeRecord, writes: readonly PendingWrite[]): Promise<void> {
  const bs = record.blockBytes;
  const byBlock = writesByBlock(writes, bs);
  const sorted = [...byBlock.keys()].sort((a, b) => a - b);
  const geometry = { height: heightFor(record.byteLength / bs), blockBytes: bs };
  for (let i = 0; i < sorted.length; i += DRAIN_STEP_BLOCKS) {
    const step = sorted.slice(i, i + DRAIN_STEP_BLOCKS);
    // One buffer per step: each block's content is a view of it (zero-filled = holes).
    const buffer = new Uint8Array(step.length * bs);
    const contents = step.map((_, k) => buffer.subarray(k * bs, (k + 1) * bs));
    const needBase: number[] = [];
    const baseOut: Uint8Array[] = [];
    step.forEach((b, k) => {
      if (!coversBlock(byBlock.get(b)!, b, bs)) {
        needBase.push(b);
        baseOut.push(contents[k]!);
      }
    });
    if (needBase.length > 0) await readBlocksInto(ctx.stores.map, ctx.stores.extents, { root: record.root, ...geometry }, needBase, baseOut);
    const blocks: WholeBlock[] = step.map((b, k) => {
      const out = contents[k]!;
      const blockStart = b * bs;
      const touching = byBlock.get(b)!;
      for (const w of touching) {
        const from = Math.max(blockStart, w.byteOffset);
        const to = Math.min(blockStart + bs, w.byteOffset + w.data.byteLength);
        out.set(w.data.subarray(from - w.byteOffset, to - w.byteOffset), from - blockStart);
      }
      // The last write covers the block whole and aligned: its content is that write's
      // block, whose fingerprint the shipper may have computed already.
      const last = touching[touching.length - 1]!;
      const fingerprint = last.byteOffset % bs === 0 && last.data.byteLength % bs === 0 ? knownBlockFingerprint(last.data, bs, ctx.stores.fingerprinter, (blockStart - last.byteOffset) / bs) : undefined;
      return fingerprint === undefined ? { blockIndex: b, content: out } : { blockIndex: b, content: out, fingerprint };
    });
    await writeBlocks(ctx.stores, record, geometry, blocks);
  }
}
