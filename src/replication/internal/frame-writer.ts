/**
 * FrameWriter: numbers, checksums, authenticates (once keyed) and writes frames on one connection.
 *
 * Ordering promise: frames reach the connection in the order `write()` was called, with
 * consecutive sequence numbers, even when callers do not await each other; each frame is
 * one `connection.write`, so backpressure is the transport's (see Transport contract).
 * Failure promise: after a failed write every later write rejects with the same error
 * (a gap in the sequence would make the peer reject everything after it anyway).
 * Buffers: a frame of at least {@link RECYCLED_FRAME_MIN_BYTES} is encoded into a buffer
 * the writer reuses once the connection accepted the previous frame in it (the Transport
 * contract lets the caller reuse bytes after `write` resolves), at most
 * {@link SPARE_FRAME_BUFFERS} kept: the extent frames of a transfer (up to 4 MiB each)
 * no longer cost a fresh zero-filled allocation apiece, which the garbage collector
 * then has to account and free.
 */
import type { Connection } from '../../adapters/transport.js';
import type { Xxh64 } from '../../core/checksum.js';
import { toDrkitError, type DrkitError } from '../../core/errors.js';
import { encodeFrame, frameByteLength, nextSeq, type FrameType } from './frame-codec.js';
import type { FrameMac } from './frame-mac.js';

/** Frames smaller than this (64 KiB) get a buffer of their own: recycling pays for bulk frames only. */
export const RECYCLED_FRAME_MIN_BYTES = 64 * 1024;
/** Spare frame buffers a writer keeps for reuse (the memory bound: 2 x the largest frame written, at most 2 x (8 MiB + overhead)). */
export const SPARE_FRAME_BUFFERS = 2;

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
  /** Buffers free for the next bulk frame, none held by a write in progress. */
  readonly #spare: Uint8Array[] = [];

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
    let buffer: Uint8Array | undefined;
    try {
      // Encoding is synchronous and consumes the sequence number only when it succeeds,
      // so a rejected message leaves no gap.
      buffer = this.#takeBuffer(frameByteLength(parts, this.#mac !== undefined));
      frame = encodeFrame(this.#xxh64, { type, flags: options.flags ?? 0, seq: this.#seq, parts }, this.#mac, buffer);
    } catch (err) {
      if (buffer !== undefined) this.#giveBack(buffer);
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
      } finally {
        // Accepted (or failed: the connection is finished) - the bytes are no longer needed.
        if (buffer !== undefined) this.#giveBack(buffer);
      }
    });
    this.#tail = written.catch(() => undefined);
    return written;
  }

  /** A spare buffer of at least `frameBytes` for a bulk frame, else undefined (encode allocates). */
  #takeBuffer(frameBytes: number): Uint8Array | undefined {
    if (frameBytes < RECYCLED_FRAME_MIN_BYTES) return undefined;
    const i = this.#spare.findIndex((b) => b.byteLength >= frameBytes);
    if (i >= 0) return this.#spare.splice(i, 1)[0];
    // Rounded up to 1 MiB so that frames of similar sizes can share it.
    return new Uint8Array(Math.ceil(frameBytes / RECYCLE_GRANULE_BYTES) * RECYCLE_GRANULE_BYTES);
  }

  #giveBack(buffer: Uint8Array): void {
    if (this.#spare.length < SPARE_FRAME_BUFFERS) this.#spare.push(buffer);
    else {
      // Keep the largest: a small spare cannot serve a large frame.
      const smallest = this.#spare.reduce((m, b, i) => (b.byteLength < this.#spare[m]!.byteLength ? i : m), 0);
      if (this.#spare[smallest]!.byteLength < buffer.byteLength) this.#spare[smallest] = buffer;
    }
  }
}

const RECYCLE_GRANULE_BYTES = 1024 * 1024;
