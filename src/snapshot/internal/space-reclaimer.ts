/**
 * Space reclamation for a SnapshotTree: the queue of block-map nodes whose reference
 * count reached zero (keys `q`), and the list of extents whose reference count reached
 * zero (keys `d`). Both live only in the MetaStore and are read in bounded pages, so a
 * deleted terabyte volume costs no memory here and opening a tree reads nothing of them.
 *
 * Ordering promise: an extent is deleted from the ExtentStore only after the metadata
 * saying that nothing references it is durable, and only while no read is in flight
 * (a read may have looked the extent up just before it died). Both queues are
 * persisted by the tree's commits, so a crash delays reclamation but never loses it.
 * Called only under the tree's mutex.
 */
import { bytesToKey } from '../../core/bytes.js';
import type { ExtentStore } from '../../adapters/extent-store.js';
import type { MetaOp, MetaStore } from '../../adapters/meta-store.js';
import { reclaimNode } from './block-map.js';
import { TAG, decodeCount, type TreeKeys } from './keys.js';
import type { MapStore } from './map-store.js';

/** Extents per rc lookup while scanning for leaks: bounds one getMany. */
const LEAK_SCAN_BATCH_EXTENTS = 1024;
/**
 * Nodes reclaimed between commits: a leaf pins up to 256 extent counts (~40 KiB) until
 * the commit, so 64 nodes bound that near 2.5 MiB.
 */
const RECLAIM_BATCH_NODES = 64;
/** Dead extents deleted per ExtentStore call and commit. */
const DEAD_EXTENT_BATCH = 1024;

/** @internal */
export class SpaceReclaimer {
  readonly #meta: MetaStore;
  readonly #extents: ExtentStore;
  readonly #keys: TreeKeys;
  readonly #map: MapStore;

  constructor(meta: MetaStore, extents: ExtentStore, keys: TreeKeys, map: MapStore) {
    this.#meta = meta;
    this.#extents = extents;
    this.#keys = keys;
    this.#map = map;
  }

  /** True when nothing awaits reclamation (as of the last commit). */
  async idle(): Promise<boolean> {
    return (await this.#page(TAG.freeNode, 1)).length === 0 && (await this.#page(TAG.deadExtent, 1)).length === 0;
  }

  /**
   * Reclaims up to `maxNodes` nodes, committing every {@link RECLAIM_BATCH_NODES}, then
   * commits durably through `commit` and deletes the extents that died (unless reads are
   * in flight).
   */
  async step(
    maxNodes: number,
    signal: AbortSignal | undefined,
    commit: (sync: boolean) => Promise<void>,
    activeReads: () => number,
  ): Promise<{ nodesReclaimed: number; extentsDeleted: number }> {
    let nodesReclaimed = 0;
    await commit(false); // nodes freed by the caller's last change join the persisted queue
    while (nodesReclaimed < maxNodes && !signal?.aborted) {
      const ids = (await this.#page(TAG.freeNode, Math.min(RECLAIM_BATCH_NODES, maxNodes - nodesReclaimed))).map((key) => this.#keys.idOf(key));
      if (ids.length === 0) break;
      for (const id of ids) await reclaimNode(this.#map, id);
      nodesReclaimed += ids.length;
      // Deletes this batch's queue entries and queues the children it freed.
      await commit(false);
    }
    await commit(true);
    let extentsDeleted = 0;
    if (activeReads() === 0) {
      for (;;) {
        const n = await this.#deleteDeadExtents();
        if (n < 0) break;
        extentsDeleted += n;
      }
    }
    return { nodesReclaimed, extentsDeleted };
  }

  /** Deletes one page of dead extents; -1 when the list is empty. */
  async #deleteDeadExtents(): Promise<number> {
    const candidates = (await this.#page(TAG.deadExtent, DEAD_EXTENT_BATCH)).map((key) => this.#keys.tail(key).slice());
    if (candidates.length === 0) return -1;
    await this.#map.prefetchExtentRcs(candidates);
    // A dead extent re-referenced since (a write of the same content) stays.
    const dead = candidates.filter((fp) => this.#map.extentRc(fp) === 0);
    await this.#extents.delete(dead);
    await this.#extents.flush();
    const ops: MetaOp[] = candidates.map((fp) => ({ kind: 'del', key: this.#keys.fingerprint(TAG.deadExtent, fp) }));
    await this.#meta.batch(ops);
    return dead.length;
  }

  /** Both queues in full, for the verifier (which walks every live root anyway). */
  async loadQueues(): Promise<{ freeNodes: Set<number>; deadExtents: Set<string> }> {
    const freeNodes = new Set<number>();
    const deadExtents = new Set<string>();
    for await (const [key] of this.#meta.iterate({ prefix: this.#keys.tagPrefix(TAG.freeNode) })) freeNodes.add(this.#keys.idOf(key));
    for await (const [key] of this.#meta.iterate({ prefix: this.#keys.tagPrefix(TAG.deadExtent) })) deadExtents.add(bytesToKey(this.#keys.tail(key)));
    return { freeNodes, deadExtents };
  }

  /**
   * Deletes extents that the store holds but no committed reference count or dead-list
   * entry accounts for (a crash between an extent write and its commit leaves them).
   * Scans the whole ExtentStore in pages. Call after a durable commit, with no reads in flight.
   */
  async collectLeaked(): Promise<number> {
    let leaked: Uint8Array[] = [];
    let total = 0;
    let batch: Uint8Array[] = [];
    const check = async () => {
      const rcs = await this.#meta.getMany(batch.map((fp) => this.#keys.fingerprint(TAG.extentRc, fp)));
      const dead = await this.#meta.getMany(batch.map((fp) => this.#keys.fingerprint(TAG.deadExtent, fp)));
      batch.forEach((fp, i) => {
        if (decodeCount(rcs[i]) === 0 && dead[i] === undefined) leaked.push(fp);
      });
      batch = [];
    };
    // Collect first, delete after: deleting while listing would change what is listed.
    const pages: Uint8Array[][] = [];
    for await (const info of this.#extents.list()) {
      batch.push(info.fingerprint);
      if (batch.length >= LEAK_SCAN_BATCH_EXTENTS) await check();
      if (leaked.length >= LEAK_SCAN_BATCH_EXTENTS) {
        pages.push(leaked);
        leaked = [];
      }
    }
    if (batch.length > 0) await check();
    if (leaked.length > 0) pages.push(leaked);
    for (const page of pages) {
      await this.#extents.delete(page);
      total += page.length;
    }
    if (total > 0) await this.#extents.flush();
    return total;
  }

  /** Up to `limit` keys of one queue, in key order. */
  async #page(tag: number, limit: number): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for await (const [key] of this.#meta.iterate({ prefix: this.#keys.tagPrefix(tag), limit })) out.push(key);
    return out;
  }
}
