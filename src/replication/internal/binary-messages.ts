/**
 * Binary messages of protocol v2: the bulk of a replication (have-queries, extents, block
 * mappings) and their acknowledgements. Big-endian; every count and length is checked
 * against its named bound and against the bytes actually present before anything is
 * allocated for it. Fingerprints are 32 bytes (SHA-256) in protocol v2.
 */
import { DrkitError } from '../../core/errors.js';
import { CODEC_RAW, MAX_CODEC_RAW_BYTES, isCodecId, type CodecId } from '../../dedup/index.js';
import { ByteCursor, ByteWriter } from './byte-cursor.js';
import { MAX_FRAME_PAYLOAD_BYTES } from './frame-codec.js';
import { MAX_ID_BYTES, checkId } from './json-shape.js';

/** Fingerprint length in protocol v2: SHA-256, the only fingerprint v2 speaks (a later version may negotiate others). */
export const FINGERPRINT_BYTES = 32;

/** Fingerprints per HAVE_REQ: 4096 x 32 B = 128 KiB, a round trip's worth of blocks without a large frame. */
export const MAX_HAVE_FINGERPRINTS = 4096;

/** Entries per BLOCKS: 4096 x 41 B = 164 KiB; matches the have-query bound so one batch maps to one query. */
export const MAX_BLOCK_ENTRIES = 4096;

/** Largest uncompressed extent: the codec's bound (4 MiB), above the largest block size (1 MiB). */
export const MAX_EXTENT_RAW_BYTES = MAX_CODEC_RAW_BYTES;

/** Bytes before the first EXTENTS entry: batchId u32, count u32. */
export const EXTENTS_HEADER_BYTES = 8;

/** Bytes of an EXTENTS entry before its data: fingerprint, checksum u64, codec u8, rawLength u32, dataLength u32. */
export const EXTENT_ENTRY_HEADER_BYTES = FINGERPRINT_BYTES + 8 + 1 + 4 + 4;

const BLOCK_ENTRY_ZERO_BYTES = 9; // blockIndex u64 + kind u8
const BLOCK_KIND_ZERO = 0;
const BLOCK_KIND_FINGERPRINT = 1;

/** HAVE_REQ: which of these fingerprints does the receiver hold? */
export interface HaveRequest {
  readonly type: 'HAVE_REQ';
  readonly requestId: number;
  readonly fingerprints: readonly Uint8Array[];
}

/** HAVE_RES: one answer per fingerprint, in request order (a bitmap on the wire). */
export interface HaveResponse {
  readonly type: 'HAVE_RES';
  readonly requestId: number;
  readonly have: readonly boolean[];
}

/** One extent on the wire (same shape as ReplicationPort's WireExtent). */
export interface ExtentEntry {
  readonly fingerprint: Uint8Array;
  /** xxh64 of the UNcompressed data. */
  readonly checksum: bigint;
  /** CODEC_RAW (0), CODEC_LZ4 (1) or CODEC_ZSTD (2). */
  readonly codec: number;
  /** Uncompressed length. */
  readonly rawLength: number;
  /** The encoded bytes (equal to the raw bytes for CODEC_RAW). */
  readonly data: Uint8Array;
}

/** EXTENTS: a batch of extents the receiver lacks. */
export interface ExtentsMessage {
  readonly type: 'EXTENTS';
  readonly batchId: number;
  readonly extents: readonly ExtentEntry[];
}

/** EXTENTS_ACK: every extent of the batch is verified (checksum and fingerprint) and stored; durable at the receiver's next checkpoint (docs/protocol.md §5). */
export interface ExtentsAck {
  readonly type: 'EXTENTS_ACK';
  readonly batchId: number;
}

/** One block mapping (same shape as ReplicationPort's WireBlock); `fingerprint` undefined = the block reads as zeros. */
export interface BlockEntry {
  readonly blockIndex: number;
  readonly fingerprint: Uint8Array | undefined;
}

/**
 * BLOCKS: block mappings of one session. Entries are strictly increasing and below
 * `cursorAfter`; `cursorAfter` says every block before it has now been described.
 */
export interface BlocksMessage {
  readonly type: 'BLOCKS';
  readonly batchId: number;
  readonly sessionId: string;
  readonly cursorAfter: number;
  readonly blocks: readonly BlockEntry[];
}

/** BLOCKS_ACK: the session's durable cursor after applying the batch. */
export interface BlocksAck {
  readonly type: 'BLOCKS_ACK';
  readonly batchId: number;
  readonly cursor: number;
}

