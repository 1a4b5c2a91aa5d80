/**
 * Encoders and decoders of the NBD messages this server sends and receives. Pure
 * functions over bytes (big-endian, as the protocol is): no sockets, no state, so each
 * is unit-tested by itself. Decoders of client data never throw on bad input: they
 * return `undefined` (or a flag) and the caller picks the protocol's answer.
 */
import { DrkitError } from '../../core/errors.js';
import {
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INFO_NAME,
  NBD_INIT_MAGIC,
  NBD_OPTS_MAGIC,
  NBD_REP_MAGIC,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  EXPORT_NAME_ZEROES_BYTES,
  MAX_NAME_BYTES,
  OPTION_HEADER_BYTES,
  REQUEST_HEADER_BYTES,
  SERVER_GREETING_BYTES,
  SIMPLE_REPLY_BYTES,
} from './protocol.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The newstyle greeting: NBDMAGIC, IHAVEOPT, handshake flags. */
export function encodeGreeting(handshakeFlags: number): Buffer {
  const out = Buffer.alloc(SERVER_GREETING_BYTES);
  out.writeBigUInt64BE(NBD_INIT_MAGIC, 0);
  out.writeBigUInt64BE(NBD_OPTS_MAGIC, 8);
  out.writeUInt16BE(handshakeFlags, 16);
  return out;
}

/** A client option header. */
export interface OptionHeader {
  /** False when the header does not start with IHAVEOPT (the connection must close). */
  readonly magicOk: boolean;
  readonly option: number;
  readonly payloadBytes: number;
}

/** Decodes the 16-byte header of a client option. */
export function decodeOptionHeader(bytes: Uint8Array): OptionHeader {
  const b = asBuffer(bytes, OPTION_HEADER_BYTES);
  return { magicOk: b.readBigUInt64BE(0) === NBD_OPTS_MAGIC, option: b.readUInt32BE(8), payloadBytes: b.readUInt32BE(12) };
}

/** Encodes one option reply: magic, option, reply type, length, payload. */
export function encodeOptionReply(option: number, replyType: number, payload: Uint8Array = EMPTY): Buffer {
  const out = Buffer.alloc(20 + payload.length);
  out.writeBigUInt64BE(NBD_REP_MAGIC, 0);
  out.writeUInt32BE(option >>> 0, 8);
  out.writeUInt32BE(replyType >>> 0, 12);
  out.writeUInt32BE(payload.length, 16);
  out.set(payload, 20);
  return out;
}

/** Payload of an NBD_REP_SERVER reply: the name, then a human-readable description. */
export function encodeServerEntry(name: string, description: string): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const descriptionBytes = Buffer.from(description, 'utf8');
  const out = Buffer.alloc(4 + nameBytes.length + descriptionBytes.length);
  out.writeUInt32BE(nameBytes.length, 0);
  out.set(nameBytes, 4);
  out.set(descriptionBytes, 4 + nameBytes.length);
  return out;
}

/** The request of NBD_OPT_INFO and NBD_OPT_GO. */
export interface InfoRequest {
  readonly name: string;
  readonly infoTypes: readonly number[];
}

/**
 * Decodes the payload of NBD_OPT_INFO / NBD_OPT_GO: name length, name, count, types.
 * @returns undefined when the lengths disagree or the name is not a valid NBD string
 */
export function decodeInfoRequest(payload: Uint8Array): InfoRequest | undefined {
  const b = asBuffer(payload);
  if (b.length < 6) return undefined;
  const nameBytes = b.readUInt32BE(0);
  if (nameBytes > b.length - 6) return undefined;
  const name = decodeName(b.subarray(4, 4 + nameBytes));
  if (name === undefined) return undefined;
  const count = b.readUInt16BE(4 + nameBytes);
  if (b.length !== 6 + nameBytes + 2 * count) return undefined;
  const infoTypes: number[] = [];
  for (let i = 0; i < count; i++) infoTypes.push(b.readUInt16BE(6 + nameBytes + 2 * i));
  return { name, infoTypes };
}

