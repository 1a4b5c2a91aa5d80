/**
 * On-medium formats of the DeviceExtentStore: the index records it keeps in the MetaStore
 * and the superblock at the start of its device. Every format starts with a version so a
 * later build can read (or refuse to read) what an earlier one wrote.
 *
 Index format 2 (this build), MetaStore keys under the store's prefix P:
 *   P              header, 28 bytes: u8 version | u8[3] zero | u32 allocationUnitBytes | u8[16] storeId | u32 groupUnits
 *   P 01 <fp>      index entry of an extent stored as is, 21 bytes:
 *                    u8 version (2) | u64 byteOffset | u32 byteLength | u64 xxh64 checksum
 *   P 01 <fp>      index entry of an extent stored encoded (compressed at rest), 34 bytes:
 *                    u8 entry version (3) | u64 byteOffset | u32 storedLength | u64 xxh64 of the stored form
 *                    | u8 codec id | u32 rawLength | u64 xxh64 of the content
 *                  Codec id 0 in a version-3 entry: stored as is, and compressing it was tried
 *                  and did not pay (a sender ships it raw without trying again).
 *                  Entry version 3 was added without changing the header, counters or space
 *                  map, so a store written before it opens unchanged (its entries are all
 *                  version 2); a build that predates it refuses a version-3 entry with FORMAT_VERSION.
 *   P 02 <u32be g> bitmap of space group g (groupUnits / 8 bytes; bit = unit in use)
 *   P 03 <u32be g> summary of space group g: u32 free units
 *   P 04           counters, 41 bytes: u8 version | u64 extentCount | u64 extentBytes | u64 usedUnits | u32 cursorGroup | u64 capacityBytes
 * Index format 1 (read only by the upgrade): header (24 bytes, as above without
 * groupUnits) at P and entries (version byte 1) at P <fp>, with no space map: free space
 * was rebuilt by scanning every entry at open, which format 2 exists to avoid.
 * Device superblock (byte 0 of the device), version 1 in both formats, 48 bytes then zero padding:
 *   u8[16] magic | u32 version | u32 allocationUnitBytes | u8[16] storeId | u64 xxh64 of bytes 0-39
 * The storeId ties a device to its index, so pairing a device with another store's
 * index fails at open instead of reading wrong bytes later. Integers are little-endian.
 */
import type { Xxh64 } from '../../core/checksum.js';
import { DrkitError } from '../../core/errors.js';
import { equalBytes, toHex } from '../../core/bytes.js';

/** Version of the index (header, entries, space map, counters) this build writes and reads. */
export const EXTENT_FORMAT_VERSION = 2;
/** The earlier index format, which {@link DeviceExtentStore.upgrade} converts. */
export const EXTENT_FORMAT_V1 = 1;
/** Version of the device superblock (unchanged by index format 2). */
export const SUPERBLOCK_VERSION = 1;

/** Sub-key tags under the store's prefix (format 2). */
export const INDEX_TAG = { entry: 0x01, bitmap: 0x02, summary: 0x03, counters: 0x04 } as const;

/** Bytes reserved for the superblock at the start of the device (before rounding to the allocation unit). */
export const SUPERBLOCK_BYTES = 4096;

const HEADER_V1_BYTES = 24;
const HEADER_BYTES = 28;
const ENTRY_BYTES = 21;
/** Version byte of an entry for an extent kept in encoded (compressed) form. */
export const ENCODED_ENTRY_VERSION = 3;
const ENCODED_ENTRY_BYTES = 34;
const COUNTERS_BYTES = 41;
const SUPERBLOCK_USED_BYTES = 48;
const STORE_ID_BYTES = 16;
/** "drkit-extents" padded with zeros to 16 bytes. */
const MAGIC = new Uint8Array([0x64, 0x72, 0x6b, 0x69, 0x74, 0x2d, 0x65, 0x78, 0x74, 0x65, 0x6e, 0x74, 0x73, 0, 0, 0]);

/** The store-wide record of an index. */
export interface IndexHeader {
  readonly allocationUnitBytes: number;
  readonly storeId: Uint8Array;
  /** Units per space group (format 2; 0 in a format-1 header). */
  readonly groupUnits: number;
}

/** Store-wide counters, committed with every index change. */
export interface IndexCounters {
  readonly extentCount: number;
  readonly extentBytes: number;
  readonly usedUnits: number;
  readonly cursorGroup: number;
  /** Device bytes the space map covered at the commit: a shorter device was truncated or swapped. */
  readonly capacityBytes: number;
}

