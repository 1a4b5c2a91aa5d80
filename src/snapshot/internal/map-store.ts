/**
 * The in-memory face of a SnapshotTree's metadata: block-map nodes, node reference
 * counts and extent reference counts, read from the MetaStore through byte-budgeted LRU
 * caches, changed in memory, and written back as one atomic batch by
 * {@link MapStore.takeCommitOps}.
 *
 * Reference counting (after Rodeh, "B-trees, shadowing, and clones"): rc(node) is the
 * number of pointers to it from interior slots, volume heads and snapshot roots;
 * rc(extent) is the number of leaf slots that hold its fingerprint. A node with rc 1
 * may change in place; a shared node is copied first, and the copy takes a reference
 * on each of its children. When rc reaches 0 a node is queued for reclamation and an
 * extent is marked dead; neither is touched again by the live tree.
 *
 * Deferred extent counts (after btrfs's delayed refs): a reference change to an extent
 * whose count is not in memory is recorded as a delta, without reading the count.
 * Shadowing a shared leaf takes one reference per extent it holds (~200 in a full leaf),
 * and an incremental that rewrites blocks all over a volume shadows every leaf: reading
 * each count where it changes cost a random MetaStore read per extent. The deltas are
 * settled before each commit ({@link MapStore.settleExtentRcs}) in one pass over the
 * changed keys in key order; a reference taken and dropped in one commit (a shadowed
 * leaf's slot that is then overwritten) cancels and is neither read nor written. The
 * committed counts are the same as if every change had been applied at once, so the
 * reference model, the dead list and crash behaviour do not change: nothing of a delta
 * is durable before its commit, like every other change here. A count a caller needs
 * (`extentRc`, for dedup and reclamation) is read by {@link MapStore.prefetchExtentRcs},
 * which folds in the delta first.
 *
 * Memory: nothing here grows with stored data. Clean values live in LRU caches within
 * the tree's `cacheBytes`; changed (dirty) values and extent counts prefetched for the
 * operation in progress are pinned until the next commit, and the tree commits once
 * {@link MapStore.pinnedBytes} passes its bound.
 *
 * Callers serialise every mutation (SnapshotTree holds one mutex); reads of nodes that
 * are reachable from a live root are safe at any time because such nodes are never
 * changed in place while shared.
 */
import { bytesToKey, keyToBytes } from '../../core/bytes.js';
import { DrkitError } from '../../core/errors.js';
import { LruCache } from '../../core/lru-cache.js';
import type { MetaOp, MetaStore } from '../../adapters/meta-store.js';
import { copyNode, decodeNode, emptyNode, encodeNode, nodeHeapBytes, type MapNode } from './map-node.js';
import { decodeCount, encodeCount, encodeCounts, TAG, type TreeKeys } from './keys.js';

/**
 * Estimated heap bytes of one cached reference count: key (number or ~32-char string),
 * value and map slot. Erring high keeps caches within budget.
 */
const NODE_RC_BYTES = 64;
const EXTENT_RC_BYTES = 160;
/** Heap bytes of one entry of the stored-length map (the key string is shared with the pinned count's). */
const STORED_LENGTH_BYTES = 32;

/** How a tree's `cacheBytes` is shared: most to decoded nodes, which every read walks. */
const NODE_CACHE_SHARE = 0.7;
const EXTENT_RC_CACHE_SHARE = 0.25;

export class MapStore {
  readonly #meta: MetaStore;
  readonly #keys: TreeKeys;
  readonly #digestBytes: number;
  #nextNodeId: number;

