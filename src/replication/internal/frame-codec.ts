/**
 * drkit wire frames (protocol v2), see docs/protocol.md.
 *
 * Layout, all integers big-endian:
 *
 * ```
 * 0  magic "DK"        2 B
 * 2  protocol version  u8   (2)
 * 3  frame type        u8
 * 4  flags             u8   (bit 0 MAC: a 16-byte tag follows the payload; other bits must be 0)
 * 5  reserved          u8   (must be 0)
 * 6  sequence number   u32  (per direction, 0 for the first frame, +1 per frame, wraps)
 * 10 payload length    u32  (<= MAX_FRAME_PAYLOAD_BYTES)
 * 14 payload
 *    tag               16 B (only with the MAC flag; see frame-mac.ts)
 *    xxh64             u64  over header + payload + tag
 * ```
 *
 * Trust-boundary promise: a header is fully validated (magic, version, type, flags,
 * reserved, sequence, length bound) before any buffer is allocated for its payload,
 * so a peer can make a decoder commit at most one frame of MAX_FRAME_PAYLOAD_BYTES.
 * On a keyed direction (a pre-shared key), a frame is handed on only once its tag
 * authenticates it (verifyFrameMac): altered, replayed, reordered or injected frames fail.
 */
import { DrkitError } from '../../core/errors.js';
import type { Xxh64 } from '../../core/checksum.js';
import { LWS_FRAME_TYPE } from './lws-frame-types.js';
import { FRAME_MAC_BYTES, type FrameMac } from './frame-mac.js';

/** The two magic bytes that open every frame: ASCII "DK". */
export const FRAME_MAGIC = Object.freeze([0x44, 0x4b] as const);

/** The protocol version this build speaks (the header's version byte). */
export const PROTOCOL_VERSION = 2;

/** Bytes of the fixed frame header. */
export const FRAME_HEADER_BYTES = 14;

/** Bytes of the xxh64 trailer. */
export const FRAME_CHECKSUM_BYTES = 8;

/** Header plus trailer: what a frame without a tag costs beyond its payload. */
export const FRAME_OVERHEAD_BYTES = FRAME_HEADER_BYTES + FRAME_CHECKSUM_BYTES;

/** What an authenticated frame (MAC flag) costs beyond its payload. */
export const MAC_FRAME_OVERHEAD_BYTES = FRAME_OVERHEAD_BYTES + FRAME_MAC_BYTES;

/**
 * Largest payload of one frame: 8 MiB. An EXTENTS frame carries one batch of up to
 * 4 MiB of (compressed) extent data; the other 4 MiB is headroom so that a batch that
 * reaches the target with one more extent (plus per-entry headers) still fits, while a
 * receiver never commits more than 8 MiB to a single frame it has not yet verified.
 */
export const MAX_FRAME_PAYLOAD_BYTES = 8 * 1024 * 1024;

/** Sequence numbers are u32 and wrap: 2^32 frames on one connection is not a bound worth failing on. */
const SEQ_MODULUS = 2 ** 32;

/** Flag bit: the frame carries a FRAME_MAC_BYTES authentication tag after its payload. */
export const FRAME_FLAG_MAC = 0x01;

/** Flag bits defined in v2. Any other set bit is a protocol error, so a later version can give them meaning. */
export const KNOWN_FRAME_FLAGS = FRAME_FLAG_MAC;

/** Frame type numbers of protocol v2. Control (JSON) types are 1-31, binary types 32-63. */
export const FRAME_TYPE = Object.freeze({
  HELLO: 1,
  CHALLENGE: 2,
  AUTH: 3,
  WELCOME: 4,
  ERROR: 5,
  LIST_REQ: 16,
  LIST_RES: 17,
  BEGIN_REQ: 18,
  BEGIN_RES: 19,
  COMMIT_REQ: 20,
  COMMIT_RES: 21,
  PULL_REQ: 22,
  ABORT: 23,
  PRUNE_REQ: 24,
  PRUNE_RES: 25,
  STATUS_REQ: 26,
  STATUS_RES: 27,
  PROMOTE_REQ: 28,
  PROMOTE_RES: 29,
  DEMOTE_REQ: 30,
  DEMOTE_RES: 31,
  HAVE_REQ: 32,
  HAVE_RES: 33,
  EXTENTS: 34,
  EXTENTS_ACK: 35,
  BLOCKS: 36,
  BLOCKS_ACK: 37,
  // 40-49: NearSync (lws-messages.ts)
  ...LWS_FRAME_TYPE,
  // Metro (src/metro, docs/protocol.md section 9): synchronous mirroring, resync, witness leases.
  METRO_ATTACH: 48,
  METRO_ATTACHED: 49,
  METRO_WRITE: 50,
  METRO_ACK: 51,
  METRO_FLUSH: 52,
  METRO_PING: 53,
  METRO_REGION: 54,
  METRO_REGION_ACK: 55,
  METRO_RESYNC_END: 56,
  METRO_IN_SYNC: 57,
  METRO_LEASE_REQ: 58,
  METRO_LEASE_RES: 59,
  METRO_REFUSED: 60,
} as const);

