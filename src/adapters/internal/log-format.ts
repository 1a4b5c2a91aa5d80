/**
 * On-device format of the LogMetaStore (format version 1). Little-endian throughout.
 *
 * Device layout: superblock slot A at 0, slot B at `slotBytes`, the log region from
 * `2 * slotBytes` to the end of the device. A generation of the log starts at the
 * superblock's `logStart` with snapshot records (the live set at the time the
 * generation was written), one SNAPSHOT_END record, then BATCH records and at most one
 * trailing CLOSE record per session.
 *
 * Record: a {@link RECORD_HEADER_BYTES}-byte header, then `payloadByteLength` bytes.
 *   0 magic u32 | 4 version u16 | 6 type u8 | 7 zero u8 | 8 payloadByteLength u32 |
 *  12 zero u32 | 16 epoch u64 | 24 seq u64 | 32 flushedSeq u64 | 40 payloadChecksum u64 |
 *  48 headerChecksum u64 (xxh64 of bytes 0..48)
 * `epoch` names the superblock-era that wrote the record, so bytes left by an earlier
 * era can never pass for live records. Epochs are never reused: a compaction writes
 * epoch + 1 (and only flips to it once complete), an open seals with epoch + 2 (skipping
 * the epoch a crashed compaction may have left on the device);
 * `flushedSeq` is the highest seq known durable when the record was written, which
 * recovery uses to tell a torn tail from mid-log corruption (see log-recovery.ts).
 *
 * Batch payload: opCount u32, then per op: kind u8 (1 put, 2 del), keyByteLength u32,
 * valueByteLength u32 (0 for del), key, value. Snapshot chunks use the same encoding
 * with puts only. SNAPSHOT_END payload: entryCount u64, liveBytes u64.
 *
 * Superblock (in each slot, rest zero): 0 magic "DRKMSB01" | 8 formatVersion u32 |
 * 12 slotBytes u32 | 16 generation u64 | 24 epoch u64 | 32 logStart u64 | 40 firstSeq u64 |
 * 48 sealedEnd u64 | 56 sealedSeq u64 | 64 checksum u64 (xxh64 of bytes 0..64).
 */
import { DrkitError } from '../../core/errors.js';
import type { Xxh64 } from '../../core/checksum.js';
import type { MetaOp } from '../meta-store.js';
import { MAX_BATCH_BYTES, OP_OVERHEAD_BYTES } from './meta-batch.js';

/** The on-device format this build writes and reads. */
export const LOG_FORMAT_VERSION = 1;
/** Record header magic, "DRKL" read as a little-endian u32. */
export const RECORD_MAGIC = 0x4c4b5244;
/** Bytes of a record header. */
export const RECORD_HEADER_BYTES = 56;
/**
 * Largest record payload: one batch (bounded by {@link MAX_BATCH_BYTES}) plus its op
 * count. Recovery rejects any header claiming more before allocating anything.
 */
export const MAX_RECORD_PAYLOAD_BYTES = MAX_BATCH_BYTES + 4;
/** Bytes of the superblock's meaningful prefix (the rest of the slot is zero). */
export const SUPERBLOCK_BYTES = 72;
/** Minimum bytes of a superblock slot: a page, so one slot never shares a sector with the other. */
export const MIN_SLOT_BYTES = 4096;

const SUPERBLOCK_MAGIC = [0x44, 0x52, 0x4b, 0x4d, 0x53, 0x42, 0x30, 0x31]; // "DRKMSB01"

/** Record types. */
export const RecordType = { BATCH: 1, SNAPSHOT: 2, SNAPSHOT_END: 3, CLOSE: 4 } as const;
export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType];

/** A decoded, checksum-verified record header. */
export interface RecordHeader {
  readonly version: number;
  readonly type: number;
  readonly payloadByteLength: number;
  readonly epoch: number;
  readonly seq: number;
  readonly flushedSeq: number;
  readonly payloadChecksum: bigint;
}

