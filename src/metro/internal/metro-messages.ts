/**
 * Metro's messages (docs/protocol.md section 9), carried in replication's v2 frames
 * (checksummed, sequenced, authenticated under the pre-shared key once the handshake
 * keyed the connection): one framing, Metro's own message set.
 *
 * Trust-boundary promise: every payload is decoded through a bounds-checked cursor or a
 * shape-checked JSON reader; a malformed, oversized or unexpected message is a
 * PROTOCOL_ERROR and the connection is closed by the caller. Region payloads carry the
 * sender's SHA-256 of the bytes, which the receiver checks before writing them.
 */
import { DrkitError } from '../../core/errors.js';
import { ByteCursor, ByteWriter } from '../../replication/internal/byte-cursor.js';
import { FRAME_TYPE, frameTypeName, type Frame } from '../../replication/internal/frame-codec.js';
import { decodeMessage, errorFromPeer } from '../../replication/internal/messages.js';
import type { FrameReader } from '../../replication/internal/frame-reader.js';
import type { FrameWriter } from '../../replication/internal/frame-writer.js';
import { MAX_CONTROL_PAYLOAD_BYTES, parseJsonPayload, type Fields } from '../../replication/internal/json-shape.js';

/** Bytes of a region fingerprint (SHA-256). */
export const REGION_FINGERPRINT_BYTES = 32;

/**
 * Largest data of one METRO_WRITE or METRO_REGION frame: 4 MiB, so a frame stays well
 * under the framing's 8 MiB payload bound; larger writes are split (in order).
 */
export const MAX_METRO_DATA_BYTES = 4 * 1024 * 1024;

/** Metro message types (frame type names). */
export type MetroFrameName = Extract<keyof typeof FRAME_TYPE, `METRO_${string}`>;

/** A decoded Metro frame: its name and a cursor over its payload. */
export interface MetroFrame {
  readonly name: MetroFrameName;
  readonly payload: Uint8Array;
}

const encoder = new TextEncoder();

/** Writes a JSON message of frame type `name`. */
export function writeJson(writer: FrameWriter, name: MetroFrameName, body: Record<string, unknown>): Promise<void> {
  const bytes = encoder.encode(JSON.stringify(body));
  if (bytes.length > MAX_CONTROL_PAYLOAD_BYTES) return Promise.reject(new DrkitError('INVALID_ARGUMENT', `${name} of ${bytes.length} bytes exceeds ${MAX_CONTROL_PAYLOAD_BYTES}`));
  return writer.write(FRAME_TYPE[name], [bytes]);
}

/** Parses the JSON payload of a Metro frame. @throws PROTOCOL_ERROR */
export function jsonOf(frame: MetroFrame): Fields {
  if (frame.payload.length > MAX_CONTROL_PAYLOAD_BYTES) throw new DrkitError('PROTOCOL_ERROR', `${frame.name} of ${frame.payload.length} bytes exceeds ${MAX_CONTROL_PAYLOAD_BYTES}`);
  return parseJsonPayload(frame.payload, frame.name);
}

/** The Metro name of `frame`. @throws PROTOCOL_ERROR for a frame that is not Metro's; the peer's code for an ERROR frame */
export function metroFrame(frame: Frame): MetroFrame {
  if (frame.type === FRAME_TYPE.ERROR) {
    const message = decodeMessage(frame);
    throw message.type === 'ERROR' ? errorFromPeer(message) : new DrkitError('PROTOCOL_ERROR', 'malformed ERROR frame');
  }
  const name = frameTypeName(frame.type);
  if (name === undefined || !name.startsWith('METRO_')) throw new DrkitError('PROTOCOL_ERROR', `frame type ${name ?? frame.type} is not a Metro message`, { data: { type: frame.type } });
  return { name: name as MetroFrameName, payload: frame.payload };
}

/** Reads the next Metro frame, undefined at a clean end of stream. */
export async function readMetro(reader: FrameReader): Promise<MetroFrame | undefined> {
  const frame = await reader.read();
  return frame === undefined ? undefined : metroFrame(frame);
}

