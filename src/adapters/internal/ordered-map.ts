/**
 * An in-memory ordered map from binary-string keys (see `bytesToKey`: JS string order
 * equals unsigned byte order) to values, with O(1) snapshots for consistent iteration.
 *
 * Structure: a copy-on-write B+tree. Why not a Map plus a lazily sorted key array? That
 * design makes inserts O(1) but the first range scan after any insert pays an
 * O(n) merge, and the metadata layers above (block maps, extent index) interleave point
 * writes with small range scans all the time: with 1M keys every such scan would copy a
 * 1M-entry array. The B+tree costs O(log n) per insert (height <= 4 for 1M keys at
 * {@link MAX_NODE_ENTRIES}) and O(log n + k) per scan, with no rebuilds.
 *
 * Snapshot semantics: `snapshot()` freezes the current root by bumping the tree's
 * generation. Every node carries the generation that created it; a mutation clones any
 * node older than the current generation (path copying) before changing it, so a
 * frozen root — and every node reachable from it — never changes again. An iterator
 * over a snapshot therefore sees exactly the entries present when the snapshot was
 * taken, however the map changes meanwhile, and costs nothing when no snapshot is
 * live except one path copy per first write to a leaf after each snapshot.
 */

/**
 * Entries per node before it splits. 64 keeps splices of the key arrays cheap (a few
 * hundred ns) while bounding the height at 4 for a million keys.
 */
const MAX_NODE_ENTRIES = 64;
/** A node smaller than this merges with a neighbour, so deletes cannot leave a sparse tree. */
const MIN_NODE_ENTRIES = MAX_NODE_ENTRIES >> 2;

interface Leaf<V> {
  readonly leaf: true;
  gen: number;
  keys: string[];
  values: V[];
}

interface Branch<V> {
  readonly leaf: false;
  gen: number;
  /** keys[i] <= every key under children[i] < keys[i + 1]; keys[0] is never consulted. */
  keys: string[];
  children: Node<V>[];
}

type Node<V> = Leaf<V> | Branch<V>;

/** A frozen root: a consistent, immutable view of an {@link OrderedMap}. */
export interface OrderedMapSnapshot<V> {
  /** @internal */
  readonly root: Node<V>;
  /** Entries in the view. */
  readonly size: number;
}

/** Bounds on string keys; all given bounds must hold. */
export interface KeyRange {
  gt?: string | undefined;
  gte?: string | undefined;
  lt?: string | undefined;
  lte?: string | undefined;
  /** Descending order. @defaultValue false */
  reverse?: boolean | undefined;
}

