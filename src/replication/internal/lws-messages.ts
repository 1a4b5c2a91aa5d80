/**
 * NearSync messages (frame types 40-45): a light-weight snapshot (LWS) session opened at
 * the target, batches of write-log records between markers, their durable
 * acknowledgements, and the fingerprint query that lets whole-block records ship as
 * references to blocks the target holds. Big-endian, every count and length checked against its named bound
 * and against the bytes present before anything is allocated (see binary-messages.ts for
 * the same rules, docs/protocol.md §9).
 *
 * - LWS_OPEN_REQ (40): requestId u32, sessionId, baseMarkerSeq u64, member count u16,
 *   then per member: volumeId, seedSnapshotId (the source's id of the seed snapshot the
 *   chain starts from; the target finds its copy by origin); then sourceLogId (the source
 *   write log's id: its sequence numbers are comparable only within one log).
 * - LWS_OPEN_RES (41): requestId u32, durableSeq u64 (0 = nothing yet): the resume point.
 * - LWS_BATCH (42): batchId u32, sessionId, count u32, records: kind u8 then
 *   write (0): seq u64, volumeId, byteOffset u64, checksum u64 (xxh64 of the raw bytes),
 *   codec u8 (0 raw, 1 lz4, 2 zstd), rawLength u32, dataLength u32, data; marker (1): seq u64, timeMs u64,
 *   volume count u16, volumeIds; blocks (2): a write of whole blocks, see lws-block-record.ts.
 * - LWS_BATCH_ACK (43): batchId u32, durableSeq u64: every record up to it is durable at the target.
 * - LWS_HAVE_REQ (44): requestId u32, sessionId, digestBytes u8, count u32 (1..MAX_LWS_HAVE_FINGERPRINTS),
 *   fingerprints: which of them the target holds.
 * - LWS_HAVE_RES (45): requestId u32, count u32, bitmap of ceil(count / 8) bytes (bit i of byte
 *   i >> 3, least significant first: fingerprint i is held).
 * Strings are u8 length + UTF-8 (ids, at most MAX_ID_BYTES).
 */
import { DrkitError } from '../../core/errors.js';
import { CODEC_RAW, MAX_CODEC_RAW_BYTES, isCodecId } from '../../dedup/index.js';
import { ByteCursor, ByteWriter } from './byte-cursor.js';
import { MAX_FRAME_PAYLOAD_BYTES } from './frame-codec.js';
import { LWS_FRAME_TYPE } from './lws-frame-types.js';
import { MAX_ID_BYTES, checkId } from './json-shape.js';
import { LWS_BLOCKS_KIND, MAX_LWS_DIGEST_BYTES, decodeLwsBlocks, encodeLwsBlocks, lwsBlocksByteLength, type LwsBlocksRecord } from './lws-block-record.js';

export type { LwsBlock, LwsBlocksRecord } from './lws-block-record.js';

/** Fingerprints per LWS_HAVE_REQ: a batch of 4 MiB holds at most 8192 blocks of 512 bytes. */
export const MAX_LWS_HAVE_FINGERPRINTS = 8192;

/** Records per LWS_BATCH: 4096 x 4 KiB = 16 MiB raw before compression, split further by the frame bound. */
export const MAX_LWS_BATCH_RECORDS = 4096;

/** Volumes per marker and per session: a consistency group of at most 256 volumes (the CG bound of policy). */
export const MAX_LWS_VOLUMES = 256;

/** Largest write record: a log record's data bound (the codec's limit). */
export const MAX_LWS_WRITE_BYTES = MAX_CODEC_RAW_BYTES;

/** Bytes of a write record's fixed fields, besides its volume id and data. */
const WRITE_FIXED_BYTES = 1 + 8 + 1 + 8 + 8 + 1 + 4 + 4;

/** A write of the log, exact byte range. */
export interface LwsWriteRecord {
  readonly kind: 'write';
  readonly seq: number;
  readonly volumeId: string;
  readonly byteOffset: number;
  /** xxh64 of the raw (uncompressed) bytes. */
  readonly checksum: bigint;
  readonly codec: number;
  readonly rawLength: number;
  readonly data: Uint8Array;
}

