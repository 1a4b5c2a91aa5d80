/**
 * Reads byte ranges of a block-mapped image (a volume head or a snapshot): looks the
 * blocks up in the tree, fetches each distinct extent once, and assembles the bytes.
 */
import { bytesToKey } from '../../core/bytes.js';
import { DrkitError } from '../../core/errors.js';
import type { ExtentStore } from '../../adapters/extent-store.js';
import { lookupRange } from './block-map.js';
import type { MapStore } from './map-store.js';

/** Where and how big the image is. */
export interface ImageGeometry {
  readonly root: number;
  readonly height: number;
  readonly blockBytes: number;
}

/** Reads [byteOffset, byteOffset + byteLength) of the image into a new array. */
export async function readImage(
  map: MapStore,
  extents: ExtentStore,
  image: ImageGeometry,
  byteOffset: number,
  byteLength: number,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const out = new Uint8Array(byteLength);
  if (byteLength === 0) return out;
  const { blockBytes } = image;
  const firstBlock = Math.floor(byteOffset / blockBytes);
  const lastBlock = Math.floor((byteOffset + byteLength - 1) / blockBytes);
  const fps = await lookupRange(map, image.root, image.height, firstBlock, lastBlock - firstBlock + 1);
  const unique = new Map<string, Uint8Array>();
  for (const fp of fps) if (fp !== undefined) unique.set(bytesToKey(fp), fp);
  const wanted = [...unique.values()];
  const datas = wanted.length === 0 ? [] : await extents.getMany(wanted, { signal });
  const byKey = new Map<string, Uint8Array>();
  wanted.forEach((fp, i) => byKey.set(bytesToKey(fp), datas[i]!));
  for (let b = firstBlock; b <= lastBlock; b++) {
    const fp = fps[b - firstBlock];
    if (fp === undefined) continue;
    const data = byKey.get(bytesToKey(fp))!;
    if (data.length !== blockBytes) {
      throw new DrkitError('CORRUPTION', `extent for block ${b} has ${data.length} bytes, expected ${blockBytes}`, { data: { blockIndex: b } });
    }
    const blockStart = b * blockBytes;
    const from = Math.max(byteOffset, blockStart);
    const to = Math.min(byteOffset + byteLength, blockStart + blockBytes);
    out.set(data.subarray(from - blockStart, to - blockStart), from - byteOffset);
  }
  return out;
}

/**
 * Reads whole blocks (ascending indices, not necessarily consecutive) of the image into
 * `out[i]` (each `blockBytes` long, zero-filled by the caller): one leaf visit per run of
 * a leaf, one ExtentStore call for every distinct extent.
 */
export async function readBlocksInto(
  map: MapStore,
  extents: ExtentStore,
  image: ImageGeometry,
  blockIndices: readonly number[],
  out: readonly Uint8Array[],
): Promise<void> {
  const fps: (Uint8Array | undefined)[] = [];
  let i = 0;
  while (i < blockIndices.length) {
    let j = i + 1;
    while (j < blockIndices.length && blockIndices[j] === blockIndices[j - 1]! + 1) j++;
    fps.push(...(await lookupRange(map, image.root, image.height, blockIndices[i]!, j - i)));
    i = j;
  }
  const unique = new Map<string, Uint8Array>();
  for (const fp of fps) if (fp !== undefined) unique.set(bytesToKey(fp), fp);
  const wanted = [...unique.values()];
  if (wanted.length === 0) return;
  const datas = await extents.getMany(wanted);
  const byKey = new Map<string, Uint8Array>();
  wanted.forEach((fp, k) => byKey.set(bytesToKey(fp), datas[k]!));
  for (let k = 0; k < blockIndices.length; k++) {
    const fp = fps[k];
    if (fp === undefined) continue;
    const data = byKey.get(bytesToKey(fp))!;
    if (data.length !== image.blockBytes) {
      throw new DrkitError('CORRUPTION', `extent for block ${blockIndices[k]} has ${data.length} bytes, expected ${image.blockBytes}`, { data: { blockIndex: blockIndices[k] } });
    }
    out[k]!.set(data);
  }
}
