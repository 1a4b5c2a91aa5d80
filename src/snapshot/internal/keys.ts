/**
 * MetaStore key layout of a SnapshotTree. Every key starts with the tree's prefix
 * (so several trees can share one MetaStore) and then one tag byte:
 *
 *   m            tree record (format version, fingerprint algorithm, id counters)
 *   n <u64be>    block-map node
 *   c <u64be>    node reference count (u32le)
 *   e <fp>       extent reference count (u32le)
 *   d <fp>       dead extent: reference count reached zero, delete from the ExtentStore
 *   q <u64be>    node whose reference count reached zero, awaiting reclamation
 *   v <utf8 id>  volume record (JSON)
 *   s <utf8 id>  snapshot record (JSON)
 *
 * Big-endian ids keep nodes in id order for iteration.
 */
import { concatBytes, utf8 } from '../../core/bytes.js';
import { DrkitError } from '../../core/errors.js';

/** Tag bytes, one per record kind. */
export const TAG = {
  tree: 0x6d, // m
  node: 0x6e, // n
  nodeRc: 0x63, // c
  extentRc: 0x65, // e
  deadExtent: 0x64, // d
  freeNode: 0x71, // q
  volume: 0x76, // v
  snapshot: 0x73, // s
} as const;

/** Builds keys under one tree prefix. */
export class TreeKeys {
  readonly prefix: Uint8Array;

  constructor(prefix: Uint8Array) {
    this.prefix = prefix;
  }

  /** Key of the tree record. */
  tree(): Uint8Array {
    return concatBytes([this.prefix, Uint8Array.of(TAG.tree)]);
  }

  /** All keys of one tag (for iteration). */
  tagPrefix(tag: number): Uint8Array {
    return concatBytes([this.prefix, Uint8Array.of(tag)]);
  }

  /** Key of a node-id record of `tag`. */
  id(tag: number, id: number): Uint8Array {
    const out = new Uint8Array(this.prefix.length + 9);
    out.set(this.prefix);
    out[this.prefix.length] = tag;
    const view = new DataView(out.buffer);
    view.setUint32(this.prefix.length + 1, Math.floor(id / 0x1_0000_0000));
    view.setUint32(this.prefix.length + 5, id % 0x1_0000_0000);
    return out;
  }

  /** Key of a fingerprint record of `tag`. */
  fingerprint(tag: number, fingerprint: Uint8Array): Uint8Array {
    return concatBytes([this.prefix, Uint8Array.of(tag), fingerprint]);
  }

  /**
   * Keys of fingerprint records of `tag` for fingerprints given as binary strings
   * (`bytesToKey`), built as views of one buffer: a commit or a settling pass makes tens
   * of thousands, and one allocation costs far less than one per key.
   */
  fingerprintKeys(tag: number, binaryKeys: readonly string[]): Uint8Array[] {
    const head = this.prefix.length + 1;
    let total = 0;
    for (const k of binaryKeys) total += head + k.length;
    const buffer = new Uint8Array(total);
    const out = new Array<Uint8Array>(binaryKeys.length);
    let at = 0;
    for (let i = 0; i < binaryKeys.length; i++) {
      const k = binaryKeys[i]!;
      buffer.set(this.prefix, at);
      buffer[at + this.prefix.length] = tag;
      for (let j = 0; j < k.length; j++) buffer[at + head + j] = k.charCodeAt(j);
      out[i] = buffer.subarray(at, at + head + k.length);
      at += head + k.length;
    }
    return out;
  }

  /** Key of a named (volume / snapshot) record of `tag`. */
  named(tag: number, name: string): Uint8Array {
    return concatBytes([this.prefix, Uint8Array.of(tag), utf8(name)]);
  }

  /** The id part of an id key. */
  idOf(key: Uint8Array): number {
    const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
    const at = this.prefix.length + 1;
    return view.getUint32(at) * 0x1_0000_0000 + view.getUint32(at + 4);
  }

  /** The tail (after prefix and tag) of a key. */
  tail(key: Uint8Array): Uint8Array {
    return key.subarray(this.prefix.length + 1);
  }
}

/** Encodes a reference count. */
export function encodeCount(count: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, count, true);
  return out;
}

/** Encodes reference counts as 4-byte views of one buffer (one allocation per commit, not per count). */
export function encodeCounts(counts: readonly number[]): Uint8Array[] {
  const buffer = new Uint8Array(counts.length * 4);
  const view = new DataView(buffer.buffer);
  return counts.map((count, i) => {
    view.setUint32(i * 4, count, true);
    return buffer.subarray(i * 4, i * 4 + 4);
  });
}

/** Decodes a reference count (undefined -> 0). @throws CORRUPTION for a value under 4 bytes */
export function decodeCount(bytes: Uint8Array | undefined): number {
  if (bytes === undefined) return 0;
  if (bytes.length < 4) throw new DrkitError('CORRUPTION', `reference count of ${bytes.length} bytes`, { data: { byteLength: bytes.length } });
  // Byte arithmetic, not a DataView: a commit decodes tens of thousands of counts.
  return (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24)) >>> 0;
}