  readonly #cleanNodes: LruCache<number, MapNode>;
  readonly #dirtyNodes = new Map<number, MapNode>();
  #dirtyNodeBytes = 0;
  readonly #deletedNodes = new Set<number>();
  readonly #cleanNodeRc: LruCache<number, number>;
  readonly #dirtyNodeRc = new Map<number, number>();
  readonly #cleanExtentRc: LruCache<string, number>;
  /** Extent rcs changed or prefetched since the last commit (bytesToKey(fingerprint) -> rc). */
  readonly #pinnedExtentRc = new Map<string, number>();
  readonly #dirtyExtentRc = new Set<string>();
  /**
   * Extent reference changes not yet applied to a count in memory (key -> delta); never
   * a key of #pinnedExtentRc. Settled before every commit.
   */
  readonly #extentRcDelta = new Map<string, number>();
  /**
   * Pinned extent counts not worth caching after the commit: extents new when prefetched,
   * and counts settled from deltas (a shadowed leaf's extents, rarely needed again soon).
   */
  readonly #uncachedExtentRc = new Set<string>();
  /**
   * Byte length of the stored value of a pinned count read from the MetaStore by
   * {@link MapStore.prefetchExtentRcs} or {@link MapStore.settleExtentRcs} (null: no value), passed to the commit's ops
   * as their `replaces` hint so that the store need not read each key again. Counts
   * pinned from the cache have none (the length of what was read then is not kept).
   */
  readonly #storedExtentRcBytes = new Map<string, number | null>();
  /** Extents whose rc reached 0 since the last commit (to persist in the dead list). */
  readonly #newlyDead = new Set<string>();
  /** Dead extents revived (rc 0 -> 1) before they were deleted. */
  readonly #revived = new Set<string>();
  /** Nodes whose rc reached 0 since the last commit. */
  readonly #newlyFree: number[] = [];

  constructor(meta: MetaStore, keys: TreeKeys, digestBytes: number, nextNodeId: number, cacheBytes: number) {
    this.#meta = meta;
    this.#keys = keys;
    this.#digestBytes = digestBytes;
    this.#nextNodeId = nextNodeId;
    this.#cleanNodes = new LruCache(Math.floor(cacheBytes * NODE_CACHE_SHARE));
    this.#cleanExtentRc = new LruCache(Math.floor(cacheBytes * EXTENT_RC_CACHE_SHARE));
    this.#cleanNodeRc = new LruCache(Math.floor(cacheBytes * (1 - NODE_CACHE_SHARE - EXTENT_RC_CACHE_SHARE)));
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
    return this.#dirtyNodes.size + this.#dirtyNodeRc.size + this.#dirtyExtentRc.size + this.#extentRcDelta.size + this.#deletedNodes.size + this.#newlyFree.length > 0;
  }

