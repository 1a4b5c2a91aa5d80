/**
 * Algorithms over the copy-on-write radix tree held in a {@link MapStore}: lookup,
 * batched update with shadowing, diff that skips shared subtrees, and reclamation of
 * nodes whose reference count reached zero.
 *
 * A root is a node id (0 = an all-zero volume). A tree of height h covers
 * FANOUT^h blocks; the root is at level h-1 and leaves at level 0.
 */
import { equalBytes } from '../../core/bytes.js';
import { FANOUT, FANOUT_BITS, type MapNode } from './map-node.js';
import type { MapStore } from './map-store.js';

/** Tree height for a volume of `blockCount` blocks (at least 1). */
export function heightFor(blockCount: number): number {
  let height = 1;
  let covered = FANOUT;
  while (covered < blockCount) {
    covered *= FANOUT;
    height++;
  }
  return height;
}

/** Slot index of `blockIndex` at `level`. */
function slotAt(blockIndex: number, level: number): number {
  return Math.floor(blockIndex / 2 ** (FANOUT_BITS * level)) % FANOUT;
}

/** Fingerprint of one block (undefined = zero). */
export async function lookup(store: MapStore, root: number, height: number, blockIndex: number): Promise<Uint8Array | undefined> {
  let id = root;
  for (let level = height - 1; level >= 0; level--) {
    if (id === 0) return undefined;
    const node = store.cachedNode(id) ?? (await store.node(id));
    if (node.kind === 'leaf') return node.slots[slotAt(blockIndex, 0)];
    id = node.slots[slotAt(blockIndex, level)]!;
  }
  return undefined;
}

/** Fingerprints of `blockCount` consecutive blocks from `firstBlock`, one leaf visit per 256 blocks. */
export async function lookupRange(
  store: MapStore,
  root: number,
  height: number,
  firstBlock: number,
  blockCount: number,
): Promise<(Uint8Array | undefined)[]> {
  const out = new Array<Uint8Array | undefined>(blockCount).fill(undefined);
  let b = firstBlock;
  const end = firstBlock + blockCount;
  while (b < end) {
    const leafBase = b - (b % FANOUT);
    const leafEnd = Math.min(end, leafBase + FANOUT);
    const leaf = await findLeaf(store, root, height, b);
    if (leaf !== undefined) for (let i = b; i < leafEnd; i++) out[i - firstBlock] = leaf.slots[i - leafBase] as Uint8Array | undefined;
    b = leafEnd;
  }
  return out;
}

async function findLeaf(store: MapStore, root: number, height: number, blockIndex: number): Promise<MapNode | undefined> {
  let id = root;
  for (let level = height - 1; level > 0; level--) {
    if (id === 0) return undefined;
    const node = store.cachedNode(id) ?? (await store.node(id));
    id = node.slots[slotAt(blockIndex, level)] as number;
  }
  if (id === 0) return undefined;
  return store.cachedNode(id) ?? (await store.node(id));
}

/**
 * Returns a node id that may be changed in place in the position of `id` (whose
 * reference is held by the caller): `id` itself when unshared, else a shadow copy, in
 * which case the caller's reference moves from `id` to the copy.
 */
async function mutableNode(store: MapStore, id: number, level: number): Promise<number> {
  if (id === 0) {
    const fresh = store.createNode(level);
    await store.incNode(fresh);
    return fresh;
  }
  if ((await store.nodeRc(id)) === 1) {
    await store.touchNode(id);
    return id;
  }
  const copy = await store.shadow(id);
  await store.incNode(copy);
  await store.decNode(id);
  return copy;
}

/** One block update: fingerprint, or undefined to make the block read as zero. */
export interface BlockUpdate {
  readonly blockIndex: number;
  readonly fingerprint: Uint8Array | undefined;
}

/**
 * Applies `updates` (ascending blockIndex)
 * to the tree whose root reference the caller holds, shadowing shared nodes. Returns
 * the new root (the caller's reference moves to it).
 */
export async function applyUpdates(store: MapStore, root: number, height: number, updates: readonly BlockUpdate[]): Promise<number> {
  if (updates.length === 0) return root;
  const newRoot = await mutableNode(store, root, height - 1);
  await applyInNode(store, newRoot, height - 1, updates, 0, updates.length);
  return newRoot;
}