/** Every binary message. */
export type BinaryMessage = HaveRequest | HaveResponse | ExtentsMessage | ExtentsAck | BlocksMessage | BlocksAck;

/** Names of the binary message types. */
export type BinaryMessageType = BinaryMessage['type'];

const u8 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xff;
const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
const safeU64 = (n: number) => Number.isSafeInteger(n) && n >= 0;

function invalid(type: string, message: string, data: Record<string, unknown> = {}): never {
  throw new DrkitError('INVALID_ARGUMENT', `${type}: ${message}`, { data: { type, ...data } });
}

function checkFingerprint(type: string, fp: unknown, i: number): asserts fp is Uint8Array {
  if (!(fp instanceof Uint8Array) || fp.length !== FINGERPRINT_BYTES) invalid(type, `entry ${i}: fingerprint must be ${FINGERPRINT_BYTES} bytes`);
}

/** Wire bytes of an EXTENTS payload holding `extents` (for sizing batches to one frame). */
export function extentsPayloadByteLength(extents: readonly { readonly data: Uint8Array }[]): number {
  let total = EXTENTS_HEADER_BYTES;
  for (const e of extents) total += EXTENT_ENTRY_HEADER_BYTES + e.data.length;
  return total;
}

/**
 * Splits extents into consecutive batches each of which fits one EXTENTS frame
 * (payload <= MAX_FRAME_PAYLOAD_BYTES). Order is kept.
 * @throws INVALID_ARGUMENT when a single extent cannot fit a frame
 */
export function splitExtentsForFrames<T extends { readonly data: Uint8Array }>(extents: readonly T[]): T[][] {
  const out: T[][] = [];
  let batch: T[] = [];
  let byteLength = EXTENTS_HEADER_BYTES;
  for (const e of extents) {
    const entryBytes = EXTENT_ENTRY_HEADER_BYTES + e.data.length;
    if (EXTENTS_HEADER_BYTES + entryBytes > MAX_FRAME_PAYLOAD_BYTES) invalid('EXTENTS', `an extent of ${e.data.length} encoded bytes cannot fit one frame`);
    if (byteLength + entryBytes > MAX_FRAME_PAYLOAD_BYTES) {
      out.push(batch);
      batch = [];
      byteLength = EXTENTS_HEADER_BYTES;
    }
    batch.push(e);
    byteLength += entryBytes;
  }
  if (batch.length > 0) out.push(batch);
  return out;
}

/**
 * Encodes a binary message as payload parts (large extent data is not copied here;
 * the frame writer copies each part once into the frame).
 * @throws INVALID_ARGUMENT when the message breaks a bound (nothing is sent)
 */
