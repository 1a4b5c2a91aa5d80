/**
 * The in-memory face of a SnapshotTree's metadata: block-map nodes, node reference
 * counts and extent reference counts, loaded lazily from the MetaStore, changed in
 * memory, and written back as one atomic batch by {@link MapStore.takeCommitOps}.
 *
 * Reference counting (after Rodeh, "B-trees, shadowing, and clones"): rc(node) is the
 * number of pointers to it from interior slots, volume heads and snapshot roots;
 * rc(extent) is the number of leaf slots that hold its fingerprint. A node with rc 1
 * may change in place; a shared node is copied first, and the copy takes a reference
 * on each of its children. When rc reaches 0 a node is queued for reclamation and an
 * extent is marked dead; neither is touched again by the live tree.
 *
 * Callers serialise every mutation (SnapshotTree holds one mutex); reads of nodes that
 * are reachable from a live root are safe at any time because such nodes are never
 * changed in place while shared.
 */
import { bytesToKey, keyToBytes } from '../../core/bytes.js';
import { DrkitError } from '../../core/errors.js';
import type { MetaOp, MetaStore } from '../../adapters/meta-store.js';
import { copyNode, decodeNode, emptyNode, encodeNode, type MapNode } from './map-node.js';
import { decodeCount, encodeCount, TAG, type TreeKeys } from './keys.js';

/** Clean nodes kept decoded in memory; a leaf of 32-byte fingerprints is ~8 KiB, so ~64 MiB. */
const CLEAN_NODE_CACHE_LIMIT = 8192;

export class MapStore {
  readonly #meta: MetaStore;
  readonly #keys: TreeKeys;
  readonly #digestBytes: number;
  #nextNodeId: number;

  /** Decoded nodes; dirty ones are pinned until committed. Map order = LRU order. */
  readonly #nodes = new Map<number, MapNode>();
  readonly #dirtyNodes = new Set<number>();
  readonly #deletedNodes = new Set<number>();
  readonly #nodeRc = new Map<number, number>();
  readonly #dirtyNodeRc = new Set<number>();
  /** Extent rcs keyed by bytesToKey(fingerprint). */
  readonly #extentRc = new Map<string, number>();
  readonly #dirtyExtentRc = new Set<string>();
  /** Extents whose rc reached 0 since the last commit (to persist in the dead list). */
  readonly #newlyDead = new Set<string>();
  /** Dead extents revived (rc 0 -> 1) before they were deleted. */
  readonly #revived = new Set<string>();
  /** Nodes whose rc reached 0 since the last commit. */
  readonly #newlyFree: number[] = [];

  constructor(meta: MetaStore, keys: TreeKeys, digestBytes: number, nextNodeId: number) {
    this.#meta = meta;
    this.#keys = keys;
    this.#digestBytes = digestBytes;
    this.#nextNodeId = nextNodeId;
  }

  /** The next node id to allocate (persisted in the tree record). */
  get nextNodeId(): number {
    return this.#nextNodeId;
  }

  /** Fingerprint length in bytes. */
  get digestBytes(): number {
    return this.#digestBytes;
  }

  /** True when uncommitted changes exist. */
  get dirty(): boolean {
    return this.#dirtyNodes.size + this.#dirtyNodeRc.size + this.#dirtyExtentRc.size + this.#deletedNodes.size + this.#newlyFree.length > 0;
  }

  /** Approximate bytes of uncommitted node data, for commit pacing. */
  get dirtyNodeCount(): number {
    return this.#dirtyNodes.size;
  }

