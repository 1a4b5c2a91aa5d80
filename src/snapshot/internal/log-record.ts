/**
 * On-device format of the write log's records (format 2). A record starts on a
 * {@link LOG_ALIGN_BYTES} boundary; integers are little-endian:
 *
 *   u32 magic 'DRWL' | u8 version | u8 kind | u16 volumeIdBytes | u32 dataBytes
 *   u64 logId | u64 seq | u64 byteOffset | u32 epoch | u64 flushedSeq (format 2)
 *   | volumeId (utf8) | data | u64 xxh64 of all before
 *
 * `flushedSeq` is the sequence number of the last flush record whose device flush had
 * completed when this record was appended: everything up to it was durable. Recovery uses
 * it to tell bit rot from a torn tail: a record that fails its checksum but is followed by
 * one whose `flushedSeq` covers it was durable, so the log is damaged (`CORRUPTION`), not
 * cut short. Format 1 records (no `flushedSeq`, 40-byte header) are still read.
 *
 * `logId` ties records to the tree that owns the log (a stale record of another tree or
 * an earlier lap has the wrong id or the wrong sequence number); `seq` increases by one
 * per record, so recovery stops at the first record that is not the next one; `epoch`
 * grows with every open of the log and never decreases along the chain, so records an
 * earlier open wrote but never flushed cannot be chained behind newer ones.
 */
import type { Xxh64 } from '../../core/checksum.js';
import { utf8 } from '../../core/bytes.js';

/** Records start on 512-byte boundaries: the sector a torn write can damage. */
export const LOG_ALIGN_BYTES = 512;
/** Format version this build writes; format 1 is read too. */
export const LOG_FORMAT_VERSION = 2;
const MAGIC = 0x4c575244; // 'DRWL' little-endian
/** Header bytes of the records this build writes (format 2). */
export const LOG_HEADER_BYTES = 48;
/** Header bytes by format version. */
const HEADER_BYTES_OF: Readonly<Record<number, number>> = { 1: 40, 2: 48 };
const TRAILER_BYTES = 8;

/** Record kinds. */
export const LOG_KIND = {
  /** Data written to a volume. */
  write: 1,
  /** Everything before it was made durable by a flush: recovery replays up to the last one. */
  flush: 2,
  /** A named point in the write stream across several volumes (a light-weight snapshot). */
  marker: 3,
  /** The rest of the device is unused; the next record starts at byte 0. */
  wrap: 4,
} as const;

/** A decoded record. */
export interface LogRecord {
  readonly kind: number;
  readonly seq: number;
  readonly volumeId: string;
  readonly byteOffset: number;
  readonly data: Uint8Array;
  readonly epoch: number;
  /** The last flush record known durable when this one was appended (0 for format 1). */
  readonly flushedSeq: number;
  /** Bytes the record occupies on the device (aligned). */
  readonly recordBytes: number;
}

/** Bytes a record with these parts occupies, aligned. */
export function recordBytes(volumeIdBytes: number, dataBytes: number, headerBytes: number = LOG_HEADER_BYTES): number {
  const raw = headerBytes + volumeIdBytes + dataBytes + TRAILER_BYTES;
  return Math.ceil(raw / LOG_ALIGN_BYTES) * LOG_ALIGN_BYTES;
}

/** Encodes a record (zero-padded to its aligned size). */
export function encodeRecord(xxh: Xxh64, logId: bigint, epoch: number, r: { kind: number; seq: number; volumeId: string; byteOffset: number; data: Uint8Array; flushedSeq: number }): Uint8Array {
  const id = utf8(r.volumeId);
  const out = new Uint8Array(recordBytes(id.byteLength, r.data.byteLength));
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  out[4] = LOG_FORMAT_VERSION;
  out[5] = r.kind;
  view.setUint16(6, id.byteLength, true);
  view.setUint32(8, r.data.byteLength, true);
  view.setBigUint64(12, logId, true);
  view.setBigUint64(20, BigInt(r.seq), true);
  view.setBigUint64(28, BigInt(r.byteOffset), true);
  view.setUint32(36, epoch, true);
  view.setBigUint64(40, BigInt(r.flushedSeq), true);
  out.set(id, LOG_HEADER_BYTES);
  out.set(r.data, LOG_HEADER_BYTES + id.byteLength);
  const end = LOG_HEADER_BYTES + id.byteLength + r.data.byteLength;
  view.setBigUint64(end, xxh.hash(out.subarray(0, end)), true);
  return out;
}

/**
 * What the header at the start of `head` says: the total aligned size of the record, or
 * undefined when it is not a record of this log with sequence number `seq` (a torn or
 * stale record, or the end of the log).
 */
export function peekRecordBytes(head: Uint8Array, logId: bigint, seq: number, maxDataBytes: number): number | undefined {
  if (head.byteLength < LOG_HEADER_BYTES) return undefined;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const headerBytes = HEADER_BYTES_OF[head[4]!];
  if (view.getUint32(0, true) !== MAGIC || headerBytes === undefined) return undefined;
  if (view.getBigUint64(12, true) !== logId || view.getBigUint64(20, true) !== BigInt(seq)) return undefined;
  const dataBytes = view.getUint32(8, true);
  if (dataBytes > maxDataBytes) return undefined;
  return recordBytes(view.getUint16(6, true), dataBytes, headerBytes);
}

/** Decodes and verifies a whole record; undefined when its checksum fails (torn). */
export function decodeRecord(xxh: Xxh64, bytes: Uint8Array): LogRecord | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerBytes = HEADER_BYTES_OF[bytes[4]!];
  if (headerBytes === undefined) return undefined;
  const idBytes = view.getUint16(6, true);
  const dataBytes = view.getUint32(8, true);
  const end = headerBytes + idBytes + dataBytes;
  if (end + TRAILER_BYTES > bytes.byteLength) return undefined;
  if (view.getBigUint64(end, true) !== xxh.hash(bytes.subarray(0, end))) return undefined;
  const seq = Number(view.getBigUint64(20, true));
  return {
    kind: bytes[5]!,
    seq,
    volumeId: new TextDecoder().decode(bytes.subarray(headerBytes, headerBytes + idBytes)),
    byteOffset: Number(view.getBigUint64(28, true)),
    epoch: view.getUint32(36, true),
    flushedSeq: headerBytes >= 48 ? Number(view.getBigUint64(40, true)) : 0,
    data: bytes.slice(headerBytes + idBytes, end),
    recordBytes: bytes.byteLength,
  };
}