/** A decoded, checksum-verified superblock. */
export interface Superblock {
  readonly generation: number;
  readonly epoch: number;
  readonly logStart: number;
  readonly firstSeq: number;
  /** Records in [logStart, sealedEnd) were verified durable when this superblock was written. */
  readonly sealedEnd: number;
  /** The seq of the first record at or after `sealedEnd`. */
  readonly sealedSeq: number;
}

function getU64(view: DataView, byteOffset: number): number {
  const value = view.getBigUint64(byteOffset, true);
  // Our counters and offsets never pass 2^53; a larger value can only be corruption.
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.NaN : Number(value);
}

/** Writes a record header for `payload` at `out[byteOffset..]`. */
export function writeRecordHeader(
  xxh: Xxh64,
  out: Uint8Array,
  byteOffset: number,
  fields: { type: RecordTypeCode; payloadByteLength: number; epoch: number; seq: number; flushedSeq: number; payloadChecksum: bigint },
): void {
  const view = new DataView(out.buffer, out.byteOffset + byteOffset, RECORD_HEADER_BYTES);
  view.setUint32(0, RECORD_MAGIC, true);
  view.setUint16(4, LOG_FORMAT_VERSION, true);
  view.setUint8(6, fields.type);
  view.setUint8(7, 0);
  view.setUint32(8, fields.payloadByteLength, true);
  view.setUint32(12, 0, true);
  view.setBigUint64(16, BigInt(fields.epoch), true);
  view.setBigUint64(24, BigInt(fields.seq), true);
  view.setBigUint64(32, BigInt(fields.flushedSeq), true);
  view.setBigUint64(40, fields.payloadChecksum, true);
  view.setBigUint64(48, xxh.hash(out.subarray(byteOffset, byteOffset + 48)), true);
}

/**
 * Classifies the {@link RECORD_HEADER_BYTES} bytes at `bytes[byteOffset..]`: 'zero' (never
 * written), 'garbage' (bad magic or header checksum: torn, stale or corrupt), or a header
 * whose checksum holds.
 */
export function readRecordHeader(xxh: Xxh64, bytes: Uint8Array, byteOffset: number): RecordHeader | 'zero' | 'garbage' {
  const view = new DataView(bytes.buffer, bytes.byteOffset + byteOffset, RECORD_HEADER_BYTES);
  if (view.getUint32(0, true) !== RECORD_MAGIC) {
    for (let i = 0; i < RECORD_HEADER_BYTES; i++) if (bytes[byteOffset + i] !== 0) return 'garbage';
    return 'zero';
  }
  if (view.getBigUint64(48, true) !== xxh.hash(bytes.subarray(byteOffset, byteOffset + 48))) return 'garbage';
  return {
    version: view.getUint16(4, true),
    type: view.getUint8(6),
    payloadByteLength: view.getUint32(8, true),
    epoch: getU64(view, 16),
    seq: getU64(view, 24),
    flushedSeq: getU64(view, 32),
    payloadChecksum: view.getBigUint64(40, true),
  };
}

/** Encoded payload bytes of `ops` (validated by `validateBatch`, whose size it returned). */
export function batchPayloadBytes(opsByteLength: number): number {
  return 4 + opsByteLength;
}

/** Encodes validated `ops` into `out[byteOffset..]` (which has {@link batchPayloadBytes} room). */
export function encodeOps(ops: readonly MetaOp[], out: Uint8Array, byteOffset: number): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(byteOffset, ops.length, true);
  let at = byteOffset + 4;
  for (const op of ops) {
    const value = op.kind === 'put' ? op.value : undefined;
    view.setUint8(at, value === undefined ? 2 : 1);
    view.setUint32(at + 1, op.key.length, true);
    view.setUint32(at + 5, value?.length ?? 0, true);
    at += OP_OVERHEAD_BYTES;
    out.set(op.key, at);
    at += op.key.length;
    if (value !== undefined) {
      out.set(value, at);
      at += value.length;
    }
  }
}