/**
 * Decodes an export name: UTF-8, no NUL, at most 4096 bytes.
 * @returns undefined for anything else
 */
export function decodeName(bytes: Uint8Array): string | undefined {
  if (bytes.length > MAX_NAME_BYTES || bytes.includes(0)) return undefined;
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** NBD_INFO_EXPORT: size and transmission flags. */
export function encodeInfoExport(byteLength: number, transmissionFlags: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(NBD_INFO_EXPORT, 0);
  out.writeBigUInt64BE(BigInt(byteLength), 2);
  out.writeUInt16BE(transmissionFlags, 10);
  return out;
}

/** NBD_INFO_NAME or NBD_INFO_DESCRIPTION: a type, then a string. */
export function encodeInfoText(infoType: typeof NBD_INFO_NAME | typeof NBD_INFO_DESCRIPTION, text: string): Buffer {
  const textBytes = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(2 + textBytes.length);
  out.writeUInt16BE(infoType, 0);
  out.set(textBytes, 2);
  return out;
}

/** NBD_INFO_BLOCK_SIZE: minimum, preferred and maximum payload sizes. */
export function encodeInfoBlockSize(minimumBytes: number, preferredBytes: number, maximumPayloadBytes: number): Buffer {
  const out = Buffer.alloc(14);
  out.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
  out.writeUInt32BE(minimumBytes, 2);
  out.writeUInt32BE(preferredBytes, 6);
  out.writeUInt32BE(maximumPayloadBytes, 10);
  return out;
}

/** The reply that ends NBD_OPT_EXPORT_NAME: size, flags and (unless NO_ZEROES) 124 zero bytes. */
export function encodeExportNameReply(byteLength: number, transmissionFlags: number, zeroes: boolean): Buffer {
  const out = Buffer.alloc(10 + (zeroes ? EXPORT_NAME_ZEROES_BYTES : 0));
  out.writeBigUInt64BE(BigInt(byteLength), 0);
  out.writeUInt16BE(transmissionFlags, 8);
  return out;
}

/** A transmission request header. */
export interface RequestHeader {
  /** False when the header does not start with NBD_REQUEST_MAGIC (the connection must close). */
  readonly magicOk: boolean;
  readonly commandFlags: number;
  readonly type: number;
  /** The client's opaque cookie (a copy), echoed in the reply. */
  readonly cookie: Buffer;
  /** Offset, or -1 when it exceeds Number.MAX_SAFE_INTEGER (past any export's end). */
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** Decodes the 28-byte header of a transmission request. */
export function decodeRequestHeader(bytes: Uint8Array): RequestHeader {
  const b = asBuffer(bytes, REQUEST_HEADER_BYTES);
  const offset = b.readBigUInt64BE(16);
  return {
    magicOk: b.readUInt32BE(0) === NBD_REQUEST_MAGIC,
    commandFlags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    cookie: Buffer.from(b.subarray(8, 16)),
    byteOffset: offset > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(offset),
    byteLength: b.readUInt32BE(24),
  };
}

/** The 16-byte header of a simple reply (read data, if any, follows it). */
export function encodeSimpleReply(error: number, cookie: Uint8Array): Buffer {
  const out = Buffer.alloc(SIMPLE_REPLY_BYTES);
  out.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  out.writeUInt32BE(error >>> 0, 4);
  out.set(cookie.subarray(0, 8), 8);
  return out;
}

const EMPTY = new Uint8Array(0);

function asBuffer(bytes: Uint8Array, exactBytes?: number): Buffer {
  if (exactBytes !== undefined && bytes.length !== exactBytes) {
    // Only our own reader calls these with fixed-size slices: a length mismatch is a bug.
    throw new DrkitError('INTERNAL', `NBD codec: expected ${exactBytes} bytes, got ${bytes.length}`);
  }
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}
