/**
 * Space reclamation for a SnapshotTree: the queue of block-map nodes whose reference
 * count reached zero, and the list of extents whose reference count reached zero.
 *
 * Ordering promise: an extent is deleted from the ExtentStore only after the metadata
 * saying that nothing references it is durable, and only while no read is in flight
 * (a read may have looked the extent up just before it died). Both queues are
 * persisted (keys `q` and `d`), so a crash delays reclamation but never loses it.
 * Called only under the tree's mutex.
 */
import { bytesToKey } from '../../core/bytes.js';
import type { ExtentStore } from '../../adapters/extent-store.js';
import type { MetaOp, MetaStore } from '../../adapters/meta-store.js';
import { reclaimNode } from './block-map.js';
import { decodeCount, TAG, type TreeKeys } from './keys.js';
import type { MapStore } from './map-store.js';

/** Extents per rc lookup while scanning for leaks: bounds one getMany. */
const LEAK_SCAN_BATCH_EXTENTS = 1024;

/** @internal */
export class SpaceReclaimer {
  readonly freeNodes: number[] = [];
  readonly deadExtents = new Map<string, Uint8Array>();
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

  /** Loads both persisted queues (at open). */
  async load(): Promise<void> {
    for await (const [key] of this.#meta.iterate({ prefix: this.#keys.tagPrefix(TAG.freeNode) })) this.freeNodes.push(this.#keys.idOf(key));
    for await (const [key] of this.#meta.iterate({ prefix: this.#keys.tagPrefix(TAG.deadExtent) })) {
      const fp = this.#keys.tail(key).slice();
      this.deadExtents.set(bytesToKey(fp), fp);
    }
  }

  /** Takes in what a commit freed. */
  enqueue(freedNodes: readonly number[], deadExtents: readonly Uint8Array[]): void {
    this.freeNodes.push(...freedNodes);
    for (const fp of deadExtents) this.deadExtents.set(bytesToKey(fp), fp);
  }

  /** True when nothing awaits reclamation. */
  get idle(): boolean {
    return this.freeNodes.length === 0 && this.deadExtents.size === 0;
  }

  /**
   * Reclaims up to `maxNodes` nodes, commits durably through `commit`, then deletes the
   * extents that died (unless reads are in flight).
   */
  async step(
    maxNodes: number,
    signal: AbortSignal | undefined,
    commit: (sync: boolean) => Promise<void>,
    activeReads: () => number,
  ): Promise<{ nodesReclaimed: number; extentsDeleted: number }> {
    let nodesReclaimed = 0;
    while (this.freeNodes.length > 0 && nodesReclaimed < maxNodes && !signal?.aborted) {
      await reclaimNode(this.#map, this.freeNodes.pop()!);
      nodesReclaimed++;
      // Children freed by this node join the queue through the commit.
      if (this.freeNodes.length === 0) await commit(false);
    }
    await commit(true);
    const extentsDeleted = activeReads() > 0 ? 0 : await this.#deleteDeadExtents();
    return { nodesReclaimed, extentsDeleted };
  }

  async #deleteDeadExtents(): Promise<number> {
    if (this.deadExtents.size === 0) return 0;
    const candidates = [...this.deadExtents.values()];
    await this.#map.prefetchExtentRcs(candidates);
    // A dead extent re-referenced since (a write of the same content) stays.
    const dead = candidates.filter((fp) => this.#map.extentRc(fp) === 0);
    await this.#extents.delete(dead);
    await this.#extents.flush();
    const ops: MetaOp[] = candidates.map((fp) => ({ kind: 'del', key: this.#keys.fingerprint(TAG.deadExtent, fp) }));
    await this.#meta.batch(ops);
    this.deadExtents.clear();
    return dead.length;
  }

  /**
   * Deletes extents that the store holds but no committed reference count or dead-list
   * entry accounts for (a crash between an extent write and its commit leaves them).
   * Scans the whole ExtentStore. Call after a durable commit, with no reads in flight.
   */
  async collectLeaked(): Promise<number> {
    const leaked: Uint8Array[] = [];
    let batch: Uint8Array[] = [];
    const check = async () => {
      const rcs = await this.#meta.getMany(batch.map((fp) => this.#keys.fingerprint(TAG.extentRc, fp)));
      batch.forEach((fp, i) => {
        if (decodeCount(rcs[i]) === 0 && !this.deadExtents.has(bytesToKey(fp))) leaked.push(fp);
      });
      batch = [];
    };
    for await (const info of this.#extents.list()) {
      batch.push(info.fingerprint);
      if (batch.length >= LEAK_SCAN_BATCH_EXTENTS) await check();
    }
    if (batch.length > 0) await check();
    if (leaked.length === 0) return 0;
    await this.#extents.delete(leaked);
    await this.#extents.flush();
    return leaked.length;
  }
}