/** First index in sorted `keys` whose key is >= `key` (or > `key` when `strict`). */
function searchKeys(keys: readonly string[], key: string, strict: boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const k = keys[mid]!;
    if (k < key || (strict && k === key)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The child of `branch` whose subtree may hold `key`. */
function childIndex<V>(branch: Branch<V>, key: string): number {
  // Last i >= 1 with keys[i] <= key, else 0.
  const i = searchKeys(branch.keys, key, true) - 1;
  return i < 0 ? 0 : i;
}

function entryCount<V>(node: Node<V>): number {
  return node.keys.length;
}

/** A mutable ordered map with cheap snapshots. Not thread-safe (nothing in JS is). */
export class OrderedMap<V> {
  private root: Node<V>;
  private gen = 0;
  /** True when a node of the current generation may be reachable from the root. */
  private dirty = true;
  private count = 0;

  constructor() {
    this.root = { leaf: true, gen: 0, keys: [], values: [] };
  }

  /** Number of entries. */
  get size(): number {
    return this.count;
  }

  /** The value at `key`, or undefined. */
  get(key: string): V | undefined {
    let node = this.root;
    while (!node.leaf) node = node.children[childIndex(node, key)]!;
    const i = searchKeys(node.keys, key, false);
    return node.keys[i] === key ? node.values[i] : undefined;
  }

  /** True when `key` is present. */
  has(key: string): boolean {
    let node = this.root;
    while (!node.leaf) node = node.children[childIndex(node, key)]!;
    const i = searchKeys(node.keys, key, false);
    return node.keys[i] === key;
  }

  /** Sets `key` to `value`; returns the previous value (undefined when new). */
  set(key: string, value: V): V | undefined {
    this.dirty = true;
    const root = this.writable(this.root);
    this.root = root;
    const result = this.insert(root, key, value);
    if (result.split !== undefined) {
      this.root = { leaf: false, gen: this.gen, keys: [root.keys[0] ?? '', result.split.keys[0]!], children: [root, result.split] };
    }
    if (!result.replaced) this.count++;
    return result.previous;
  }

  /** Removes `key`; returns its value, or undefined when absent (the map is then untouched). */
  delete(key: string): V | undefined {
    if (!this.has(key)) return undefined;
    this.dirty = true;
    const root = this.writable(this.root);
    this.root = root;
    const previous = this.remove(root, key);
    this.count--;
    let top: Node<V> = this.root;
    while (!top.leaf && top.children.length === 1) top = top.children[0]!;
    this.root = top;
    return previous;
  }

  /** Removes everything. Snapshots taken before stay intact. */
  clear(): void {
    this.dirty = true;
    this.root = { leaf: true, gen: this.gen, keys: [], values: [] };
    this.count = 0;
  }

  /** Freezes the current contents; later mutations do not affect the returned view. O(1). */
  snapshot(): OrderedMapSnapshot<V> {
    if (this.dirty) {
      this.gen++;
      this.dirty = false;
    }
    return { root: this.root, size: this.count };
  }

  /** Entries of `view` (default: a fresh snapshot) within `range`, in key order. */
  *entries(range: KeyRange = {}, view: OrderedMapSnapshot<V> = this.snapshot()): Generator<[string, V]> {
    yield* range.reverse ? iterateBackward(view.root, range) : iterateForward(view.root, range);
  }

  private writable<N extends Node<V>>(node: N): N {
    if (node.gen === this.gen) return node;
    if (node.leaf) return { leaf: true, gen: this.gen, keys: node.keys.slice(), values: node.values.slice() } as N;
    return { leaf: false, gen: this.gen, keys: node.keys.slice(), children: node.children.slice() } as N;
  }

  private insert(node: Node<V>, key: string, value: V): { previous: V | undefined; replaced: boolean; split?: Node<V> } {
    if (node.leaf) {
      const i = searchKeys(node.keys, key, false);
      if (node.keys[i] === key) {
        const previous = node.values[i];
        node.values[i] = value;
        return { previous, replaced: true };
      }
      node.keys.splice(i, 0, key);
      node.values.splice(i, 0, value);
      if (node.keys.length <= MAX_NODE_ENTRIES) return { previous: undefined, replaced: false };
      const half = node.keys.length >> 1;
      const right: Leaf<V> = { leaf: true, gen: this.gen, keys: node.keys.splice(half), values: node.values.splice(half) };
      return { previous: undefined, replaced: false, split: right };
    }
    const i = childIndex(node, key);
    const child = this.writable(node.children[i]!);
    node.children[i] = child;
    const result = this.insert(child, key, value);
    if (result.split === undefined) return result;
    node.children.splice(i + 1, 0, result.split);
    node.keys.splice(i + 1, 0, result.split.keys[0]!);
    if (node.keys.length <= MAX_NODE_ENTRIES) return { previous: result.previous, replaced: result.replaced };
    const half = node.keys.length >> 1;
    const right: Branch<V> = { leaf: false, gen: this.gen, keys: node.keys.splice(half), children: node.children.splice(half) };
    return { previous: result.previous, replaced: result.replaced, split: right };
  }

  /** Removes a key known to be present under `node` (already writable). */
  private remove(node: Node<V>, key: string): V {
    if (node.leaf) {
      const i = searchKeys(node.keys, key, false);
      const previous = node.values[i]!;
      node.keys.splice(i, 1);
      node.values.splice(i, 1);
      return previous;
    }
    const i = childIndex(node, key);
    const child = this.writable(node.children[i]!);
    node.children[i] = child;
    const previous = this.remove(child, key);
    if (entryCount(child) < MIN_NODE_ENTRIES && node.children.length > 1) this.rebalance(node, i === 0 ? 0 : i - 1);
    return previous;
  }

  /** Merges children `i` and `i + 1` of `parent`, re-splitting evenly when the result is too big. */
  private rebalance(parent: Branch<V>, i: number): void {
    const left = this.writable(parent.children[i]!);
    const right = parent.children[i + 1]!;
    const separator = parent.keys[i + 1]!;
    if (left.leaf && right.leaf) {
      left.keys.push(...right.keys);
      left.values.push(...right.values);
    } else if (!left.leaf && !right.leaf) {
      // right.keys[0] may be stale; the parent's separator is a valid bound for right's first child.
      left.keys.push(separator, ...right.keys.slice(1));
      left.children.push(...right.children);
    }
    parent.children[i] = left;
    if (left.keys.length <= MAX_NODE_ENTRIES) {
      parent.children.splice(i + 1, 1);
      parent.keys.splice(i + 1, 1);
      return;
    }
    const half = left.keys.length >> 1;
    const newRight: Node<V> = left.leaf
      ? { leaf: true, gen: this.gen, keys: left.keys.splice(half), values: left.values.splice(half) }
      : { leaf: false, gen: this.gen, keys: left.keys.splice(half), children: left.children.splice(half) };
    parent.children[i + 1] = newRight;
    parent.keys[i + 1] = newRight.keys[0]!;
  }
}

function* iterateForward<V>(root: Node<V>, range: KeyRange): Generator<[string, V]> {
  const low = range.gte ?? range.gt;
  const lowStrict = range.gte === undefined && range.gt !== undefined;
  const stack: { node: Branch<V>; index: number }[] = [];
  let node = root;
  while (!node.leaf) {
    const index = low === undefined ? 0 : childIndex(node, low);
    stack.push({ node, index });
    node = node.children[index]!;
  }
  let leaf: Leaf<V> = node;
  let pos = low === undefined ? 0 : searchKeys(leaf.keys, low, lowStrict);
  for (;;) {
    for (; pos < leaf.keys.length; pos++) {
      const key = leaf.keys[pos]!;
      if (lowStrict && key === low) continue;
      if (range.lt !== undefined && key >= range.lt) return;
      if (range.lte !== undefined && key > range.lte) return;
      if (range.gt !== undefined && key <= range.gt) continue;
      if (range.gte !== undefined && key < range.gte) continue;
      yield [key, leaf.values[pos]!];
    }
    // Climb to the nearest ancestor with a next child, then descend to its leftmost leaf.
    let top = stack[stack.length - 1];
    while (top !== undefined && top.index + 1 >= top.node.children.length) {
      stack.pop();
      top = stack[stack.length - 1];
    }
    if (top === undefined) return;
    top.index++;
    let next = top.node.children[top.index]!;
    while (!next.leaf) {
      stack.push({ node: next, index: 0 });
      next = next.children[0]!;
    }
    leaf = next;
    pos = 0;
  }
}

function* iterateBackward<V>(root: Node<V>, range: KeyRange): Generator<[string, V]> {
  const high = range.lte ?? range.lt;
  const stack: { node: Branch<V>; index: number }[] = [];
  let node = root;
  while (!node.leaf) {
    const index = high === undefined ? node.children.length - 1 : childIndex(node, high);
    stack.push({ node, index });
    node = node.children[index]!;
  }
  let leaf: Leaf<V> = node;
  let pos = high === undefined ? leaf.keys.length - 1 : searchKeys(leaf.keys, high, true) - 1;
  for (;;) {
    for (; pos >= 0; pos--) {
      const key = leaf.keys[pos]!;
      if (range.gt !== undefined && key <= range.gt) return;
      if (range.gte !== undefined && key < range.gte) return;
      if (range.lt !== undefined && key >= range.lt) continue;
      if (range.lte !== undefined && key > range.lte) continue;
      yield [key, leaf.values[pos]!];
    }
    let top = stack[stack.length - 1];
    while (top !== undefined && top.index === 0) {
      stack.pop();
      top = stack[stack.length - 1];
    }
    if (top === undefined) return;
    top.index--;
    let next = top.node.children[top.index]!;
    while (!next.leaf) {
      stack.push({ node: next, index: next.children.length - 1 });
      next = next.children[next.children.length - 1]!;
    }
    leaf = next;
    pos = leaf.keys.length - 1;
  }
}