/** Name of a frame type (`'HELLO'`, `'EXTENTS'`, ...). */
export type FrameTypeName = keyof typeof FRAME_TYPE;

/** Number of a frame type. */
export type FrameType = (typeof FRAME_TYPE)[FrameTypeName];

const TYPE_NAMES = new Map<number, FrameTypeName>(Object.entries(FRAME_TYPE).map(([name, n]) => [n, name as FrameTypeName]));

/** The name of frame type `type`, or undefined when this version does not define it. */
export function frameTypeName(type: number): FrameTypeName | undefined {
  return TYPE_NAMES.get(type);
}

/** A validated frame header. */
export interface FrameHeader {
  readonly type: FrameType;
  readonly flags: number;
  readonly seq: number;
  readonly payloadByteLength: number;
}

/** A decoded, checksum-verified (and, on a keyed connection, authenticated) frame. `payload` is owned by the receiver (not a view of transport memory). */
export interface Frame {
  readonly type: FrameType;
  readonly flags: number;
  readonly seq: number;
  readonly payload: Uint8Array;
}

/** The sequence number that follows `seq`. */
export function nextSeq(seq: number): number {
  return (seq + 1) % SEQ_MODULUS;
}

/** Bytes of the tag a frame with these flags carries. */
export function tagBytesOf(flags: number): number {
  return (flags & FRAME_FLAG_MAC) !== 0 ? FRAME_MAC_BYTES : 0;
}

function protocolError(message: string, data: Record<string, unknown>): DrkitError {
  return new DrkitError('PROTOCOL_ERROR', message, { data });
}

/**
 * Validates the first bytes of a header as they arrive, so a non-drkit peer is
 * rejected after 2 bytes instead of after 14. Checks only the bytes present.
 * @throws PROTOCOL_ERROR for bad magic, FORMAT_VERSION for a version other than {@link PROTOCOL_VERSION}
 */
export function checkHeaderPrefix(bytes: Uint8Array, byteCount: number): void {
  if (byteCount >= 1 && bytes[0] !== FRAME_MAGIC[0]) throw protocolError('bad frame magic', { byte: bytes[0] });
  if (byteCount >= 2 && bytes[1] !== FRAME_MAGIC[1]) throw protocolError('bad frame magic', { byte: bytes[1] });
  if (byteCount >= 3 && bytes[2] !== PROTOCOL_VERSION) {
    throw new DrkitError('FORMAT_VERSION', `unsupported protocol version ${bytes[2]} (this build speaks ${PROTOCOL_VERSION})`, {
      data: { version: bytes[2], supported: [PROTOCOL_VERSION] },
    });
  }
}

/**
 * Validates a complete 14-byte header. Run before allocating the payload.
 * @param expectedSeq the sequence number this frame must carry; omit to accept any
 * @throws PROTOCOL_ERROR (magic, type, flags, reserved, sequence, length), FORMAT_VERSION
 */
