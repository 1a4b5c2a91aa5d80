/**
 * Recovery of a LogMetaStore generation: replays the log into a MemTable and finds the
 * tail.
 *
 * How a torn tail is told from corruption:
 * 1. Sealed prefix. The superblock records `sealedEnd`/`sealedSeq`: every open (after
 *    flushing the device) and every compaction re-writes the superblock so that all
 *    records before the tail it found are "sealed". Every record in [logStart,
 *    sealedEnd) must pass magic, version, header and payload checksums, carry the next
 *    seq and an epoch no newer than the superblock's, and the chain must end exactly at
 *    `sealedEnd` with `sealedSeq`. Any failure there is CORRUPTION: those bytes were
 *    durable and verified once.
 * 2. Unsealed suffix (this session's appends). Its records must carry the superblock's
 *    epoch and consecutive seqs. The scan stops at the first position P (expected seq
 *    S) that fails. A crash can tear or drop only writes issued after the last device
 *    flush, and every record carries `flushedSeq`, the highest seq durable when it was
 *    written. So P is a torn tail unless some later record of this epoch with seq > S
 *    claims `flushedSeq >= S`, which proves S was durable before it was written: then
 *    the failure at P is CORRUPTION. Later records are found by following the header
 *    chain from P when P's header is intact, otherwise by scanning bytewise for a valid
 *    header within one maximal record length of P. A CLOSE record ends the log cleanly
 *    (no scan). A well-formed BATCH/CLOSE record at P with the expected seq but a newer
 *    epoch means a newer superblock was lost: CORRUPTION too.
 * Limits: a corrupt record is detected when a later intact record proves it durable,
 * within one maximal record length (the sealed prefix is always fully checked). A
 * corrupt last-durable record, with nothing written after it, is indistinguishable from
 * a torn write and is dropped as one.
 */
import { DrkitError, throwIfAborted } from '../../core/errors.js';
import { bytesToKey } from '../../core/bytes.js';
import type { Xxh64 } from '../../core/checksum.js';
import type { BlockDevice } from '../block-device.js';
import {
  LOG_FORMAT_VERSION,
  MAX_RECORD_PAYLOAD_BYTES,
  RECORD_HEADER_BYTES,
  RECORD_MAGIC,
  RecordType,
  decodeOps,
  readRecordHeader,
  type RecordHeader,
  type Superblock,
} from './log-format.js';
import type { MemTable } from './mem-table.js';

/**
 * Bytes read per device call during recovery: large reads amortise the ~40 us per call,
 * 4 MiB bounds the buffer.
 */
const READ_CHUNK_BYTES = 4 * 1024 * 1024;

/** Where recovery left the log. */
export interface RecoveredLog {
  /** Byte offset where the next record goes. */
  readonly tail: number;
  /** The seq of the next record. */
  readonly nextSeq: number;
  /** Bytes of the records of this generation (for the compaction trigger). */
  readonly logByteLength: number;
}

/** Serves small reads from one large cached window of the device. */
class WindowReader {
  private window: Uint8Array = new Uint8Array(0);
  private windowStart = 0;

  constructor(
    private readonly device: BlockDevice,
    readonly endByte: number,
    private readonly alignmentBytes: number,
    private readonly signal: AbortSignal | undefined,
  ) {}

  /** `byteLength` bytes at `byteOffset` (caller ensures the range ends by `endByte`). */
  async bytes(byteOffset: number, byteLength: number): Promise<Uint8Array> {
    const at = byteOffset - this.windowStart;
    if (at >= 0 && at + byteLength <= this.window.length) return this.window.subarray(at, at + byteLength);
    throwIfAborted(this.signal);
    // Reads must be aligned; the device length is a multiple of the alignment.
    const start = Math.floor(byteOffset / this.alignmentBytes) * this.alignmentBytes;
    const wanted = Math.max(byteOffset + byteLength - start, READ_CHUNK_BYTES);
    const end = Math.min(Math.ceil((start + wanted) / this.alignmentBytes) * this.alignmentBytes, this.endByte);
    this.window = await this.device.read(start, end - start, { signal: this.signal });
    this.windowStart = start;
    return this.window.subarray(byteOffset - start, byteOffset - start + byteLength);
  }
}

