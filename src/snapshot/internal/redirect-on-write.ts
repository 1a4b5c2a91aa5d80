/**
 * Redirect-on-write: the one place where a volume's content changes. Every write,
 * discard and block-map import of a volume comes here, under the tree's mutex; the
 * `Volume` handle only validates arguments and takes the lock.
 *
 * A write never overwrites an extent. Each touched block is assembled (partial blocks
 * are read first: read-modify-write), an all-zero block becomes a hole, other content is
 * fingerprinted, and dedup is decided here, once, by reference count: content the tree
 * already references is not stored again; new content is put into the ExtentStore (whose
 * own existence check only makes the put idempotent). Then the block map entries are
 * redirected, shadowing shared nodes (see block-map.ts). Nothing is durable until the
 * tree commits.
 */
import { bytesToKey } from '../../core/bytes.js';
import { DrkitError } from '../../core/errors.js';
import type { ExtentPut, ExtentStore } from '../../adapters/extent-store.js';
import type { IoOptions } from '../../adapters/block-device.js';
import type { Fingerprinter } from '../../dedup/fingerprint.js';
import type { VolumeRecord } from '../records.js';
import { applyUpdates, type BlockUpdate } from './block-map.js';
import { readImage } from './block-reader.js';
import type { MapStore } from './map-store.js';
import { isAllZero } from './zero.js';

/** What redirect-on-write works on: the tree's stores. */
export interface RowStores {
  readonly map: MapStore;
  readonly extents: ExtentStore;
  readonly fingerprinter: Fingerprinter;
}

/** The shape of the volume being changed. */
export interface RowGeometry {
  readonly height: number;
  readonly blockBytes: number;
}

/**
 * Redirects every block of `[byteOffset, byteOffset + byteLength)` to new content
 * (`data` undefined = zeros), storing new extents, and moves `record.root`.
 */
export async function writeRange(s: RowStores, record: VolumeRecord, g: RowGeometry, byteOffset: number, byteLength: number, data: Uint8Array | undefined): Promise<void> {
  const bs = g.blockBytes;
  const firstBlock = Math.floor(byteOffset / bs);
  const lastBlock = Math.floor((byteOffset + byteLength - 1) / bs);
  const blocks: WholeBlock[] = [];
  for (let b = firstBlock; b <= lastBlock; b++) {
    const blockStart = b * bs;
    const from = Math.max(byteOffset, blockStart);
    const to = Math.min(byteOffset + byteLength, blockStart + bs);
    let content: Uint8Array | undefined;
    if (from === blockStart && to === blockStart + bs) {
      content = data === undefined ? undefined : data.subarray(from - byteOffset, to - byteOffset);
    } else {
      const current = await readImage(s.map, s.extents, { root: record.root, height: g.height, blockBytes: bs }, blockStart, bs);
      if (data === undefined) current.fill(0, from - blockStart, to - blockStart);
      else current.set(data.subarray(from - byteOffset, to - byteOffset), from - blockStart);
      content = current;
    }
    blocks.push({ blockIndex: b, content });
  }
  await writeBlocks(s, record, g, blocks);
}

/** A whole block's new content (undefined = zeros). */
export interface WholeBlock {
  readonly blockIndex: number;
  readonly content: Uint8Array | undefined;
  /** The content's fingerprint by the tree's Fingerprinter when the caller already has it (block-fingerprints.ts). */
  readonly fingerprint?: Uint8Array;
}

/**
 * Redirects whole blocks (ascending, one entry per block, not necessarily consecutive) to
 * new content: all-zero content becomes a hole, other content is fingerprinted, new
 * extents are stored in one ExtentStore call, and the block map is updated in one pass.
 * This is where dedup is decided (by the tree's extent reference counts).
 */
export async function writeBlocks(s: RowStores, record: VolumeRecord, g: RowGeometry, blocks: readonly WholeBlock[]): Promise<void> {
  const updates: BlockUpdate[] = [];
  const puts = new Map<string, ExtentPut>();
  for (const { blockIndex, content, fingerprint: known } of blocks) {
    if (content === undefined || (known === undefined && isAllZero(content))) {
      updates.push({ blockIndex, fingerprint: undefined });
      continue;
    }
    const fingerprint = known ?? s.fingerprinter.fingerprint(content);
    updates.push({ blockIndex, fingerprint });
    const key = bytesToKey(fingerprint);
    if (!puts.has(key)) puts.set(key, { fingerprint, data: content });
  }
  const candidates = [...puts.values()];
  await s.map.prefetchExtentRcs(candidates.map((p) => p.fingerprint));
  const missing = candidates.filter((p) => s.map.extentRc(p.fingerprint) === 0);
  if (missing.length > 0) await s.extents.put(missing);
  record.root = await applyUpdates(s.map, record.root, g.height, updates);
}

/**
 * Points blocks (ascending, one entry per block) at extents the store already holds,
 * moving no data, and moves `record.root`.
 * @throws EXTENT_NOT_FOUND for a fingerprint neither referenced nor stored
 */
export async function mapBlocks(s: RowStores, record: VolumeRecord, g: RowGeometry, sorted: readonly BlockUpdate[], options: IoOptions = {}): Promise<void> {
  const unique = new Map<string, Uint8Array>();
  for (const u of sorted) if (u.fingerprint !== undefined) unique.set(bytesToKey(u.fingerprint), u.fingerprint);
  const fps = [...unique.values()];
  await s.map.prefetchExtentRcs(fps);
  const unknown = fps.filter((fp) => s.map.extentRc(fp) === 0);
  if (unknown.length > 0) {
    const present = await s.extents.has(unknown, options);
    const missing = unknown.findIndex((_, i) => !present[i]);
    if (missing >= 0) throw new DrkitError('EXTENT_NOT_FOUND', 'mapBlocks names an extent the store does not hold', { data: { index: missing } });
  }
  record.root = await applyUpdates(s.map, record.root, g.height, sorted);
}