export function decodeFrameHeader(header: Uint8Array, expectedSeq?: number): FrameHeader {
  if (header.length < FRAME_HEADER_BYTES) throw protocolError('truncated frame header', { byteLength: header.length });
  checkHeaderPrefix(header, FRAME_HEADER_BYTES);
  const view = new DataView(header.buffer, header.byteOffset, FRAME_HEADER_BYTES);
  const typeNumber = view.getUint8(3);
  const flags = view.getUint8(4);
  const reserved = view.getUint8(5);
  const seq = view.getUint32(6);
  const payloadByteLength = view.getUint32(10);
  if (frameTypeName(typeNumber) === undefined) throw protocolError(`unknown frame type ${typeNumber}`, { type: typeNumber });
  if ((flags & ~KNOWN_FRAME_FLAGS) !== 0) throw protocolError(`unknown frame flags 0x${flags.toString(16)}`, { flags });
  if (reserved !== 0) throw protocolError('reserved header byte is not zero', { reserved });
  if (expectedSeq !== undefined && seq !== expectedSeq) {
    throw protocolError(`frame sequence ${seq}, expected ${expectedSeq} (replayed, reordered or lost frame)`, { seq, expectedSeq });
  }
  if (payloadByteLength > MAX_FRAME_PAYLOAD_BYTES) {
    throw protocolError(`frame payload of ${payloadByteLength} bytes exceeds ${MAX_FRAME_PAYLOAD_BYTES}`, {
      payloadByteLength,
      maxPayloadBytes: MAX_FRAME_PAYLOAD_BYTES,
    });
  }
  return { type: typeNumber as FrameType, flags, seq, payloadByteLength };
}

/**
 * Verifies the xxh64 trailer of a complete frame buffer (header + payload + tag + checksum).
 * @throws PROTOCOL_ERROR on mismatch
 */
export function verifyFrameChecksum(xxh64: Xxh64, frame: Uint8Array, header: FrameHeader): void {
  const bodyBytes = FRAME_HEADER_BYTES + header.payloadByteLength + tagBytesOf(header.flags);
  const expected = new DataView(frame.buffer, frame.byteOffset + bodyBytes, FRAME_CHECKSUM_BYTES).getBigUint64(0);
  const actual = xxh64.hash(frame.subarray(0, bodyBytes));
  if (actual !== expected) {
    throw protocolError('frame checksum mismatch', { seq: header.seq, type: header.type, expected: expected.toString(16), actual: actual.toString(16) });
  }
}

/**
 * Checks that a frame carries a tag exactly when its direction is keyed, and verifies the
 * tag (after the checksum, so corruption in transit stays PROTOCOL_ERROR and only a frame
 * that someone re-checksummed reaches this check). `frame` is the whole frame buffer.
 * @throws AUTH_FAILED (a keyed direction and a frame without a tag, or a tag that does not
 *   authenticate it), PROTOCOL_ERROR (a tag on an unkeyed direction)
 */
export function verifyFrameMac(mac: FrameMac | undefined, frame: Uint8Array, header: FrameHeader): void {
  const tagged = (header.flags & FRAME_FLAG_MAC) !== 0;
  if (mac === undefined) {
    if (tagged) throw protocolError('authenticated frame on a connection without frame keys', { seq: header.seq, flags: header.flags });
    return;
  }
  if (!tagged) {
    throw new DrkitError('AUTH_FAILED', `frame ${header.seq} carries no authentication tag on an authenticated connection`, { data: { seq: header.seq, reason: 'frame-mac-missing' } });
  }
  const payloadEnd = FRAME_HEADER_BYTES + header.payloadByteLength;
  mac.verify(frame.subarray(0, FRAME_HEADER_BYTES), frame.subarray(FRAME_HEADER_BYTES, payloadEnd), frame.subarray(payloadEnd, payloadEnd + FRAME_MAC_BYTES), header.seq);
}

/**
 * Decodes one whole frame from `bytes`, which must hold exactly one frame; with `mac`,
 * the frame must carry a tag that `mac` authenticates (the next of its direction).
 * @throws PROTOCOL_ERROR, FORMAT_VERSION, AUTH_FAILED
 */
export function decodeFrame(xxh64: Xxh64, bytes: Uint8Array, expectedSeq?: number, mac?: FrameMac): Frame {
  checkHeaderPrefix(bytes, Math.min(bytes.length, 3));
  const header = decodeFrameHeader(bytes, expectedSeq);
  const frameBytes = FRAME_OVERHEAD_BYTES + tagBytesOf(header.flags) + header.payloadByteLength;
  if (bytes.length !== frameBytes) throw protocolError(`frame of ${bytes.length} bytes, header says ${frameBytes}`, { byteLength: bytes.length, frameBytes });
  verifyFrameChecksum(xxh64, bytes, header);
  verifyFrameMac(mac, bytes, header);
  return { type: header.type, flags: header.flags, seq: header.seq, payload: bytes.slice(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + header.payloadByteLength) };
}