/** A marker: one crash-consistent point across `volumeIds`. */
export interface LwsMarkerRecord {
  readonly kind: 'marker';
  readonly seq: number;
  /** When the source took it (ms since the epoch, the source's clock). */
  readonly timeMs: number;
  readonly volumeIds: readonly string[];
}

export type LwsRecord = LwsWriteRecord | LwsMarkerRecord | LwsBlocksRecord;

export interface LwsOpenRequest {
  readonly type: 'LWS_OPEN_REQ';
  readonly requestId: number;
  readonly sessionId: string;
  readonly baseMarkerSeq: number;
  readonly members: readonly { readonly volumeId: string; readonly seedSnapshotId: string }[];
  /** The source's write log id (empty when unknown). */
  readonly sourceLogId: string;
}

export interface LwsOpenResponse {
  readonly type: 'LWS_OPEN_RES';
  readonly requestId: number;
  readonly durableSeq: number;
}

export interface LwsBatch {
  readonly type: 'LWS_BATCH';
  readonly batchId: number;
  readonly sessionId: string;
  readonly records: readonly LwsRecord[];
}

export interface LwsBatchAck {
  readonly type: 'LWS_BATCH_ACK';
  readonly batchId: number;
  readonly durableSeq: number;
}

/** Which of `fingerprints` the target holds (asked before a batch's whole-block records are sent). */
export interface LwsHaveRequest {
  readonly type: 'LWS_HAVE_REQ';
  readonly requestId: number;
  readonly sessionId: string;
  readonly fingerprints: readonly Uint8Array[];
}

export interface LwsHaveResponse {
  readonly type: 'LWS_HAVE_RES';
  readonly requestId: number;
  /** Per fingerprint of the request, in order: held by the target. */
  readonly have: readonly boolean[];
}

export type LwsMessage = LwsOpenRequest | LwsOpenResponse | LwsBatch | LwsBatchAck | LwsHaveRequest | LwsHaveResponse;
export type LwsMessageType = LwsMessage['type'];