/** Reads the next frame and requires it to be `name` (a METRO_REFUSED becomes its coded error). */
export async function expectMetro(reader: FrameReader, name: MetroFrameName): Promise<MetroFrame> {
  const frame = await readMetro(reader);
  if (frame === undefined) throw new DrkitError('CONNECTION_LOST', `peer closed the connection while ${name} was expected`);
  if (frame.name === 'METRO_REFUSED') throw refusalOf(frame);
  if (frame.name !== name) throw new DrkitError('PROTOCOL_ERROR', `expected ${name}, got ${frame.name}`);
  return frame;
}

/** Codes a peer may refuse with (anything else arrives as PROTOCOL_ERROR). */
const REFUSAL_CODES = ['STALE_GENERATION', 'DIVERGED', 'INVALID_ARGUMENT', 'AUTH_FAILED', 'CORRUPTION', 'BUSY'] as const;

/** Sends METRO_REFUSED with `code` and a message. */
export function writeRefusal(writer: FrameWriter, code: (typeof REFUSAL_CODES)[number], message: string, term: number): Promise<void> {
  return writeJson(writer, 'METRO_REFUSED', { code, message: message.slice(0, 1000), term });
}

/** The coded error a METRO_REFUSED carries. */
export function refusalOf(frame: MetroFrame): DrkitError {
  const f = jsonOf(frame);
  const code = f.oneOf('code', REFUSAL_CODES);
  return new DrkitError(code, `peer refused: ${f.text('message', 0, 1000)}`, { data: { fromPeer: true, peerTerm: f.integer('term', 0, Number.MAX_SAFE_INTEGER) } });
}

/** METRO_WRITE: seq u64, byteOffset u64, data. */
export function writeWriteFrame(writer: FrameWriter, seq: number, byteOffset: number, data: Uint8Array): Promise<void> {
  return writer.write(FRAME_TYPE.METRO_WRITE, [new ByteWriter(16).u64(seq).u64(byteOffset).bytes, data]);
}

/** Decodes METRO_WRITE. */
export function decodeWrite(frame: MetroFrame): { seq: number; byteOffset: number; data: Uint8Array } {
  const c = new ByteCursor(frame.payload, frame.name);
  const seq = c.safeU64('seq');
  const byteOffset = c.safeU64('byteOffset');
  if (c.remainingBytes > MAX_METRO_DATA_BYTES) c.fail(`${c.remainingBytes} data bytes exceed ${MAX_METRO_DATA_BYTES}`);
  const data = c.bytes(c.remainingBytes, 'data');
  c.end();
  return { seq, byteOffset, data };
}

/** A frame holding one u64 (METRO_ACK, METRO_FLUSH, METRO_PING). */
export function writeSeqFrame(writer: FrameWriter, name: 'METRO_ACK' | 'METRO_FLUSH' | 'METRO_PING', seq: number): Promise<void> {
  return writer.write(FRAME_TYPE[name], [new ByteWriter(8).u64(seq).bytes]);
}

/** Decodes a one-u64 frame. */
export function decodeSeq(frame: MetroFrame): number {
  const c = new ByteCursor(frame.payload, frame.name);
  const seq = c.safeU64('seq');
  c.end();
  return seq;
}

/** METRO_REGION / METRO_REGION_ACK: regionIndex u32, fingerprint 32 B, data (REGION only). */
export function writeRegionFrame(writer: FrameWriter, name: 'METRO_REGION' | 'METRO_REGION_ACK', regionIndex: number, fingerprint: Uint8Array, data?: Uint8Array): Promise<void> {
  const head = new ByteWriter(4 + REGION_FINGERPRINT_BYTES).u32(regionIndex).raw(fingerprint).bytes;
  return writer.write(FRAME_TYPE[name], data === undefined ? [head] : [head, data]);
}

/** Decodes METRO_REGION / METRO_REGION_ACK. */
export function decodeRegion(frame: MetroFrame): { regionIndex: number; fingerprint: Uint8Array; data: Uint8Array } {
  const c = new ByteCursor(frame.payload, frame.name);
  const regionIndex = c.u32('regionIndex');
  const fingerprint = c.bytes(REGION_FINGERPRINT_BYTES, 'fingerprint');
  if (c.remainingBytes > MAX_METRO_DATA_BYTES) c.fail(`${c.remainingBytes} data bytes exceed ${MAX_METRO_DATA_BYTES}`);
  const data = c.bytes(c.remainingBytes, 'data');
  c.end();
  return { regionIndex, fingerprint, data };
}