/** What {@link encodeFrame} needs. */
export interface FrameParts {
  readonly type: FrameType;
  /** @defaultValue 0 */
  readonly flags?: number;
  readonly seq: number;
  /** The payload, given in pieces so large messages are copied once, straight into the frame. */
  readonly parts: readonly Uint8Array[];
}

/** Bytes the frame of `parts` takes on the wire; `tagged` when it carries a MAC tag. */
export function frameByteLength(parts: readonly Uint8Array[], tagged: boolean): number {
  let payloadByteLength = 0;
  for (const part of parts) payloadByteLength += part.length;
  return FRAME_OVERHEAD_BYTES + (tagged ? FRAME_MAC_BYTES : 0) + payloadByteLength;
}

/**
 * Builds one frame (header + payload + [tag] + xxh64) in a single buffer: a new one, or
 * the start of `into` when given (at least {@link frameByteLength} bytes; the result is
 * then a view of it, so a writer can recycle its buffers instead of allocating one per
 * frame). With `mac` the MAC flag is set and the tag (the next of `mac`'s direction) is
 * computed over the header and the payload parts themselves, before they are copied.
 * @throws INVALID_ARGUMENT for an unknown type, flags, a bad sequence number, an oversized
 * payload, or an `into` too small (nothing is consumed: the MAC counter does not move)
 */
export function encodeFrame(xxh64: Xxh64, frame: FrameParts, mac?: FrameMac, into?: Uint8Array): Uint8Array {
  const givenFlags = frame.flags ?? 0;
  // The MAC flag means "a tag follows": it is set by passing `mac`, never by hand.
  if ((givenFlags & FRAME_FLAG_MAC) !== 0) throw new DrkitError('INVALID_ARGUMENT', 'the MAC flag is set by passing a FrameMac', { data: { flags: givenFlags } });
  const flags = givenFlags | (mac === undefined ? 0 : FRAME_FLAG_MAC);
  let payloadByteLength = 0;
  for (const part of frame.parts) payloadByteLength += part.length;
  if (frameTypeName(frame.type) === undefined) throw new DrkitError('INVALID_ARGUMENT', `unknown frame type ${String(frame.type)}`, { data: { type: frame.type } });
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~KNOWN_FRAME_FLAGS) !== 0) throw new DrkitError('INVALID_ARGUMENT', `unknown frame flags ${flags}`, { data: { flags } });
  if (!Number.isInteger(frame.seq) || frame.seq < 0 || frame.seq >= SEQ_MODULUS) throw new DrkitError('INVALID_ARGUMENT', `bad sequence number ${frame.seq}`, { data: { seq: frame.seq } });
  if (payloadByteLength > MAX_FRAME_PAYLOAD_BYTES) {
    throw new DrkitError('INVALID_ARGUMENT', `frame payload of ${payloadByteLength} bytes exceeds ${MAX_FRAME_PAYLOAD_BYTES}`, {
      data: { payloadByteLength, maxPayloadBytes: MAX_FRAME_PAYLOAD_BYTES },
    });
  }
  const frameBytes = FRAME_OVERHEAD_BYTES + tagBytesOf(flags) + payloadByteLength;
  if (into !== undefined && into.byteLength < frameBytes) {
    throw new DrkitError('INVALID_ARGUMENT', `a frame of ${frameBytes} bytes does not fit a buffer of ${into.byteLength}`, { data: { frameBytes, byteLength: into.byteLength } });
  }
  const out = into === undefined ? new Uint8Array(frameBytes) : into.subarray(0, frameBytes);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[0] = FRAME_MAGIC[0];
  out[1] = FRAME_MAGIC[1];
  out[2] = PROTOCOL_VERSION;
  out[3] = frame.type;
  out[4] = flags;
  out[5] = 0;
  view.setUint32(6, frame.seq);
  view.setUint32(10, payloadByteLength);
  const tag = mac?.seal(out.subarray(0, FRAME_HEADER_BYTES), frame.parts);
  let at = FRAME_HEADER_BYTES;
  for (const part of frame.parts) {
    out.set(part, at);
    at += part.length;
  }
  if (tag !== undefined) {
    out.set(tag, at);
    at += tag.length;
  }
  view.setBigUint64(at, xxh64.hash(out.subarray(0, at)));
  return out;
}
