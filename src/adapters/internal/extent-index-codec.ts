/**
 * On-medium formats of the DeviceExtentStore: the index records it keeps in the MetaStore
 * and the superblock at the start of its device. Every format starts with a version so a
 * later build can read (or refuse to read) what an earlier one wrote.
 *
 * Index header (MetaStore key = prefix), version 1, 24 bytes:
 *   u8 version | u8[3] zero | u32 allocationUnitBytes | u8[16] storeId
 * Index entry (MetaStore key = prefix + fingerprint), version 1, 21 bytes:
 *   u8 version | u64 byteOffset | u32 byteLength | u64 xxh64 checksum
 * Device superblock (byte 0 of the device), version 1, 48 bytes then zero padding:
 *   u8[16] magic | u32 version | u32 allocationUnitBytes | u8[16] storeId | u64 xxh64 of bytes 0-39
 * The storeId ties a device to its index, so pairing a device with another store's
 * index fails at open instead of reading wrong bytes later. Integers are little-endian.
 */
import type { Xxh64 } from '../../core/checksum.js';
import { DrkitError } from '../../core/errors.js';
import { equalBytes, toHex } from '../../core/bytes.js';

/** Version of the index header, index entries and superblock this build writes and reads. */
export const EXTENT_FORMAT_VERSION = 1;

/** Bytes reserved for the superblock at the start of the device (before rounding to the allocation unit). */
export const SUPERBLOCK_BYTES = 4096;

const HEADER_BYTES = 24;
const ENTRY_BYTES = 21;
const SUPERBLOCK_USED_BYTES = 48;
const STORE_ID_BYTES = 16;
/** "drkit-extents" padded with zeros to 16 bytes. */
const MAGIC = new Uint8Array([0x64, 0x72, 0x6b, 0x69, 0x74, 0x2d, 0x65, 0x78, 0x74, 0x65, 0x6e, 0x74, 0x73, 0, 0, 0]);

/** The store-wide record of an index. */
export interface IndexHeader {
  readonly allocationUnitBytes: number;
  readonly storeId: Uint8Array;
}

/** Where one extent lives. */
export interface IndexEntry {
  readonly byteOffset: number;
  readonly byteLength: number;
  readonly checksum: bigint;
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
  return out;
}

/** @throws FORMAT_VERSION, CORRUPTION */
export function decodeHeader(value: Uint8Array): IndexHeader {
  checkVersion(value, 'extent index header');
  if (value.byteLength !== HEADER_BYTES) throw corrupt('extent index header', value.byteLength);
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  return { allocationUnitBytes: view.getUint32(4, true), storeId: value.slice(8, 8 + STORE_ID_BYTES) };
}

export function encodeEntry(e: IndexEntry): Uint8Array {
  const out = new Uint8Array(ENTRY_BYTES);
  const view = new DataView(out.buffer);
  view.setUint8(0, EXTENT_FORMAT_VERSION);
  view.setBigUint64(1, BigInt(e.byteOffset), true);
  view.setUint32(9, e.byteLength, true);
  view.setBigUint64(13, e.checksum, true);
  return out;
}

/** @throws FORMAT_VERSION, CORRUPTION */
export function decodeEntry(value: Uint8Array): IndexEntry {
  checkVersion(value, 'extent index entry');
  if (value.byteLength !== ENTRY_BYTES) throw corrupt('extent index entry', value.byteLength);
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const byteOffset = view.getBigUint64(1, true);
  if (byteOffset > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt('extent index entry offset', value.byteLength);
  return { byteOffset: Number(byteOffset), byteLength: view.getUint32(9, true), checksum: view.getBigUint64(13, true) };
}

/** The superblock padded to `paddedBytes` (a multiple of the device alignment). */
export function encodeSuperblock(h: IndexHeader, xxh: Xxh64, paddedBytes: number): Uint8Array {
  const out = new Uint8Array(paddedBytes);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(16, EXTENT_FORMAT_VERSION, true);
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
  if (version !== EXTENT_FORMAT_VERSION) {
    throw new DrkitError('FORMAT_VERSION', `device superblock version ${version} is not supported (this build reads ${EXTENT_FORMAT_VERSION})`, {
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

function checkVersion(value: Uint8Array, what: string): void {
  const version = value[0];
  if (version === undefined) throw corrupt(what, 0);
  if (version !== EXTENT_FORMAT_VERSION) {
    throw new DrkitError('FORMAT_VERSION', `${what} version ${version} is not supported (this build reads ${EXTENT_FORMAT_VERSION})`, {
      data: { version },
    });
  }
}

function corrupt(what: string, byteLength: number): DrkitError {
  return new DrkitError('CORRUPTION', `malformed ${what} (${byteLength} bytes)`, { data: { byteLength } });
}
