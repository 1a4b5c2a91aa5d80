/**
 * Block-map nodes: the units of the persistent copy-on-write radix tree.
 *
 * The tree has a fixed fan-out of {@link FANOUT} slots per node. A leaf (level 0) maps
 * FANOUT consecutive blocks to extent fingerprints (absent = the block reads as zero);
 * an interior node at level L maps FANOUT child subtrees (absent = an all-zero subtree).
 * Nodes are immutable once shared: a node with a reference count above one is copied
 * before it is changed (shadowing), which is what makes snapshots and clones O(1).
 *
 * On-disk format (version 1), stored as one MetaStore value:
 *   u8 formatVersion | u8 kind (0 leaf, 1 interior) | u8 level | u8 digestBytes (leaf) or 8
 *   32-byte presence bitmap (bit i = slot i present)
 *   payload: present slots in slot order; leaf: digestBytes each; interior: u64le child id
 */
import { DrkitError } from '../../core/errors.js';

/** Slots per node: 256, so a leaf covers 256 blocks and the bitmap is 32 bytes. */
export const FANOUT = 256;
/** Bits of block index consumed per tree level. */
export const FANOUT_BITS = 8;
/** Current node format version. */
export const NODE_FORMAT_VERSION = 1;

const HEADER_BYTES = 4;
const BITMAP_BYTES = FANOUT / 8;

/** A decoded leaf: slot -> fingerprint (undefined = zero block). */
export interface LeafNode {
  readonly kind: 'leaf';
  readonly level: 0;
  readonly slots: (Uint8Array | undefined)[];
}

/** A decoded interior node: slot -> child node id (0 = all-zero subtree). */
export interface InteriorNode {
  readonly kind: 'interior';
  readonly level: number;
  readonly slots: number[];
}

/** Either kind of node. */
export type MapNode = LeafNode | InteriorNode;

/** A fresh empty node at `level`. */
export function emptyNode(level: number): MapNode {
  return level === 0
    ? { kind: 'leaf', level: 0, slots: new Array<Uint8Array | undefined>(FANOUT).fill(undefined) }
    : { kind: 'interior', level, slots: new Array<number>(FANOUT).fill(0) };
}

/** A shallow copy (slots array copied; fingerprints are immutable and shared). */
export function copyNode(node: MapNode): MapNode {
  return node.kind === 'leaf' ? { kind: 'leaf', level: 0, slots: node.slots.slice() } : { kind: 'interior', level: node.level, slots: node.slots.slice() };
}

/**
 * Estimated heap bytes of a decoded node, for cache budgets: the 256-slot array and the
 * object (~2.2 KiB), plus a view object and its share of the payload per fingerprint.
 */
export function nodeHeapBytes(node: MapNode): number {
  return node.kind === 'leaf' ? 2200 + presentCount(node) * 112 : 2200;
}

/** Number of present slots. */
export function presentCount(node: MapNode): number {
  let n = 0;
  if (node.kind === 'leaf') {
    for (const s of node.slots) if (s !== undefined) n++;
  } else {
    for (const s of node.slots) if (s !== 0) n++;
  }
  return n;
}

/** Serialises a node (see the format in this file's header). */
export function encodeNode(node: MapNode, digestBytes: number): Uint8Array {
  const count = presentCount(node);
  const slotBytes = node.kind === 'leaf' ? digestBytes : 8;
  const out = new Uint8Array(HEADER_BYTES + BITMAP_BYTES + count * slotBytes);
  const view = new DataView(out.buffer);
  out[0] = NODE_FORMAT_VERSION;
  out[1] = node.kind === 'leaf' ? 0 : 1;
  out[2] = node.level;
  out[3] = slotBytes;
  let at = HEADER_BYTES + BITMAP_BYTES;
  for (let i = 0; i < FANOUT; i++) {
    if (node.kind === 'leaf') {
      const fp = node.slots[i];
      if (fp === undefined) continue;
      out.set(fp, at);
    } else {
      const child = node.slots[i]!;
      if (child === 0) continue;
      view.setUint32(at, child % 0x1_0000_0000, true);
      view.setUint32(at + 4, Math.floor(child / 0x1_0000_0000), true);
    }
    out[HEADER_BYTES + (i >> 3)]! |= 1 << (i & 7);
    at += slotBytes;
  }
  return out;
}

/**
 * Parses a node, validating every length before use.
 * @throws CORRUPTION for malformed bytes, FORMAT_VERSION for an unknown version
 */
export function decodeNode(bytes: Uint8Array, nodeId: number, digestBytes: number): MapNode {
  const bad = (why: string) => new DrkitError('CORRUPTION', `block-map node ${nodeId}: ${why}`, { data: { nodeId } });
  if (bytes.length < HEADER_BYTES + BITMAP_BYTES) throw bad('truncated header');
  if (bytes[0] !== NODE_FORMAT_VERSION) {
    throw new DrkitError('FORMAT_VERSION', `block-map node ${nodeId} has format version ${bytes[0]}`, { data: { nodeId, version: bytes[0] } });
  }
  const kind = bytes[1];
  const level = bytes[2]!;
  const slotBytes = bytes[3]!;
  if (kind !== 0 && kind !== 1) throw bad(`unknown kind ${kind}`);
  if ((kind === 0) !== (level === 0)) throw bad(`kind ${kind} at level ${level}`);
  if (slotBytes !== (kind === 0 ? digestBytes : 8)) throw bad(`slot size ${slotBytes}`);
  let count = 0;
  for (let i = 0; i < BITMAP_BYTES; i++) {
    let b = bytes[HEADER_BYTES + i]!;
    while (b) {
      count += b & 1;
      b >>= 1;
    }
  }
  if (bytes.length !== HEADER_BYTES + BITMAP_BYTES + count * slotBytes) throw bad(`length ${bytes.length} for ${count} slots`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = HEADER_BYTES + BITMAP_BYTES;
  const present = (i: number) => (bytes[HEADER_BYTES + (i >> 3)]! >> (i & 7)) & 1;
  if (kind === 0) {
    // One copy of the payload, and a view per fingerprint: a view costs far less heap
    // than its own buffer (this is what bounds a cached leaf near 20 KiB, not 50).
    const payload = bytes.slice(at);
    at = 0;
    const slots = new Array<Uint8Array | undefined>(FANOUT).fill(undefined);
    for (let i = 0; i < FANOUT; i++) {
      if (!present(i)) continue;
      slots[i] = payload.subarray(at, at + slotBytes);
      at += slotBytes;
    }
    return { kind: 'leaf', level: 0, slots };
  }
  const slots = new Array<number>(FANOUT).fill(0);
  for (let i = 0; i < FANOUT; i++) {
    if (!present(i)) continue;
    const id = view.getUint32(at, true) + view.getUint32(at + 4, true) * 0x1_0000_0000;
    if (id === 0 || !Number.isSafeInteger(id)) throw bad(`bad child id at slot ${i}`);
    slots[i] = id;
    at += 8;
  }
  return { kind: 'interior', level, slots };
}