async function applyInNode(store: MapStore, id: number, level: number, updates: readonly BlockUpdate[], from: number, to: number): Promise<void> {
  const node = await store.node(id);
  if (node.kind === 'leaf') {
    // References dropped from the old fingerprints are deferred (map-store.ts): settled
    // at the commit, where they cancel those a shadow of this leaf just took.
    for (let i = from; i < to; i++) {
      const u = updates[i]!;
      const slot = slotAt(u.blockIndex, 0);
      const before = node.slots[slot];
      if (before !== undefined && u.fingerprint !== undefined && equalBytes(before, u.fingerprint)) continue;
      if (u.fingerprint !== undefined) store.incExtent(u.fingerprint);
      if (before !== undefined) store.decExtent(before);
      node.slots[slot] = u.fingerprint;
    }
    return;
  }
  let i = from;
  while (i < to) {
    const slot = slotAt(updates[i]!.blockIndex, level);
    let j = i + 1;
    while (j < to && slotAt(updates[j]!.blockIndex, level) === slot) j++;
    const child = node.slots[slot]!;
    const allZero = child === 0 && updates.slice(i, j).every((u) => u.fingerprint === undefined);
    if (!allZero) {
      const mutableChild = await mutableNode(store, child, level - 1);
      node.slots[slot] = mutableChild;
      await applyInNode(store, mutableChild, level - 1, updates, i, j);
    }
    i = j;
  }
}

/** One changed block between two roots. */
export interface BlockChange {
  readonly blockIndex: number;
  readonly before: Uint8Array | undefined;
  readonly after: Uint8Array | undefined;
}

/** Changes gathered before a diff yields: amortises generator overhead, bounds memory. */
const DIFF_YIELD_CHANGES = 4096;

/**
 * Blocks whose fingerprints differ between two roots of the same height, in ascending
 * order, in batches. Subtrees with the same node id are skipped unvisited, so the cost
 * is proportional to the nodes on paths to changed blocks (a leaf holding any change is
 * scanned whole: 256 slot comparisons, by reference first).
 */
export async function* diffRoots(store: MapStore, rootA: number, rootB: number, height: number): AsyncGenerator<BlockChange[]> {
  if (rootA === rootB) return;
  // Explicit DFS stack in descending slot order, so pops come out ascending.
  const stack: { a: number; b: number; level: number; baseBlock: number }[] = [{ a: rootA, b: rootB, level: height - 1, baseBlock: 0 }];
  let out: BlockChange[] = [];
  while (stack.length > 0) {
    const { a, b, level, baseBlock } = stack.pop()!;
    const na = a === 0 ? undefined : (store.cachedNode(a) ?? (await store.node(a)));
    const nb = b === 0 ? undefined : (store.cachedNode(b) ?? (await store.node(b)));
    if (level === 0) {
      const sa = na?.slots as (Uint8Array | undefined)[] | undefined;
      const sb = nb?.slots as (Uint8Array | undefined)[] | undefined;
      for (let i = 0; i < FANOUT; i++) {
        const before = sa?.[i];
        const after = sb?.[i];
        if (before === after) continue;
        if (before !== undefined && after !== undefined && equalBytes(before, after)) continue;
        out.push({ blockIndex: baseBlock + i, before, after });
      }
      if (out.length >= DIFF_YIELD_CHANGES) {
        yield out;
        out = [];
      }
      continue;
    }
    const span = FANOUT ** level;
    for (let i = FANOUT - 1; i >= 0; i--) {
      const ca = (na?.slots[i] as number | undefined) ?? 0;
      const cb = (nb?.slots[i] as number | undefined) ?? 0;
      if (ca !== cb) stack.push({ a: ca, b: cb, level: level - 1, baseBlock: baseBlock + i * span });
    }
  }
  if (out.length > 0) yield out;
}

/**
 * Reclaims one node whose reference count reached zero: drops the references it holds
 * (children or extents; those reaching zero are queued in turn) and deletes it.
 */
export async function reclaimNode(store: MapStore, id: number): Promise<void> {
  const node = await store.node(id);
  if (node.kind === 'leaf') {
    // Deferred: the commit after a reclamation batch settles them in one sorted pass.
    for (const fp of node.slots) if (fp !== undefined) store.decExtent(fp);
  } else {
    for (const child of node.slots) if (child !== 0) await store.decNode(child);
  }
  store.deleteNode(id);
}

/** Every node id reachable from `root` and every fingerprint reference (for the verifier). */
export async function walk(
  store: MapStore,
  root: number,
  height: number,
  visit: (id: number, node: MapNode) => void | Promise<void>,
  seen: Set<number>,
): Promise<void> {
  if (root === 0 || seen.has(root)) return;
  seen.add(root);
  const node = await store.node(root);
  await visit(root, node);
  if (node.kind === 'interior') for (const child of node.slots) if (child !== 0) await walk(store, child, height, visit, seen);
}