/**
 * Decodes a checksum-verified batch or snapshot payload, calling `visit` per op with
 * the key bytes and a copy of the value (undefined for a delete). Every length is
 * checked against the payload before use.
 * @throws CORRUPTION when the payload is malformed
 */
export function decodeOps(payload: Uint8Array, visit: (key: Uint8Array, value: Uint8Array | undefined) => void): void {
  const bad = (why: string): DrkitError => new DrkitError('CORRUPTION', `malformed log record payload: ${why}`);
  if (payload.length < 4) throw bad('too short');
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const opCount = view.getUint32(0, true);
  if (opCount > (payload.length - 4) / OP_OVERHEAD_BYTES) throw bad('op count exceeds payload');
  let at = 4;
  for (let i = 0; i < opCount; i++) {
    if (at + OP_OVERHEAD_BYTES > payload.length) throw bad('op header past end');
    const kind = view.getUint8(at);
    const keyByteLength = view.getUint32(at + 1, true);
    const valueByteLength = view.getUint32(at + 5, true);
    at += OP_OVERHEAD_BYTES;
    if ((kind !== 1 && kind !== 2) || (kind === 2 && valueByteLength !== 0)) throw bad(`op kind ${kind}`);
    if (at + keyByteLength + valueByteLength > payload.length) throw bad('op bytes past end');
    const key = payload.subarray(at, at + keyByteLength);
    at += keyByteLength;
    visit(key, kind === 1 ? payload.slice(at, at + valueByteLength) : undefined);
    at += valueByteLength;
  }
  if (at !== payload.length) throw bad('trailing bytes');
}

/** Encodes a superblock into a zeroed slot buffer of `slotBytes`. */
export function encodeSuperblock(xxh: Xxh64, sb: Superblock, slotBytes: number): Uint8Array {
  const out = new Uint8Array(slotBytes);
  const view = new DataView(out.buffer);
  out.set(SUPERBLOCK_MAGIC, 0);
  view.setUint32(8, LOG_FORMAT_VERSION, true);
  view.setUint32(12, slotBytes, true);
  view.setBigUint64(16, BigInt(sb.generation), true);
  view.setBigUint64(24, BigInt(sb.epoch), true);
  view.setBigUint64(32, BigInt(sb.logStart), true);
  view.setBigUint64(40, BigInt(sb.firstSeq), true);
  view.setBigUint64(48, BigInt(sb.sealedEnd), true);
  view.setBigUint64(56, BigInt(sb.sealedSeq), true);
  view.setBigUint64(64, xxh.hash(out.subarray(0, 64)), true);
  return out;
}

/**
 * Decodes one superblock slot: 'empty' (all zero), 'invalid' (bad magic, checksum or
 * fields), 'unknown-version' (our magic, another format version), or the superblock.
 */
export function decodeSuperblock(xxh: Xxh64, slot: Uint8Array, slotBytes: number): Superblock | 'empty' | 'invalid' | 'unknown-version' {
  if (slot.every((b) => b === 0)) return 'empty';
  for (let i = 0; i < SUPERBLOCK_MAGIC.length; i++) if (slot[i] !== SUPERBLOCK_MAGIC[i]) return 'invalid';
  const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  if (view.getUint32(8, true) !== LOG_FORMAT_VERSION) return 'unknown-version';
  if (view.getBigUint64(64, true) !== xxh.hash(slot.subarray(0, 64))) return 'invalid';
  if (view.getUint32(12, true) !== slotBytes) return 'invalid';
  const sb: Superblock = {
    generation: getU64(view, 16),
    epoch: getU64(view, 24),
    logStart: getU64(view, 32),
    firstSeq: getU64(view, 40),
    sealedEnd: getU64(view, 48),
    sealedSeq: getU64(view, 56),
  };
  if (Object.values(sb).some((v) => Number.isNaN(v)) || sb.sealedEnd < sb.logStart || sb.sealedSeq < sb.firstSeq) return 'invalid';
  return sb;
}