export function encodeBinaryMessage(message: BinaryMessage): Uint8Array[] {
  switch (message.type) {
    case 'HAVE_REQ': {
      const { requestId, fingerprints } = message;
      if (!u32(requestId)) invalid(message.type, 'requestId must be a u32');
      if (fingerprints.length > MAX_HAVE_FINGERPRINTS) invalid(message.type, `${fingerprints.length} fingerprints exceed ${MAX_HAVE_FINGERPRINTS}`);
      const w = new ByteWriter(8 + fingerprints.length * FINGERPRINT_BYTES).u32(requestId).u32(fingerprints.length);
      fingerprints.forEach((fp, i) => {
        checkFingerprint(message.type, fp, i);
        w.raw(fp);
      });
      return [w.bytes];
    }
    case 'HAVE_RES': {
      const { requestId, have } = message;
      if (!u32(requestId)) invalid(message.type, 'requestId must be a u32');
      if (have.length > MAX_HAVE_FINGERPRINTS) invalid(message.type, `${have.length} answers exceed ${MAX_HAVE_FINGERPRINTS}`);
      const w = new ByteWriter(8 + Math.ceil(have.length / 8)).u32(requestId).u32(have.length);
      const bitmap = w.bytes.subarray(8);
      have.forEach((h, i) => {
        if (h) bitmap[i >> 3]! |= 1 << (i & 7);
      });
      return [w.bytes];
    }
    case 'EXTENTS': {
      const { batchId, extents } = message;
      if (!u32(batchId)) invalid(message.type, 'batchId must be a u32');
      if (extents.length === 0) invalid(message.type, 'a batch holds at least one extent');
      const payloadBytes = extentsPayloadByteLength(extents);
      if (payloadBytes > MAX_FRAME_PAYLOAD_BYTES) invalid(message.type, `payload of ${payloadBytes} bytes exceeds ${MAX_FRAME_PAYLOAD_BYTES} (use splitExtentsForFrames)`, { payloadBytes });
      const parts: Uint8Array[] = [new ByteWriter(EXTENTS_HEADER_BYTES).u32(batchId).u32(extents.length).bytes];
      extents.forEach((e, i) => {
        checkFingerprint(message.type, e.fingerprint, i);
        checkExtentLengths(e.codec, e.rawLength, e.data.length, (m) => invalid(message.type, `entry ${i}: ${m}`));
        if (typeof e.checksum !== 'bigint' || e.checksum < 0n || e.checksum > 0xffff_ffff_ffff_ffffn) invalid(message.type, `entry ${i}: checksum must be a u64`);
        parts.push(new ByteWriter(EXTENT_ENTRY_HEADER_BYTES).raw(e.fingerprint).u64(e.checksum).u8(e.codec).u32(e.rawLength).u32(e.data.length).bytes, e.data);
      });
      return parts;
    }
    case 'EXTENTS_ACK':
      if (!u32(message.batchId)) invalid(message.type, 'batchId must be a u32');
      return [new ByteWriter(4).u32(message.batchId).bytes];
    case 'BLOCKS': {
      const { batchId, sessionId, cursorAfter, blocks } = message;
      if (!u32(batchId)) invalid(message.type, 'batchId must be a u32');
      try {
        checkId(sessionId, message.type, 'sessionId');
      } catch (err) {
        invalid(message.type, (err as Error).message);
      }
      if (!safeU64(cursorAfter)) invalid(message.type, 'cursorAfter must be a non-negative safe integer');
      if (blocks.length > MAX_BLOCK_ENTRIES) invalid(message.type, `${blocks.length} entries exceed ${MAX_BLOCK_ENTRIES}`);
      const sessionBytes = new TextEncoder().encode(sessionId);
      let byteLength = 1 + sessionBytes.length + 8 + 4 + 4;
      for (const b of blocks) byteLength += BLOCK_ENTRY_ZERO_BYTES + (b.fingerprint === undefined ? 0 : FINGERPRINT_BYTES);
      const w = new ByteWriter(byteLength).u32(batchId).u8(sessionBytes.length).raw(sessionBytes).u64(cursorAfter).u32(blocks.length);
      let previous = -1;
      blocks.forEach((b, i) => {
        if (!safeU64(b.blockIndex) || b.blockIndex <= previous || b.blockIndex >= cursorAfter) {
          invalid(message.type, `entry ${i}: block indexes must be strictly increasing and below cursorAfter`, { blockIndex: b.blockIndex, cursorAfter });
        }
        previous = b.blockIndex;
        w.u64(b.blockIndex);
        if (b.fingerprint === undefined) w.u8(BLOCK_KIND_ZERO);
        else {
          checkFingerprint(message.type, b.fingerprint, i);
          w.u8(BLOCK_KIND_FINGERPRINT).raw(b.fingerprint);
        }
      });
      return [w.bytes];
    }
    case 'BLOCKS_ACK':
      if (!u32(message.batchId)) invalid(message.type, 'batchId must be a u32');
      if (!safeU64(message.cursor)) invalid(message.type, 'cursor must be a non-negative safe integer');
      return [new ByteWriter(12).u32(message.batchId).u64(message.cursor).bytes];
  }
}

