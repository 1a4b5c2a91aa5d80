/**
 * FrameWriter: numbers, checksums, authenticates (once keyed) and writes frames on one connection.
 *
 * Ordering promise: frames reach the connection in the order `write()` was called, with
 * consecutive sequence numbers, even when callers do not await each other; each frame is
 * one `connection.write`, so backpressure is the transport's (see Transport contract).
 * Failure promise: after a failed write every later write rejects with the same error
 * (a gap in the sequence would make the peer reject everything after it anyway).
 */
import type { Connection } from '../../adapters/transport.js';
import type { Xxh64 } from '../../core/checksum.js';
import { toDrkitError, type DrkitError } from '../../core/errors.js';
import { encodeFrame, nextSeq, type FrameType } from './frame-codec.js';
import type { FrameMac } from './frame-mac.js';

/** Options of {@link FrameWriter}. */
export interface FrameWriterOptions {
  /** A loaded xxh64 (`await loadXxh64()`). */
  readonly xxh64: Xxh64;
  /** Sequence number of the first frame. @defaultValue 0 */
  readonly firstSeq?: number;
}

/** Per-write options. */
export interface FrameWriteOptions {
  /** @defaultValue 0 (the MAC flag is set by the writer once keyed, never by hand) */
  readonly flags?: number;
  /** Cancels the transport write (the connection is then unusable: the peer saw part of a frame or a gap). */
  readonly signal?: AbortSignal;
}

/** Writes frames, in call order, to one connection. */
export class FrameWriter {
  readonly #connection: Connection;
  readonly #xxh64: Xxh64;
  #seq: number;
  #tail: Promise<void> = Promise.resolve();
  #failure: DrkitError | undefined;
  #mac: FrameMac | undefined;
  #bytesWritten = 0;

  constructor(connection: Connection, options: FrameWriterOptions) {
    this.#connection = connection;
    this.#xxh64 = options.xxh64;
    this.#seq = options.firstSeq ?? 0;
  }

  /** Bytes of frames handed to the connection so far (headers and tags included): progress's wire bytes. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** Sequence number the next frame will carry. */
  get nextSeq(): number {
    return this.#seq;
  }

  /** From the next `write()` on, every frame carries a tag sealed by `mac` (the handshake keys the writer). */
  setMac(mac: FrameMac): void {
    this.#mac = mac;
  }

  /**
   * Encodes a frame of `type` whose payload is the concatenation of `parts` and writes it.
   * Resolves when the transport accepted it.
   * @throws INVALID_ARGUMENT (oversized payload, unknown type or flags; nothing is written),
   * CONNECTION_LOST and other transport codes, ABORTED
   */
  write(type: FrameType, parts: readonly Uint8Array[], options: FrameWriteOptions = {}): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    let frame: Uint8Array;
    try {
      // Encoding is synchronous and consumes the sequence number only when it succeeds,
      // so a rejected message leaves no gap.
      frame = encodeFrame(this.#xxh64, { type, flags: options.flags ?? 0, seq: this.#seq, parts }, this.#mac);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#seq = nextSeq(this.#seq);
    const written = this.#tail.then(async () => {
      if (this.#failure !== undefined) throw this.#failure;
      try {
        await this.#connection.write(frame, options.signal === undefined ? undefined : { signal: options.signal });
        this.#bytesWritten += frame.byteLength;
      } catch (err) {
        this.#failure ??= toDrkitError(err, 'CONNECTION_LOST', 'writing a frame failed', { type });
        throw this.#failure;
      }
    });
    this.#tail = written.catch(() => undefined);
    return written;
  }
}