function corruption(message: string, data: Record<string, unknown>): DrkitError {
  return new DrkitError('CORRUPTION', `LogMetaStore: ${message}`, { data });
}

/** Replays the generation `sb` describes into `table` (which must be empty). */
export async function recoverLog(
  device: BlockDevice,
  xxh: Xxh64,
  sb: Superblock,
  table: MemTable,
  signal?: AbortSignal,
): Promise<RecoveredLog> {
  const reader = new WindowReader(device, device.byteLength, device.capabilities.alignmentBytes, signal);
  if (sb.sealedEnd > reader.endByte) throw corruption('superblock points past the device end', { sealedEnd: sb.sealedEnd });
  let pos = sb.logStart;
  let seq = sb.firstSeq;
  let inSnapshot = true;
  let snapshotEntries = 0;
  let lastType = 0;
  for (;;) {
    const sealed = pos < sb.sealedEnd;
    if (pos === sb.sealedEnd && (seq !== sb.sealedSeq || inSnapshot)) {
      throw corruption('sealed log does not end where the superblock says', { byteOffset: pos, seq, sealedSeq: sb.sealedSeq });
    }
    let header: RecordHeader | 'zero' | 'garbage' | 'eof' = 'eof';
    if (pos + RECORD_HEADER_BYTES <= reader.endByte) header = readRecordHeader(xxh, await reader.bytes(pos, RECORD_HEADER_BYTES), 0);
    let problem: string | undefined;
    let payload: Uint8Array | undefined;
    if (typeof header === 'string') problem = header;
    else {
      const limit = sealed ? sb.sealedEnd : reader.endByte;
      if (header.version !== LOG_FORMAT_VERSION) {
        throw new DrkitError('FORMAT_VERSION', `LogMetaStore: record format version ${header.version} is not readable by this build`, {
          data: { byteOffset: pos, version: header.version, supported: LOG_FORMAT_VERSION },
        });
      }
      if (sealed ? header.epoch > sb.epoch : header.epoch !== sb.epoch) problem = 'epoch';
      else if (header.seq !== seq) problem = 'seq';
      else if (header.payloadByteLength > MAX_RECORD_PAYLOAD_BYTES || pos + RECORD_HEADER_BYTES + header.payloadByteLength > limit) {
        problem = 'length';
      } else {
        payload = await reader.bytes(pos + RECORD_HEADER_BYTES, header.payloadByteLength);
        if (xxh.hash(payload) !== header.payloadChecksum) problem = 'payload-checksum';
      }
    }
    if (problem !== undefined) {
      if (sealed) throw corruption(`sealed record fails its ${problem} check`, { byteOffset: pos, seq, problem });
      if (lastType === RecordType.CLOSE) break;
      if (
        typeof header === 'object' &&
        header.epoch > sb.epoch &&
        header.seq === seq &&
        (header.type === RecordType.BATCH || header.type === RecordType.CLOSE)
      ) {
        throw corruption('records of a newer epoch follow the log: a newer superblock was lost', { byteOffset: pos, seq });
      }
      const knownEnd =
        typeof header === 'object' && problem === 'payload-checksum' ? pos + RECORD_HEADER_BYTES + header.payloadByteLength : undefined;
      const proof = await findDurabilityProof(reader, xxh, sb.epoch, pos, seq, knownEnd);
      if (proof !== undefined) {
        throw corruption(`record ${seq} fails its ${problem} check but record ${proof.seq} proves it was durable`, {
          byteOffset: pos,
          seq,
          problem,
          proofSeq: proof.seq,
          proofByteOffset: proof.byteOffset,
        });
      }
      break;
    }
    const h = header as RecordHeader;
    const body = payload!;
    switch (h.type) {
      case RecordType.SNAPSHOT:
        if (!inSnapshot) throw corruption('snapshot record after the snapshot ended', { byteOffset: pos, seq });
        decodeOps(body, (key, value) => {
          if (value === undefined) throw corruption('delete inside a snapshot', { byteOffset: pos, seq });
          table.applyOne('put', bytesToKey(key), value);
          snapshotEntries++;
        });
        break;
      case RecordType.SNAPSHOT_END: {
        if (!inSnapshot || body.length !== 16) throw corruption('misplaced or malformed snapshot end', { byteOffset: pos, seq });
        const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
        if (Number(view.getBigUint64(0, true)) !== snapshotEntries || Number(view.getBigUint64(8, true)) !== table.liveBytes) {
          throw corruption('snapshot is incomplete', { byteOffset: pos, seq, snapshotEntries });
        }
        inSnapshot = false;
        break;
      }
      case RecordType.BATCH:
        if (inSnapshot) throw corruption('batch record inside a snapshot', { byteOffset: pos, seq });
        decodeOps(body, (key, value) => table.applyOne(value === undefined ? 'del' : 'put', bytesToKey(key), value));
        break;
      case RecordType.CLOSE:
        if (inSnapshot || body.length !== 0) throw corruption('misplaced close record', { byteOffset: pos, seq });
        break;
      default:
        throw corruption(`unknown record type ${h.type}`, { byteOffset: pos, seq });
    }
    lastType = h.type;
    pos += RECORD_HEADER_BYTES + h.payloadByteLength;
    seq++;
  }
  if (inSnapshot) throw corruption('generation has no complete snapshot', { byteOffset: pos, seq });
  return { tail: pos, nextSeq: seq, logByteLength: pos - sb.logStart };
}