/** The length rules of one extent entry, shared by encoder and decoder. */
function checkExtentLengths(codec: number, rawLength: number, dataLength: number, fail: (message: string) => never): void {
  if (!u8(codec) || !isCodecId(codec)) fail(`unknown codec ${codec}`);
  if (!u32(rawLength) || rawLength > MAX_EXTENT_RAW_BYTES) fail(`rawLength ${rawLength} exceeds ${MAX_EXTENT_RAW_BYTES}`);
  // The sender keeps lz4 output only when it is smaller (passthrough otherwise), so
  // encoded data never exceeds rawLength: a bound the receiver can check before decoding.
  if (codec === CODEC_RAW && dataLength !== rawLength) fail(`raw data of ${dataLength} bytes, rawLength ${rawLength}`);
  if (codec !== CODEC_RAW && (dataLength === 0 || dataLength > rawLength)) fail(`codec ${codec} data of ${dataLength} bytes for rawLength ${rawLength}`);
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes and validates a binary message payload. Byte fields are views into `payload`
 * (which the frame reader allocated for this frame alone).
 * @throws PROTOCOL_ERROR for anything malformed, oversized or out of bounds
 */
export function decodeBinaryMessage(type: BinaryMessageType, payload: Uint8Array): BinaryMessage {
  const c = new ByteCursor(payload, type);
  switch (type) {
    case 'HAVE_REQ': {
      const requestId = c.u32('requestId');
      const count = c.u32('count');
      if (count > MAX_HAVE_FINGERPRINTS) c.fail(`${count} fingerprints exceed ${MAX_HAVE_FINGERPRINTS}`, { count });
      c.need(count * FINGERPRINT_BYTES, 'fingerprints');
      const fingerprints: Uint8Array[] = [];
      for (let i = 0; i < count; i++) fingerprints.push(c.bytes(FINGERPRINT_BYTES, 'fingerprint'));
      c.end();
      return { type, requestId, fingerprints };
    }
    case 'HAVE_RES': {
      const requestId = c.u32('requestId');
      const count = c.u32('count');
      if (count > MAX_HAVE_FINGERPRINTS) c.fail(`${count} answers exceed ${MAX_HAVE_FINGERPRINTS}`, { count });
      const bitmap = c.bytes(Math.ceil(count / 8), 'bitmap');
      c.end();
      if (count % 8 !== 0 && (bitmap[bitmap.length - 1]! >> (count % 8)) !== 0) c.fail('bitmap padding bits are not zero');
      const have: boolean[] = [];
      for (let i = 0; i < count; i++) have.push((bitmap[i >> 3]! & (1 << (i & 7))) !== 0);
      return { type, requestId, have };
    }
    case 'EXTENTS': {
      const batchId = c.u32('batchId');
      const count = c.u32('count');
      if (count === 0) c.fail('a batch holds at least one extent');
      // Each entry needs at least its header: a lying count fails here, before the array grows.
      c.need(count * EXTENT_ENTRY_HEADER_BYTES, 'entries');
      const extents: ExtentEntry[] = [];
      for (let i = 0; i < count; i++) {
        const fingerprint = c.bytes(FINGERPRINT_BYTES, 'fingerprint');
        const checksum = c.u64('checksum');
        const codec = c.u8('codec') as CodecId;
        const rawLength = c.u32('rawLength');
        const dataLength = c.u32('dataLength');
        checkExtentLengths(codec, rawLength, dataLength, (m) => c.fail(`entry ${i}: ${m}`, { entry: i }));
        extents.push({ fingerprint, checksum, codec, rawLength, data: c.bytes(dataLength, 'data') });
      }
      c.end();
      return { type, batchId, extents };
    }
    case 'EXTENTS_ACK': {
      const batchId = c.u32('batchId');
      c.end();
      return { type, batchId };
    }
    case 'BLOCKS': {
      const batchId = c.u32('batchId');
      const sessionByteLength = c.u8('sessionIdLength');
      if (sessionByteLength > MAX_ID_BYTES) c.fail(`sessionId of ${sessionByteLength} bytes exceeds ${MAX_ID_BYTES}`);
      let sessionId: string;
      try {
        sessionId = checkId(utf8Decoder.decode(c.bytes(sessionByteLength, 'sessionId')), type, 'sessionId');
      } catch (err) {
        return c.fail(`bad sessionId: ${(err as Error).message}`);
      }
      const cursorAfter = c.safeU64('cursorAfter');
      const count = c.u32('count');
      if (count > MAX_BLOCK_ENTRIES) c.fail(`${count} entries exceed ${MAX_BLOCK_ENTRIES}`, { count });
      c.need(count * BLOCK_ENTRY_ZERO_BYTES, 'entries');
      const blocks: BlockEntry[] = [];
      let previous = -1;
      for (let i = 0; i < count; i++) {
        const blockIndex = c.safeU64('blockIndex');
        if (blockIndex <= previous || blockIndex >= cursorAfter) c.fail(`entry ${i}: block indexes must be strictly increasing and below cursorAfter`, { blockIndex, cursorAfter });
        previous = blockIndex;
        const kind = c.u8('kind');
        if (kind === BLOCK_KIND_ZERO) blocks.push({ blockIndex, fingerprint: undefined });
        else if (kind === BLOCK_KIND_FINGERPRINT) blocks.push({ blockIndex, fingerprint: c.bytes(FINGERPRINT_BYTES, 'fingerprint') });
        else c.fail(`entry ${i}: unknown block kind ${kind}`);
      }
      c.end();
      return { type, batchId, sessionId, cursorAfter, blocks };
    }
    case 'BLOCKS_ACK': {
      const batchId = c.u32('batchId');
      const cursor = c.safeU64('cursor');
      c.end();
      return { type, batchId, cursor };
    }
  }
}