  /** Estimated heap bytes pinned until the next commit (dirty nodes and counts, prefetched counts, deltas). */
  get pinnedBytes(): number {
    return (
      this.#dirtyNodeBytes +
      this.#dirtyNodeRc.size * NODE_RC_BYTES +
      (this.#pinnedExtentRc.size + this.#extentRcDelta.size) * EXTENT_RC_BYTES +
      this.#storedExtentRcBytes.size * STORED_LENGTH_BYTES
    );
  }

  /** The node, from memory or the MetaStore. @throws CORRUPTION when a referenced node is missing */
  async node(id: number): Promise<MapNode> {
    const cached = this.cachedNode(id);
    if (cached !== undefined) return cached;
    const bytes = await this.#meta.get(this.#keys.id(TAG.node, id));
    // A write may have made the node dirty while the read was in flight: it wins.
    const raced = this.#dirtyNodes.get(id);
    if (raced !== undefined) return raced;
    if (bytes === undefined) throw new DrkitError('CORRUPTION', `block-map node ${id} is referenced but missing`, { data: { nodeId: id } });
    const node = decodeNode(bytes, id, this.#digestBytes);
    this.#cleanNodes.set(id, node, nodeHeapBytes(node));
    return node;
  }

  /** The node if it is in memory (no I/O). */
  cachedNode(id: number): MapNode | undefined {
    return this.#dirtyNodes.get(id) ?? this.#cleanNodes.get(id);
  }

  /** Reference count of a node. */
  async nodeRc(id: number): Promise<number> {
    const dirty = this.#dirtyNodeRc.get(id);
    if (dirty !== undefined) return dirty;
    const cached = this.#cleanNodeRc.get(id);
    if (cached !== undefined) return cached;
    const rc = decodeCount(await this.#meta.get(this.#keys.id(TAG.nodeRc, id)));
    const raced = this.#dirtyNodeRc.get(id);
    if (raced !== undefined) return raced;
    this.#cleanNodeRc.set(id, rc, NODE_RC_BYTES);
    return rc;
  }

  /** Creates a node with rc 0 (the caller links it with {@link incNode}). */
  createNode(level: number, from?: MapNode): number {
    const id = this.#nextNodeId++;
    this.#pinNode(id, from === undefined ? emptyNode(level) : copyNode(from));
    this.#setNodeRc(id, 0);
    return id;
  }

  /** Marks a node (rc 1, about to change in place) as changed, pinning it until the commit. */
  async touchNode(id: number): Promise<void> {
    if (this.#dirtyNodes.has(id)) return;
    this.#pinNode(id, await this.node(id));
  }

  /** Takes a reference on a node. */
  async incNode(id: number): Promise<void> {
    const rc = await this.nodeRc(id);
    this.#setNodeRc(id, rc + 1);
  }

  /** Drops a reference on a node; at zero it is queued for reclamation. */
  async decNode(id: number): Promise<void> {
    const rc = await this.nodeRc(id);
    if (rc <= 0) throw new DrkitError('INTERNAL', `node ${id} reference count would go below zero`, { data: { nodeId: id } });
    this.#setNodeRc(id, rc - 1);
    if (rc === 1) this.#newlyFree.push(id);
  }

  /**
   * Loads the rcs of several extents with one MetaStore call and pins them until the next
   * commit (a deferred change to one of them is applied first).
   * @throws INTERNAL when a deferred change would take a count below zero
   */
  async prefetchExtentRcs(fingerprints: readonly Uint8Array[]): Promise<void> {
    const missing: string[] = [];
    const seen = new Set<string>();
    for (const fp of fingerprints) {
      const key = bytesToKey(fp);
      if (this.#pinnedExtentRc.has(key) || seen.has(key)) continue;
      const cached = this.#cleanExtentRc.peek(key);
      if (cached !== undefined) {
        this.#pinStored(key, cached, true);
        continue;
      }
      seen.add(key);
      missing.push(key);
    }
    await this.#load(missing, true);
  }

  /**
   * Applies every deferred extent reference change: reads the counts concerned in one
   * MetaStore call, in key order, and pins the results as changed. Call before
   * {@link takeCommitOps}.
   * @throws INTERNAL when a change would take a count below zero (a reference-count bug)
   */
  async settleExtentRcs(): Promise<void> {
    if (this.#extentRcDelta.size === 0) return;
    const keys: string[] = [];
    for (const [key, delta] of this.#extentRcDelta) {
      if (delta === 0) {
        this.#extentRcDelta.delete(key);
        continue;
      }
      const cached = this.#cleanExtentRc.peek(key);
      if (cached !== undefined) this.#pinStored(key, cached, true);
      else keys.push(key);
    }
    // Binary strings compare like their bytes: key order is the MetaStore's order.
    keys.sort();
    await this.#load(keys, false);
  }

  /** Reads the stored counts of `keys` (bytesToKey form) and pins each with its delta applied. */
  async #load(keys: readonly string[], cache: boolean): Promise<void> {
    if (keys.length === 0) return;
    const values = await this.#meta.getMany(this.#keys.fingerprintKeys(TAG.extentRc, keys));
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      // Another caller may have pinned it while the read was in flight: that count is newer.
      if (this.#pinnedExtentRc.has(key)) continue;
      const value = values[i];
      this.#pinStored(key, decodeCount(value), cache);
      this.#storedExtentRcBytes.set(key, value === undefined ? null : value.length);
    }
  }

  /** Pins the count `stored` (the committed one) of `key`, with its deferred delta applied. */
  #pinStored(key: string, stored: number, cache: boolean): void {
    const delta = this.#extentRcDelta.get(key) ?? 0;
    const rc = stored + delta;
    if (rc < 0) throw new DrkitError('INTERNAL', 'extent reference count would go below zero', { data: { stored, delta } });
    this.#extentRcDelta.delete(key);
    this.#pinnedExtentRc.set(key, rc);
    if (stored === 0 || !cache) this.#uncachedExtentRc.add(key);
    if (delta === 0) return;
    this.#dirtyExtentRc.add(key);
    // The same transitions incExtent and decExtent record, from the committed count.
    if (stored === 0 && rc > 0) this.#revived.add(key);
    else if (stored > 0 && rc === 0) this.#newlyDead.add(key);
  }

  /** Reference count of an extent (must be prefetched). */
  extentRc(fingerprint: Uint8Array): number {
    const rc = this.#pinnedExtentRc.get(bytesToKey(fingerprint));
    if (rc === undefined) throw new DrkitError('INTERNAL', 'extent reference count used before prefetch');
    return rc;
  }

  /** Takes a reference on an extent: applied to its count if pinned, else deferred (see the header). */
  incExtent(fingerprint: Uint8Array): void {
    const key = bytesToKey(fingerprint);
    const rc = this.#pinnedExtentRc.get(key);
    if (rc === undefined) {
      this.#extentRcDelta.set(key, (this.#extentRcDelta.get(key) ?? 0) + 1);
      return;
    }
    this.#pinnedExtentRc.set(key, rc + 1);
    this.#dirtyExtentRc.add(key);
    if (rc === 0) {
      if (this.#newlyDead.has(key)) this.#newlyDead.delete(key);
      else this.#revived.add(key);
    }
  }

  /**
   * Drops a reference on an extent; at zero it joins the dead list. Deferred like
   * {@link incExtent} when the count is not pinned (then checked when settled).
   * @throws INTERNAL when a pinned count would go below zero
   */
  decExtent(fingerprint: Uint8Array): void {
    const key = bytesToKey(fingerprint);
    const rc = this.#pinnedExtentRc.get(key);
    if (rc === undefined) {
      this.#extentRcDelta.set(key, (this.#extentRcDelta.get(key) ?? 0) - 1);
      return;
    }
    if (rc <= 0) throw new DrkitError('INTERNAL', 'extent reference count would go below zero');
    this.#pinnedExtentRc.set(key, rc - 1);
    this.#dirtyExtentRc.add(key);
    if (rc === 1) {
      if (this.#revived.has(key)) this.#revived.delete(key);
      this.#newlyDead.add(key);
    }
  }

  /** Removes a reclaimed node (rc 0) from memory and, at commit, from the MetaStore. */
  deleteNode(id: number): void {
    this.#unpinNode(id);
    this.#cleanNodes.delete(id);
    this.#dirtyNodeRc.delete(id);
    this.#cleanNodeRc.delete(id);
    this.#deletedNodes.add(id);
  }

  /** Copies a node's slots into a new node and references every child of it (a leaf's extents: deferred). */
  async shadow(id: number): Promise<number> {
    const node = await this.node(id);
    const copyId = this.createNode(node.level, node);
    if (node.kind === 'leaf') {
      for (const fp of node.slots) if (fp !== undefined) this.incExtent(fp);
    } else {
      for (const child of node.slots) if (child !== 0) await this.incNode(child);
    }
    return copyId;
  }

  /**
   * Drains the changes since the last call as MetaStore ops, plus the nodes freed and
   * extents that died (for the caller's reclamation queue). Changed values move to the
   * clean caches: the caller commits the ops or, on failure, calls {@link reset}.
   * @throws INTERNAL when deferred extent changes were not settled first ({@link settleExtentRcs})
   */
  takeCommitOps(): { ops: MetaOp[]; freedNodes: number[]; deadExtents: Uint8Array[]; revivedExtents: Uint8Array[] } {
    if (this.#extentRcDelta.size > 0) throw new DrkitError('INTERNAL', 'extent reference changes not settled before the commit');
    const ops: MetaOp[] = [];
    const k = this.#keys;
    for (const [id, node] of this.#dirtyNodes) {
      const bytes = encodeNode(node, this.#digestBytes);
      ops.push({ kind: 'put', key: k.id(TAG.node, id), value: bytes });
      // Cache the compact decoded form (fingerprints as views of one buffer), not the
      // written one, whose fingerprints may each pin a buffer of their own.
      const compact = node.kind === 'leaf' ? decodeNode(bytes, id, this.#digestBytes) : node;
      this.#cleanNodes.set(id, compact, nodeHeapBytes(compact));
    }
    for (const [id, rc] of this.#dirtyNodeRc) {
      ops.push(rc === 0 ? { kind: 'del', key: k.id(TAG.nodeRc, id) } : { kind: 'put', key: k.id(TAG.nodeRc, id), value: encodeCount(rc) });
      this.#cleanNodeRc.set(id, rc, NODE_RC_BYTES);
    }
    for (const id of this.#deletedNodes) {
      ops.push({ kind: 'del', key: k.id(TAG.node, id) }, { kind: 'del', key: k.id(TAG.nodeRc, id) }, { kind: 'del', key: k.id(TAG.freeNode, id) });
    }
    for (const id of this.#newlyFree) {
      if (!this.#deletedNodes.has(id)) ops.push({ kind: 'put', key: k.id(TAG.freeNode, id), value: new Uint8Array(0) });
    }
    // In key order (the MetaStore applies them with good locality), keys and values as
    // views of one buffer each.
    const changed = [...this.#dirtyExtentRc].sort();
    const rcs = changed.map((key) => this.#pinnedExtentRc.get(key)!);
    const rcKeys = k.fingerprintKeys(TAG.extentRc, changed);
    const rcValues = encodeCounts(rcs);
    for (let i = 0; i < changed.length; i++) {
      if (rcs[i] === 0) ops.push({ kind: 'del', key: rcKeys[i]! });
      else {
        const replaces = this.#storedExtentRcBytes.get(changed[i]!);
        ops.push(replaces === undefined ? { kind: 'put', key: rcKeys[i]!, value: rcValues[i]! } : { kind: 'put', key: rcKeys[i]!, value: rcValues[i]!, replaces });
      }
    }
    const deadExtents = [...this.#newlyDead].map(keyToBytes);
    for (const fp of deadExtents) ops.push({ kind: 'put', key: k.fingerprint(TAG.deadExtent, fp), value: new Uint8Array(0) });
    const revivedExtents = [...this.#revived].map(keyToBytes);
    for (const fp of revivedExtents) ops.push({ kind: 'del', key: k.fingerprint(TAG.deadExtent, fp) });
    const freedNodes = this.#newlyFree.filter((id) => !this.#deletedNodes.has(id));
    // Counts of extents that existed before (shared content, dedup hits) stay cached; those
    // of extents just written or settled from deltas would only churn the cache. A count
    // left out (or at 0) must not stay cached with an old value.
    for (const [key, rc] of this.#pinnedExtentRc) {
      if (rc > 0 && !this.#uncachedExtentRc.has(key)) this.#cleanExtentRc.set(key, rc, EXTENT_RC_BYTES);
      else this.#cleanExtentRc.delete(key);
    }
    this.#uncachedExtentRc.clear();
    for (const key of this.#newlyDead) this.#cleanExtentRc.delete(key);
    this.#dirtyNodes.clear();
    this.#dirtyNodeBytes = 0;
    this.#dirtyNodeRc.clear();
    this.#pinnedExtentRc.clear();
    this.#storedExtentRcBytes.clear();
    this.#dirtyExtentRc.clear();
    this.#deletedNodes.clear();
    this.#newlyFree.length = 0;
    this.#newlyDead.clear();
    this.#revived.clear();
    return { ops, freedNodes, deadExtents, revivedExtents };
  }

  /** Forgets every cached value (after a failed commit, state is reloaded from the MetaStore). */
  reset(nextNodeId: number): void {
    this.#cleanNodes.clear();
    this.#dirtyNodes.clear();
    this.#dirtyNodeBytes = 0;
    this.#deletedNodes.clear();
    this.#cleanNodeRc.clear();
    this.#dirtyNodeRc.clear();
    this.#cleanExtentRc.clear();
    this.#pinnedExtentRc.clear();
    this.#storedExtentRcBytes.clear();
    this.#uncachedExtentRc.clear();
    this.#extentRcDelta.clear();
    this.#dirtyExtentRc.clear();
    this.#newlyDead.clear();
    this.#revived.clear();
    this.#newlyFree.length = 0;
    this.#nextNodeId = nextNodeId;
  }

  #pinNode(id: number, node: MapNode): void {
    this.#unpinNode(id);
    this.#cleanNodes.delete(id);
    this.#dirtyNodes.set(id, node);
    // Estimated as a full node: it may fill up before the commit.
    this.#dirtyNodeBytes += nodeHeapBytes(node.kind === 'leaf' ? FULL_LEAF : node);
  }

  #unpinNode(id: number): void {
    const node = this.#dirtyNodes.get(id);
    if (node === undefined) return;
    this.#dirtyNodes.delete(id);
    this.#dirtyNodeBytes -= nodeHeapBytes(node.kind === 'leaf' ? FULL_LEAF : node);
  }

  #setNodeRc(id: number, rc: number): void {
    this.#cleanNodeRc.delete(id);
    this.#dirtyNodeRc.set(id, rc);
  }
}

/** Stand-in for the heap estimate of a leaf that may fill before its commit. */
const FULL_LEAF: MapNode = { kind: 'leaf', level: 0, slots: new Array<Uint8Array | undefined>(256).fill(new Uint8Array(0)) };
