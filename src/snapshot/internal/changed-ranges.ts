/** Turns the block changes of a tree diff into runs of consecutive changed blocks. */
import { throwIfAborted } from '../../core/errors.js';
import type { DiffRange } from '../tree-options.js';
import { diffRoots } from './block-map.js';
import type { MapStore } from './map-store.js';

/** Longest run yielded: one leaf, which bounds a range's memory and matches the tree. */
const MAX_RUN_BLOCKS = 256;

/** Runs of changed blocks between two roots, with their fingerprints under `rootB`. */
export async function* changedRanges(
  map: MapStore,
  rootA: number,
  rootB: number,
  height: number,
  blockBytes: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<DiffRange> {
  let run: { blockIndex: number; fingerprints: (Uint8Array | undefined)[] } | undefined;
  const emit = (r: NonNullable<typeof run>): DiffRange => ({
    blockIndex: r.blockIndex,
    blockCount: r.fingerprints.length,
    byteOffset: r.blockIndex * blockBytes,
    byteLength: r.fingerprints.length * blockBytes,
    fingerprints: r.fingerprints,
  });
  for await (const changes of diffRoots(map, rootA, rootB, height)) {
    throwIfAborted(signal);
    for (const c of changes) {
      if (run !== undefined && run.blockIndex + run.fingerprints.length === c.blockIndex && run.fingerprints.length < MAX_RUN_BLOCKS) {
        run.fingerprints.push(c.after);
        continue;
      }
      if (run !== undefined) yield emit(run);
      run = { blockIndex: c.blockIndex, fingerprints: [c.after] };
    }
  }
  if (run !== undefined) yield emit(run);
}