export function isLwsMessageType(type: string): type is LwsMessageType {
  return Object.prototype.hasOwnProperty.call(LWS_FRAME_TYPE, type);
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

/** Encoded ids, checked once: a batch names the same few volumes thousands of times. 1024 ids bound the cache. */
const MAX_CACHED_IDS = 1024;
const idCache = new Map<string, Uint8Array>();
function cachedId(v: string, what: string): Uint8Array {
  let b = idCache.get(v);
  if (b === undefined) {
    checkId(v, 'LWS_BATCH', what);
    b = enc.encode(v);
    if (idCache.size >= MAX_CACHED_IDS) idCache.clear();
    idCache.set(v, b);
  }
  return b;
}

/** Encoded bytes of one record (for splitting batches under the frame bound). */
export function lwsRecordByteLength(r: LwsRecord): number {
  if (r.kind === 'write') return WRITE_FIXED_BYTES + cachedId(r.volumeId, 'volumeId').length + r.data.length;
  if (r.kind === 'blocks') return lwsBlocksByteLength(r, cachedId(r.volumeId, 'volumeId').length);
  return 1 + 8 + 8 + 2 + r.volumeIds.reduce((n, v) => n + 1 + cachedId(v, 'volumeId').length, 0);
}

/** Bytes of a batch's header besides its session id. */
export const LWS_BATCH_HEADER_BYTES = 4 + 1 + 4;

/** The largest encoded batch: the frame bound. */
export const MAX_LWS_BATCH_BYTES = MAX_FRAME_PAYLOAD_BYTES;

/**
 * Encodes an NearSync message.
 * @throws INVALID_ARGUMENT when it breaks a bound (nothing is sent)
 */
export function encodeLwsMessage(m: LwsMessage): Uint8Array[] {
  const bad = (msg: string): never => {
    throw new DrkitError('INVALID_ARGUMENT', `${m.type}: ${msg}`);
  };
  const id = (v: string, what: string): Uint8Array => {
    try {
      checkId(v, m.type, what);
    } catch (err) {
      bad((err as Error).message);
    }
    return enc.encode(v);
  };
  if (!isU32(m.type === 'LWS_BATCH' || m.type === 'LWS_BATCH_ACK' ? m.batchId : m.requestId)) bad('id must be a u32');
  switch (m.type) {
    case 'LWS_HAVE_REQ': {
      const n = m.fingerprints.length;
      if (n === 0 || n > MAX_LWS_HAVE_FINGERPRINTS) bad(`1..${MAX_LWS_HAVE_FINGERPRINTS} fingerprints`);
      const digestBytes = m.fingerprints[0]!.length;
      if (digestBytes === 0 || digestBytes > MAX_LWS_DIGEST_BYTES || m.fingerprints.some((f) => f.length !== digestBytes)) bad(`fingerprints must share one length in 1..${MAX_LWS_DIGEST_BYTES}`);
      const s = id(m.sessionId, 'sessionId');
      const w = new ByteWriter(4 + 1 + s.length + 1 + 4 + n * digestBytes).u32(m.requestId).u8(s.length).raw(s).u8(digestBytes).u32(n);
      for (const f of m.fingerprints) w.raw(f);
      return [w.bytes];
    }
    case 'LWS_HAVE_RES': {
      const n = m.have.length;
      if (n === 0 || n > MAX_LWS_HAVE_FINGERPRINTS) bad(`1..${MAX_LWS_HAVE_FINGERPRINTS} answers`);
      const bits = new Uint8Array((n + 7) >> 3);
      m.have.forEach((h, i) => {
        if (h) bits[i >> 3]! |= 1 << (i & 7);
      });
      return [new ByteWriter(8 + bits.length).u32(m.requestId).u32(n).raw(bits).bytes];
    }
    case 'LWS_OPEN_REQ': {
      if (!Number.isSafeInteger(m.baseMarkerSeq) || m.baseMarkerSeq < 0) bad('baseMarkerSeq must be a safe integer');
      if (m.members.length === 0 || m.members.length > MAX_LWS_VOLUMES) bad(`1..${MAX_LWS_VOLUMES} members`);
      const s = id(m.sessionId, 'sessionId');
      const members = m.members.map((x) => [id(x.volumeId, 'volumeId'), id(x.seedSnapshotId, 'seedSnapshotId')] as const);
      const log = id(m.sourceLogId, 'sourceLogId');
      const w = new ByteWriter(4 + 1 + s.length + 8 + 2 + members.reduce((n, [a, b]) => n + 2 + a.length + b.length, 0) + 1 + log.length);
      w.u32(m.requestId).u8(s.length).raw(s).u64(m.baseMarkerSeq).u16(members.length);
      for (const [a, b] of members) w.u8(a.length).raw(a).u8(b.length).raw(b);
      w.u8(log.length).raw(log);
      return [w.bytes];
    }
    case 'LWS_OPEN_RES':
    case 'LWS_BATCH_ACK': {
      if (!Number.isSafeInteger(m.durableSeq) || m.durableSeq < 0) bad('durableSeq must be a safe integer');
      return [new ByteWriter(12).u32(m.type === 'LWS_OPEN_RES' ? m.requestId : m.batchId).u64(m.durableSeq).bytes];
    }
    case 'LWS_BATCH': {
      if (m.records.length === 0 || m.records.length > MAX_LWS_BATCH_RECORDS) bad(`1..${MAX_LWS_BATCH_RECORDS} records`);
      const s = id(m.sessionId, 'sessionId');
      const parts: Uint8Array[] = [new ByteWriter(LWS_BATCH_HEADER_BYTES + s.length).u32(m.batchId).u8(s.length).raw(s).u32(m.records.length).bytes];
      let total = parts[0]!.length;
      let previous = 0;
      for (const r of m.records) {
        if (!Number.isSafeInteger(r.seq) || r.seq <= previous) bad('record sequence numbers must increase');
        previous = r.seq;
        if (r.kind === 'write') {
          let v: Uint8Array;
          try {
            v = cachedId(r.volumeId, 'volumeId');
          } catch (err) {
            return bad((err as Error).message);
          }
          if (!Number.isSafeInteger(r.byteOffset) || r.byteOffset < 0) bad('byteOffset must be a safe integer');
          if (!isCodecId(r.codec)) bad(`unknown codec ${r.codec}`);
          if (!isU32(r.rawLength) || r.rawLength === 0 || r.rawLength > MAX_LWS_WRITE_BYTES) bad('rawLength out of bounds');
          if (r.codec === CODEC_RAW && r.data.length !== r.rawLength) bad('raw data must be rawLength bytes');
          const head = new ByteWriter(WRITE_FIXED_BYTES - 4 + v.length).u8(0).u64(r.seq).u8(v.length).raw(v).u64(r.byteOffset).u64(r.checksum).u8(r.codec).u32(r.rawLength);
          parts.push(head.bytes, new ByteWriter(4).u32(r.data.length).bytes, r.data);
          total += head.bytes.length + 4 + r.data.length;
        } else if (r.kind === 'blocks') {
          let v: Uint8Array;
          try {
            v = cachedId(r.volumeId, 'volumeId');
          } catch (err) {
            return bad((err as Error).message);
          }
          const own = encodeLwsBlocks(r, v, bad);
          parts.push(...own);
          total += own.reduce((n, p) => n + p.length, 0);
        } else {
          if (!Number.isSafeInteger(r.timeMs) || r.timeMs < 0) bad('timeMs must be a safe integer');
          if (r.volumeIds.length === 0 || r.volumeIds.length > MAX_LWS_VOLUMES) bad(`a marker names 1..${MAX_LWS_VOLUMES} volumes`);
          const vs = r.volumeIds.map((v) => id(v, 'volumeId'));
          const w = new ByteWriter(1 + 8 + 8 + 2 + vs.reduce((n, v) => n + 1 + v.length, 0)).u8(1).u64(r.seq).u64(r.timeMs).u16(vs.length);
          for (const v of vs) w.u8(v.length).raw(v);
          parts.push(w.bytes);
          total += w.bytes.length;
        }
      }
      if (total > MAX_LWS_BATCH_BYTES) bad(`batch of ${total} bytes exceeds ${MAX_LWS_BATCH_BYTES}`);
      return parts;
    }
  }
}

/**
 * Decodes an NearSync message.
 * @throws PROTOCOL_ERROR for a malformed or out-of-bounds payload
 */
export function decodeLwsMessage(type: LwsMessageType, payload: Uint8Array): LwsMessage {
  const c = new ByteCursor(payload, type);
  const id = (what: string): string => {
    const n = c.u8(`${what}Length`);
    if (n > MAX_ID_BYTES) c.fail(`${what} of ${n} bytes exceeds ${MAX_ID_BYTES}`);
    try {
      return checkId(dec.decode(c.bytes(n, what)), type, what);
    } catch (err) {
      return c.fail(`bad ${what}: ${(err as Error).message}`);
    }
  };
  switch (type) {
    case 'LWS_HAVE_REQ': {
      const requestId = c.u32('requestId');
      const sessionId = id('sessionId');
      const digestBytes = c.u8('digestBytes');
      if (digestBytes === 0 || digestBytes > MAX_LWS_DIGEST_BYTES) c.fail(`digestBytes ${digestBytes} out of 1..${MAX_LWS_DIGEST_BYTES}`);
      const n = c.u32('count');
      if (n === 0 || n > MAX_LWS_HAVE_FINGERPRINTS) c.fail(`${n} fingerprints, 1..${MAX_LWS_HAVE_FINGERPRINTS} allowed`);
      c.need(n * digestBytes, 'fingerprints');
      const fingerprints: Uint8Array[] = [];
      for (let i = 0; i < n; i++) fingerprints.push(c.bytes(digestBytes, 'fingerprint'));
      c.end();
      return { type, requestId, sessionId, fingerprints };
    }
    case 'LWS_HAVE_RES': {
      const requestId = c.u32('requestId');
      const n = c.u32('count');
      if (n === 0 || n > MAX_LWS_HAVE_FINGERPRINTS) c.fail(`${n} answers, 1..${MAX_LWS_HAVE_FINGERPRINTS} allowed`);
      const bits = c.bytes((n + 7) >> 3, 'bitmap');
      c.end();
      const have: boolean[] = [];
      for (let i = 0; i < n; i++) have.push((bits[i >> 3]! & (1 << (i & 7))) !== 0);
      return { type, requestId, have };
    }
    case 'LWS_OPEN_REQ': {
      const requestId = c.u32('requestId');
      const sessionId = id('sessionId');
      const baseMarkerSeq = c.safeU64('baseMarkerSeq');
      const count = c.u16('members');
      if (count === 0 || count > MAX_LWS_VOLUMES) c.fail(`${count} members, 1..${MAX_LWS_VOLUMES} allowed`);
      const members: { volumeId: string; seedSnapshotId: string }[] = [];
      for (let i = 0; i < count; i++) members.push({ volumeId: id('volumeId'), seedSnapshotId: id('seedSnapshotId') });
      const sourceLogId = id('sourceLogId');
      c.end();
      return { type, requestId, sessionId, baseMarkerSeq, members, sourceLogId };
    }
    case 'LWS_OPEN_RES': {
      const requestId = c.u32('requestId');
      const durableSeq = c.safeU64('durableSeq');
      c.end();
      return { type, requestId, durableSeq };
    }
    case 'LWS_BATCH_ACK': {
      const batchId = c.u32('batchId');
      const durableSeq = c.safeU64('durableSeq');
      c.end();
      return { type, batchId, durableSeq };
    }
    case 'LWS_BATCH': {
      const batchId = c.u32('batchId');
      const sessionId = id('sessionId');
      const count = c.u32('count');
      if (count === 0 || count > MAX_LWS_BATCH_RECORDS) c.fail(`${count} records, 1..${MAX_LWS_BATCH_RECORDS} allowed`);
      const records: LwsRecord[] = [];
      let previous = 0;
      for (let i = 0; i < count; i++) {
        const kind = c.u8('kind');
        const seq = c.safeU64('seq');
        if (seq <= previous) c.fail(`record ${i}: sequence numbers must increase`, { seq, previous });
        previous = seq;
        if (kind === 0) {
          const volumeId = id('volumeId');
          const byteOffset = c.safeU64('byteOffset');
          const checksum = c.u64('checksum');
          const codec = c.u8('codec');
          if (!isCodecId(codec)) c.fail(`record ${i}: unknown codec ${codec}`);
          const rawLength = c.u32('rawLength');
          if (rawLength === 0 || rawLength > MAX_LWS_WRITE_BYTES) c.fail(`record ${i}: rawLength ${rawLength} out of bounds`);
          const dataLength = c.u32('dataLength');
          if (codec === CODEC_RAW ? dataLength !== rawLength : dataLength > rawLength + 1024) c.fail(`record ${i}: dataLength ${dataLength} does not fit rawLength ${rawLength}`);
          records.push({ kind: 'write', seq, volumeId, byteOffset, checksum, codec, rawLength, data: c.bytes(dataLength, 'data') });
        } else if (kind === 1) {
          const timeMs = c.safeU64('timeMs');
          const n = c.u16('volumes');
          if (n === 0 || n > MAX_LWS_VOLUMES) c.fail(`record ${i}: a marker names 1..${MAX_LWS_VOLUMES} volumes`);
          const volumeIds: string[] = [];
          for (let k = 0; k < n; k++) volumeIds.push(id('volumeId'));
          records.push({ kind: 'marker', seq, timeMs, volumeIds });
        } else if (kind === LWS_BLOCKS_KIND) {
          records.push(decodeLwsBlocks(c, seq, id('volumeId'), i));
        } else c.fail(`record ${i}: unknown kind ${kind}`);
      }
      c.end();
      return { type, batchId, sessionId, records };
    }
  }
}

function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
}