/**
 * Looks past a failed record (at `byteOffset`, expected seq `seq`) for a record of
 * `epoch` with a higher seq whose `flushedSeq` shows `seq` was durable. Returns it, or
 * undefined when the failure is consistent with a torn tail.
 */
async function findDurabilityProof(
  reader: WindowReader,
  xxh: Xxh64,
  epoch: number,
  byteOffset: number,
  seq: number,
  knownEnd: number | undefined,
): Promise<{ seq: number; byteOffset: number } | undefined> {
  const headerAt = async (at: number): Promise<RecordHeader | undefined> => {
    if (at + RECORD_HEADER_BYTES > reader.endByte) return undefined;
    const h = readRecordHeader(xxh, await reader.bytes(at, RECORD_HEADER_BYTES), 0);
    return typeof h === 'object' && h.epoch === epoch && h.seq > seq ? h : undefined;
  };
  let cursor = knownEnd;
  if (cursor === undefined) {
    // The failed header tells nothing of its length: scan bytewise for the next valid header.
    const scanEnd = Math.min(reader.endByte, byteOffset + RECORD_HEADER_BYTES + MAX_RECORD_PAYLOAD_BYTES);
    for (let at = byteOffset + 1; at + RECORD_HEADER_BYTES <= scanEnd && cursor === undefined; ) {
      const spanBytes = Math.min(READ_CHUNK_BYTES, scanEnd - at);
      const span = await reader.bytes(at, spanBytes);
      const view = new DataView(span.buffer, span.byteOffset, span.byteLength);
      for (let i = 0; i + RECORD_HEADER_BYTES <= span.length; i++) {
        if (view.getUint32(i, true) !== RECORD_MAGIC) continue;
        const h = readRecordHeader(xxh, span, i);
        if (typeof h === 'object' && h.epoch === epoch && h.seq > seq) {
          cursor = at + i;
          break;
        }
      }
      at += Math.max(1, spanBytes - RECORD_HEADER_BYTES + 1);
    }
  }
  // Follow the chain of intact headers; any one claiming `seq` durable is the proof.
  let expected: number | undefined;
  while (cursor !== undefined) {
    const h = await headerAt(cursor);
    if (h === undefined || (expected !== undefined && h.seq !== expected)) return undefined;
    if (h.flushedSeq >= seq) return { seq: h.seq, byteOffset: cursor };
    expected = h.seq + 1;
    cursor += RECORD_HEADER_BYTES + h.payloadByteLength;
  }
  return undefined;
}