/** Where one extent lives. */
export interface IndexEntry {
  readonly byteOffset: number;
  /** Bytes the extent occupies on the device (its stored form). */
  readonly byteLength: number;
  /** xxh64 of the stored form (of the content, for an extent stored as is). */
  readonly checksum: bigint;
  /** Set when the extent is stored encoded: codec id, content length, xxh64 of the content. */
  readonly encoded?: { readonly codec: number; readonly rawLength: number; readonly contentChecksum: bigint };
}

/** Content length of an entry's extent. */
export function contentLength(e: IndexEntry): number {
  return e.encoded?.rawLength ?? e.byteLength;
}

/** xxh64 of an entry's extent content. */
export function contentChecksum(e: IndexEntry): bigint {
  return e.encoded?.contentChecksum ?? e.checksum;
}

/** A fresh random store id (not security-relevant: it only tells devices apart). */
export function newStoreId(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(STORE_ID_BYTES));
}

export function encodeHeader(h: IndexHeader): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  const view = new DataView(out.buffer);
  view.setUint8(0, EXTENT_FORMAT_VERSION);
  view.setUint32(4, h.allocationUnitBytes, true);
  out.set(h.storeId, 8);
  view.setUint32(24, h.groupUnits, true);
  return out;
}

/** The header's format version (1 or 2), without decoding the rest. @throws CORRUPTION */
export function headerVersion(value: Uint8Array): number {
  if (value.byteLength === 0) throw corrupt('extent index header', 0);
  return value[0]!;
}

/**
 * Decodes a header of format 2, or of format 1 with `acceptV1` (the upgrade).
 * @throws FORMAT_VERSION (a format-1 header names the upgrade), CORRUPTION
 */
export function decodeHeader(value: Uint8Array, acceptV1 = false): IndexHeader {
  const version = headerVersion(value);
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  if (version === EXTENT_FORMAT_V1 && acceptV1) {
    if (value.byteLength !== HEADER_V1_BYTES) throw corrupt('extent index header', value.byteLength);
    return { allocationUnitBytes: view.getUint32(4, true), storeId: value.slice(8, 8 + STORE_ID_BYTES), groupUnits: 0 };
  }
  if (version === EXTENT_FORMAT_V1) {
    throw new DrkitError('FORMAT_VERSION', 'extent index is format 1; convert it once with DeviceExtentStore.upgrade({ device, meta, keyPrefix })', {
      data: { version, supported: EXTENT_FORMAT_VERSION, upgrade: 'DeviceExtentStore.upgrade' },
    });
  }
  checkVersion(value, 'extent index header');
  if (value.byteLength !== HEADER_BYTES) throw corrupt('extent index header', value.byteLength);
  return { allocationUnitBytes: view.getUint32(4, true), storeId: value.slice(8, 8 + STORE_ID_BYTES), groupUnits: view.getUint32(24, true) };
}

export function encodeCounters(c: IndexCounters): Uint8Array {
  const out = new Uint8Array(COUNTERS_BYTES);
  const view = new DataView(out.buffer);
  view.setUint8(0, EXTENT_FORMAT_VERSION);
  view.setBigUint64(1, BigInt(c.extentCount), true);
  view.setBigUint64(9, BigInt(c.extentBytes), true);
  view.setBigUint64(17, BigInt(c.usedUnits), true);
  view.setUint32(25, c.cursorGroup, true);
  view.setBigUint64(29, BigInt(c.capacityBytes), true);
  return out;
}

/** @throws FORMAT_VERSION, CORRUPTION */
export function decodeCounters(value: Uint8Array): IndexCounters {
  checkVersion(value, 'extent index counters');
  if (value.byteLength !== COUNTERS_BYTES) throw corrupt('extent index counters', value.byteLength);
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  return {
    extentCount: Number(view.getBigUint64(1, true)),
    extentBytes: Number(view.getBigUint64(9, true)),
    usedUnits: Number(view.getBigUint64(17, true)),
    cursorGroup: view.getUint32(25, true),
    capacityBytes: Number(view.getBigUint64(29, true)),
  };
}