  /** The node, from cache or the MetaStore. @throws CORRUPTION when a referenced node is missing */
  async node(id: number): Promise<MapNode> {
    const cached = this.#nodes.get(id);
    if (cached !== undefined) {
      if (!this.#dirtyNodes.has(id)) {
        this.#nodes.delete(id);
        this.#nodes.set(id, cached);
      }
      return cached;
    }
    const bytes = await this.#meta.get(this.#keys.id(TAG.node, id));
    if (bytes === undefined) throw new DrkitError('CORRUPTION', `block-map node ${id} is referenced but missing`, { data: { nodeId: id } });
    const node = decodeNode(bytes, id, this.#digestBytes);
    this.#cache(id, node);
    return node;
  }

  /** The node if it is in memory (no I/O). */
  cachedNode(id: number): MapNode | undefined {
    return this.#nodes.get(id);
  }

  #cache(id: number, node: MapNode): void {
    this.#nodes.set(id, node);
    if (this.#nodes.size <= CLEAN_NODE_CACHE_LIMIT + this.#dirtyNodes.size) return;
    for (const key of this.#nodes.keys()) {
      if (this.#nodes.size <= CLEAN_NODE_CACHE_LIMIT + this.#dirtyNodes.size) break;
      if (!this.#dirtyNodes.has(key)) this.#nodes.delete(key);
    }
  }

  /** Reference count of a node. */
  async nodeRc(id: number): Promise<number> {
    const cached = this.#nodeRc.get(id);
    if (cached !== undefined) return cached;
    const rc = decodeCount(await this.#meta.get(this.#keys.id(TAG.nodeRc, id)));
    this.#nodeRc.set(id, rc);
    return rc;
  }

  /** Creates a node with rc 0 (the caller links it with {@link incNode}). */
  createNode(level: number, from?: MapNode): number {
    const id = this.#nextNodeId++;
    this.#nodes.set(id, from === undefined ? emptyNode(level) : copyNode(from));
    this.#dirtyNodes.add(id);
    this.#nodeRc.set(id, 0);
    return id;
  }

  /** Marks a node (already in memory, rc 1) as changed. */
  touchNode(id: number): void {
    this.#dirtyNodes.add(id);
  }

  /** Takes a reference on a node. */
  async incNode(id: number): Promise<void> {
    const rc = await this.nodeRc(id);
    this.#nodeRc.set(id, rc + 1);
    this.#dirtyNodeRc.add(id);
  }

  /** Drops a reference on a node; at zero it is queued for reclamation. */
  async decNode(id: number): Promise<void> {
    const rc = await this.nodeRc(id);
    if (rc <= 0) throw new DrkitError('INTERNAL', `node ${id} reference count would go below zero`, { data: { nodeId: id } });
    this.#nodeRc.set(id, rc - 1);
    this.#dirtyNodeRc.add(id);
    if (rc === 1) this.#newlyFree.push(id);
  }

  /** Loads the rcs of several extents into memory with one MetaStore call. */
  async prefetchExtentRcs(fingerprints: readonly Uint8Array[]): Promise<void> {
    const missing: Uint8Array[] = [];
    const seen = new Set<string>();
    for (const fp of fingerprints) {
      const key = bytesToKey(fp);
      if (this.#extentRc.has(key) || seen.has(key)) continue;
      seen.add(key);
      missing.push(fp);
    }
    if (missing.length === 0) return;
    const values = await this.#meta.getMany(missing.map((fp) => this.#keys.fingerprint(TAG.extentRc, fp)));
    missing.forEach((fp, i) => {
      const key = bytesToKey(fp);
      if (!this.#extentRc.has(key)) this.#extentRc.set(key, decodeCount(values[i]));
    });
  }

  /** Reference count of an extent (must be prefetched). */
  extentRc(fingerprint: Uint8Array): number {
    const rc = this.#extentRc.get(bytesToKey(fingerprint));
    if (rc === undefined) throw new DrkitError('INTERNAL', 'extent reference count used before prefetch');
    return rc;
  }

  /** Takes a reference on an extent (rc must be prefetched). */
  incExtent(fingerprint: Uint8Array): void {
    const key = bytesToKey(fingerprint);
    const rc = this.#extentRc.get(key);
    if (rc === undefined) throw new DrkitError('INTERNAL', 'extent reference count used before prefetch');
    this.#extentRc.set(key, rc + 1);
    this.#dirtyExtentRc.add(key);
    if (rc === 0) {
      if (this.#newlyDead.has(key)) this.#newlyDead.delete(key);
      else this.#revived.add(key);
    }
  }

  /** Drops a reference on an extent; at zero it joins the dead list. */
  decExtent(fingerprint: Uint8Array): void {
    const key = bytesToKey(fingerprint);
    const rc = this.#extentRc.get(key);
    if (rc === undefined || rc <= 0) throw new DrkitError('INTERNAL', 'extent reference count would go below zero');
    this.#extentRc.set(key, rc - 1);
    this.#dirtyExtentRc.add(key);
    if (rc === 1) {
      if (this.#revived.has(key)) this.#revived.delete(key);
      this.#newlyDead.add(key);
    }
  }

  /** Removes a reclaimed node (rc 0) from memory and, at commit, from the MetaStore. */
  deleteNode(id: number): void {
    this.#nodes.delete(id);
    this.#dirtyNodes.delete(id);
    this.#nodeRc.delete(id);
    this.#dirtyNodeRc.delete(id);
    this.#deletedNodes.add(id);
  }

  /** Copies a node's slots into a new node and references every child of it. */
  async shadow(id: number): Promise<number> {
    const node = await this.node(id);
    const copyId = this.createNode(node.level, node);
    if (node.kind === 'leaf') {
      const present = node.slots.filter((s): s is Uint8Array => s !== undefined);
      await this.prefetchExtentRcs(present);
      for (const fp of present) this.incExtent(fp);
    } else {
      for (const child of node.slots) if (child !== 0) await this.incNode(child);
    }
    return copyId;
  }

  /**
   * Drains the changes since the last call as MetaStore ops, plus the nodes freed and
   * extents that died (for the caller's reclamation queue).
   */
  takeCommitOps(): { ops: MetaOp[]; freedNodes: number[]; deadExtents: Uint8Array[]; revivedExtents: Uint8Array[] } {
    const ops: MetaOp[] = [];
    const k = this.#keys;
    for (const id of this.#dirtyNodes) {
      const node = this.#nodes.get(id)!;
      ops.push({ kind: 'put', key: k.id(TAG.node, id), value: encodeNode(node, this.#digestBytes) });
    }
    for (const id of this.#dirtyNodeRc) {
      const rc = this.#nodeRc.get(id)!;
      ops.push(rc === 0 ? { kind: 'del', key: k.id(TAG.nodeRc, id) } : { kind: 'put', key: k.id(TAG.nodeRc, id), value: encodeCount(rc) });
    }
    for (const id of this.#deletedNodes) {
      ops.push({ kind: 'del', key: k.id(TAG.node, id) }, { kind: 'del', key: k.id(TAG.nodeRc, id) }, { kind: 'del', key: k.id(TAG.freeNode, id) });
    }
    for (const id of this.#newlyFree) {
      if (!this.#deletedNodes.has(id)) ops.push({ kind: 'put', key: k.id(TAG.freeNode, id), value: new Uint8Array(0) });
    }
    for (const key of this.#dirtyExtentRc) {
      const rc = this.#extentRc.get(key)!;
      const fp = keyToBytes(key);
      ops.push(rc === 0 ? { kind: 'del', key: k.fingerprint(TAG.extentRc, fp) } : { kind: 'put', key: k.fingerprint(TAG.extentRc, fp), value: encodeCount(rc) });
    }
    const deadExtents = [...this.#newlyDead].map(keyToBytes);
    for (const fp of deadExtents) ops.push({ kind: 'put', key: k.fingerprint(TAG.deadExtent, fp), value: new Uint8Array(0) });
    const revivedExtents = [...this.#revived].map(keyToBytes);
    for (const fp of revivedExtents) ops.push({ kind: 'del', key: k.fingerprint(TAG.deadExtent, fp) });
    const freedNodes = this.#newlyFree.filter((id) => !this.#deletedNodes.has(id));
    this.#dirtyNodes.clear();
    this.#dirtyNodeRc.clear();
    this.#dirtyExtentRc.clear();
    this.#deletedNodes.clear();
    this.#newlyFree.length = 0;
    this.#newlyDead.clear();
    this.#revived.clear();
    // Extents with rc 0 need not stay cached.
    for (const fp of deadExtents) this.#extentRc.delete(bytesToKey(fp));
    return { ops, freedNodes, deadExtents, revivedExtents };
  }

  /** Forgets every cached value (after a failed commit, state is reloaded from the MetaStore). */
  reset(nextNodeId: number): void {
    this.#nodes.clear();
    this.#dirtyNodes.clear();
    this.#deletedNodes.clear();
    this.#nodeRc.clear();
    this.#dirtyNodeRc.clear();
    this.#extentRc.clear();
    this.#dirtyExtentRc.clear();
    this.#newlyDead.clear();
    this.#revived.clear();
    this.#newlyFree.length = 0;
    this.#nextNodeId = nextNodeId;
  }
}
