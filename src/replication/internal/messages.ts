/**
 * Every message of protocol v2, and the glue between messages and frames: a message's
 * `type` is its frame type; control messages carry JSON, binary messages a packed layout
 * (see control-messages.ts, binary-messages.ts and docs/protocol.md).
 */
import { ERROR_CODES, type ErrorCode } from '../../core/error-codes.js';
import { DrkitError } from '../../core/errors.js';
import { decodeBinaryMessage, encodeBinaryMessage, type BinaryMessage } from './binary-messages.js';
import { decodeControlMessage, encodeControlMessage, isControlMessageType, type ControlMessage, type ErrorMessage } from './control-messages.js';
import { decodeLwsMessage, encodeLwsMessage, isLwsMessageType, type LwsMessage } from './lws-messages.js';
import { FRAME_TYPE, frameTypeName, type Frame, type FrameTypeName } from './frame-codec.js';
import type { FrameReader } from './frame-reader.js';
import type { FrameWriteOptions, FrameWriter } from './frame-writer.js';

/** Any message of protocol v2. */
export type Message = ControlMessage | BinaryMessage | LwsMessage;

/** Name of a message type (equal to its frame type name). */
export type MessageType = Message['type'];

/** The message of type `T`. */
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

/**
 * Encodes `message` into payload parts for its frame type.
 * @throws INVALID_ARGUMENT when the message breaks its shape or a bound
 */
export function encodeMessage(message: Message): Uint8Array[] {
  if (isControlMessageType(message.type)) return [encodeControlMessage(message as ControlMessage)];
  if (isLwsMessageType(message.type)) return encodeLwsMessage(message as LwsMessage);
  return encodeBinaryMessage(message as BinaryMessage);
}

/**
 * Decodes the message a verified frame carries.
 * @throws PROTOCOL_ERROR for a malformed or out-of-bounds payload
 */
export function decodeMessage(frame: Frame): Message {
  const type = frameTypeName(frame.type);
  if (type === undefined) throw new DrkitError('PROTOCOL_ERROR', `unknown frame type ${frame.type}`, { data: { type: frame.type } });
  if (isLwsMessageType(type)) return decodeLwsMessage(type, frame.payload);
  // Metro's frames share the framing but are its own messages (src/metro): never replication's.
  if (isMetroFrameType(type)) throw new DrkitError('PROTOCOL_ERROR', `frame type ${type} is not a replication message`, { data: { type: frame.type } });
  return isControlMessageType(type) ? decodeControlMessage(type, frame.payload) : decodeBinaryMessage(type, frame.payload);
}

function isMetroFrameType(type: FrameTypeName): type is Extract<FrameTypeName, `METRO_${string}`> {
  return type.startsWith('METRO_');
}

/**
 * Encodes and writes one message.
 * @throws INVALID_ARGUMENT (nothing written), CONNECTION_LOST and other transport codes, ABORTED
 */
export function writeMessage(writer: FrameWriter, message: Message, options?: FrameWriteOptions): Promise<void> {
  let parts: Uint8Array[];
  try {
    parts = encodeMessage(message);
  } catch (err) {
    return Promise.reject(err);
  }
  return writer.write(FRAME_TYPE[message.type], parts, options);
}

/**
 * Reads and decodes the next message; undefined when the peer closed cleanly.
 * @throws PROTOCOL_ERROR, FORMAT_VERSION, TIMEOUT, CONNECTION_LOST (see FrameReader.read)
 */
export async function readMessage(reader: FrameReader): Promise<Message | undefined> {
  const frame = await reader.read();
  return frame === undefined ? undefined : decodeMessage(frame);
}

/**
 * The DrkitError a received ERROR message stands for: the peer's code when this build
 * knows it (so AUTH_FAILED on one side is AUTH_FAILED on the other), else PROTOCOL_ERROR.
 * `data.fromPeer` is true, which tells `closeWithError` not to echo it back.
 */
export function errorFromPeer(message: ErrorMessage): DrkitError {
  const known = Object.prototype.hasOwnProperty.call(ERROR_CODES, message.code);
  const code: ErrorCode = known ? (message.code as ErrorCode) : 'PROTOCOL_ERROR';
  return new DrkitError(code, `peer reported ${message.code}: ${message.message}`, { data: { fromPeer: true, peerCode: message.code } });
}

/**
 * Reads the next message and insists on its type. An ERROR from the peer becomes
 * {@link errorFromPeer}; anything else unexpected, or the end of the stream, is a protocol error.
 * @throws PROTOCOL_ERROR, the peer's code, and the codes of {@link readMessage}
 */
export async function expectMessage<T extends MessageType>(reader: FrameReader, type: T): Promise<MessageOf<T>> {
  const message = await readMessage(reader);
  if (message === undefined) throw new DrkitError('PROTOCOL_ERROR', `peer closed the connection while ${type} was expected`, { data: { expected: type } });
  if (message.type === type) return message as MessageOf<T>;
  if (message.type === 'ERROR') throw errorFromPeer(message);
  throw new DrkitError('PROTOCOL_ERROR', `expected ${type}, got ${message.type}`, { data: { expected: type, received: message.type } });
}