/** Entry version 2 for an extent stored as is, version 3 for one stored encoded. */
export function encodeEntry(e: IndexEntry): Uint8Array {
  const out = new Uint8Array(e.encoded === undefined ? ENTRY_BYTES : ENCODED_ENTRY_BYTES);
  const view = new DataView(out.buffer);
  view.setUint8(0, e.encoded === undefined ? EXTENT_FORMAT_VERSION : ENCODED_ENTRY_VERSION);
  view.setBigUint64(1, BigInt(e.byteOffset), true);
  view.setUint32(9, e.byteLength, true);
  view.setBigUint64(13, e.checksum, true);
  if (e.encoded !== undefined) {
    view.setUint8(21, e.encoded.codec);
    view.setUint32(22, e.encoded.rawLength, true);
    view.setBigUint64(26, e.encoded.contentChecksum, true);
  }
  return out;
}

/**
 * Decodes an entry of version `version`; for the current format (the default), version 2
 * and version 3 (encoded) entries are both read.
 * @throws FORMAT_VERSION, CORRUPTION
 */
export function decodeEntry(value: Uint8Array, version: number = EXTENT_FORMAT_VERSION): IndexEntry {
  const encoded = version === EXTENT_FORMAT_VERSION && value[0] === ENCODED_ENTRY_VERSION;
  if (!encoded) checkVersion(value, 'extent index entry', version);
  if (value.byteLength !== (encoded ? ENCODED_ENTRY_BYTES : ENTRY_BYTES)) throw corrupt('extent index entry', value.byteLength);
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const byteOffset = view.getBigUint64(1, true);
  if (byteOffset > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt('extent index entry offset', value.byteLength);
  const byteLength = view.getUint32(9, true);
  const checksum = view.getBigUint64(13, true);
  if (!encoded) return { byteOffset: Number(byteOffset), byteLength, checksum };
  // A literal, not `{ ...entry, encoded }`: V8 gave every spread copy of an object holding a
  // bigint its own hidden class (~200 B each), so cached entries cost twice what the cache
  // counts (measured: 41,166 distinct maps in a serving site's heap, issue #13).
  return { byteOffset: Number(byteOffset), byteLength, checksum, encoded: { codec: view.getUint8(21), rawLength: view.getUint32(22, true), contentChecksum: view.getBigUint64(26, true) } };
}

/** The superblock padded to `paddedBytes` (a multiple of the device alignment). */
export function encodeSuperblock(h: IndexHeader, xxh: Xxh64, paddedBytes: number): Uint8Array {
  const out = new Uint8Array(paddedBytes);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(16, SUPERBLOCK_VERSION, true);
  view.setUint32(20, h.allocationUnitBytes, true);
  out.set(h.storeId, 24);
  view.setBigUint64(40, xxh.hash(out.subarray(0, 40)), true);
  return out;
}

/**
 * Verifies that the device's superblock belongs to the index `h`.
 * @throws CORRUPTION for a missing, damaged or foreign superblock; FORMAT_VERSION for an unknown version
 */
export function checkSuperblock(bytes: Uint8Array, h: IndexHeader, xxh: Xxh64): void {
  if (bytes.byteLength < SUPERBLOCK_USED_BYTES || !equalBytes(bytes.subarray(0, 16), MAGIC)) {
    throw new DrkitError('CORRUPTION', 'device has no drkit extent-store superblock (wrong device for this index?)');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getBigUint64(40, true) !== xxh.hash(bytes.subarray(0, 40))) {
    throw new DrkitError('CORRUPTION', 'device superblock failed its checksum');
  }
  const version = view.getUint32(16, true);
  if (version !== SUPERBLOCK_VERSION) {
    throw new DrkitError('FORMAT_VERSION', `device superblock version ${version} is not supported (this build reads ${SUPERBLOCK_VERSION})`, {
      data: { version },
    });
  }
  const storeId = bytes.subarray(24, 40);
  if (!equalBytes(storeId, h.storeId) || view.getUint32(20, true) !== h.allocationUnitBytes) {
    throw new DrkitError('CORRUPTION', 'device belongs to another extent store than this index', {
      data: { deviceStoreId: toHex(storeId), indexStoreId: toHex(h.storeId) },
    });
  }
}

function checkVersion(value: Uint8Array, what: string, expected: number = EXTENT_FORMAT_VERSION): void {
  const version = value[0];
  if (version === undefined) throw corrupt(what, 0);
  if (version !== expected) {
    throw new DrkitError('FORMAT_VERSION', `${what} version ${version} is not supported (this build reads ${expected})`, {
      data: { version },
    });
  }
}

function corrupt(what: string, byteLength: number): DrkitError {
  return new DrkitError('CORRUPTION', `malformed ${what} (${byteLength} bytes)`, { data: { byteLength } });
}
