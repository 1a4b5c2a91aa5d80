/**
 * Draining the write log: every write waiting in it is applied to the block map,
 * coalesced into whole blocks, so a block written many times between drains is
 * fingerprinted, stored and redirected once (no dead intermediate extents) and no
 * partial-block read-modify-write happens per write. Runs under the tree's mutex; the
 * caller commits (with the log's new start) and then tells the log it drained.
 */
import type { VolumeRecord } from '../records.js';
import { heightFor } from './block-map.js';
import { readImage } from './block-reader.js';
import { writeRange, type RowStores } from './redirect-on-write.js';
import { overlayList, type WriteLog } from './write-log.js';

/**
 * Blocks assembled and redirected per step: bounds the memory of one step (256 blocks of
 * 16 KiB = 4 MiB) and batches their extent puts into one ExtentStore call.
 */
const DRAIN_RUN_BLOCKS = 256;

/** What a drain needs of the tree. */
export interface DrainContext {
  readonly stores: RowStores;
  /** The volume's record, or undefined when it was deleted (its writes are dropped). */
  volume(volumeId: string): VolumeRecord | undefined;
  markVolumeDirty(volumeId: string): void;
}

/** Applies every pending write of `log` to the block map (not yet committed). */
export async function drainWriteLog(log: WriteLog, ctx: DrainContext): Promise<void> {
  const volumeIds = new Set(log.pending.map((w) => w.volumeId));
  for (const volumeId of volumeIds) {
    const record = ctx.volume(volumeId);
    if (record === undefined) continue;
    const writes = log.pendingOf(volumeId);
    const bs = record.blockBytes;
    const blocks = new Set<number>();
    for (const w of writes) {
      const last = Math.floor((w.byteOffset + w.data.byteLength - 1) / bs);
      for (let b = Math.floor(w.byteOffset / bs); b <= last; b++) blocks.add(b);
    }
    const sorted = [...blocks].sort((a, b) => a - b);
    const geometry = { height: heightFor(record.byteLength / bs), blockBytes: bs };
    let i = 0;
    while (i < sorted.length) {
      // A run of consecutive blocks, at most DRAIN_RUN_BLOCKS long.
      let j = i + 1;
      while (j < sorted.length && j - i < DRAIN_RUN_BLOCKS && sorted[j] === sorted[j - 1]! + 1) j++;
      const byteOffset = sorted[i]! * bs;
      const byteLength = (j - i) * bs;
      const content = await readImage(ctx.stores.map, ctx.stores.extents, { root: record.root, height: geometry.height, blockBytes: bs }, byteOffset, byteLength);
      overlayList(writes, byteOffset, content);
      await writeRange(ctx.stores, record, geometry, byteOffset, byteLength, content);
      i = j;
    }
    ctx.markVolumeDirty(volumeId);
  }
}
