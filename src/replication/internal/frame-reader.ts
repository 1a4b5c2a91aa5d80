/**
 * FrameReader: turns a connection's byte chunks into verified frames.
 *
 * Memory promise: besides the transport chunk being consumed, the reader holds at most
 * one frame, allocated only after its header passed validation, plus at most one spare
 * buffer handed back through {@link FrameReader.recycle}, so its memory is bounded by
 * 2 x (FRAME_OVERHEAD_BYTES + MAX_FRAME_PAYLOAD_BYTES) whatever the peer sends.
 * Ownership: a frame's payload belongs to the caller, who may keep views into it — unless
 * the caller hands the frame back with `recycle()`, promising that nothing references it
 * any longer; the next frame of at least {@link RECYCLE_MIN_FRAME_BYTES} that fits is then
 * read into that buffer instead of a fresh one (large frames are garbage V8 collects late:
 * issue #13 measured ~60 MiB of them in every receiving process).
 * Authentication promise: once {@link FrameReader.setMac} keyed it, the reader hands on
 * only frames whose tag authenticates them, in order (see frame-mac.ts).
 * Failure promise: the first error (malformed frame, timeout, broken connection) is
 * sticky — every later `read()` rejects with it. The reader never closes the connection:
 * its owner does (usually through `closeWithError`), after perhaps telling the peer why.
 */
import type { Clock } from '../../adapters/clock.js';
import type { Connection } from '../../adapters/transport.js';
import type { Xxh64 } from '../../core/checksum.js';
import { AbortError, DrkitError, toDrkitError } from '../../core/errors.js';
import {
  FRAME_CHECKSUM_BYTES,
  FRAME_HEADER_BYTES,
  checkHeaderPrefix,
  decodeFrameHeader,
  nextSeq,
  tagBytesOf,
  verifyFrameChecksum,
  verifyFrameMac,
  type Frame,
  type FrameHeader,
} from './frame-codec.js';
import type { FrameMac } from './frame-mac.js';

/** Options of {@link FrameReader}. */
export interface FrameReaderOptions {
  /** A loaded xxh64 (`await loadXxh64()`). */
  readonly xxh64: Xxh64;
  /** Clock for the idle timeout. */
  readonly clock: Clock;
  /**
   * Longest wait for the next bytes from the peer while a `read()` is pending;
   * exceeding it fails the reader with TIMEOUT. @defaultValue undefined (no timeout)
   */
  readonly idleTimeoutMs?: number;
  /** Aborting it fails a pending and every later `read()` with ABORTED. */
  readonly signal?: AbortSignal;
  /** Sequence number of the first frame. @defaultValue 0 */
  readonly firstSeq?: number;
}

const EMPTY = new Uint8Array(0);

/**
 * Smallest frame read into a recycled buffer (64 KiB): small frames (requests, acks,
 * block maps) are cheap fresh allocations and would otherwise take the spare from the
 * large EXTENTS frames that follow them.
 */
export const RECYCLE_MIN_FRAME_BYTES = 64 * 1024;

/** Reads verified frames, in order, from one connection. */
export class FrameReader implements AsyncIterable<Frame> {
  readonly #options: FrameReaderOptions;
  readonly #source: AsyncIterator<Uint8Array>;
  #chunk: Uint8Array = EMPTY;
  #chunkOffset = 0;
  readonly #header = new Uint8Array(FRAME_HEADER_BYTES);
  #headerFilled = 0;
  #decoded: FrameHeader | undefined;
  #frame: Uint8Array | undefined;
  /** The whole buffer `#frame` views (a recycled one may be larger). */
  #frameBuffer: Uint8Array | undefined;
  #frameFilled = 0;
  /** A buffer handed back by `recycle()`, for the next large frame that fits. */
  #spare: Uint8Array | undefined;
  /** The buffer of the last frame returned, and the payload view returned with it (what `recycle()` accepts). */
  #lastBuffer: Uint8Array | undefined;
  #lastPayload: Uint8Array | undefined;
  #expectedSeq: number;
  #failure: DrkitError | undefined;
  #ended = false;
  #reading = false;
  #mac: FrameMac | undefined;
  #bytesRead = 0;

  /** Starts consuming `connection.read()` (which may be iterated only once). */
  constructor(connection: Connection, options: FrameReaderOptions) {
    this.#options = options;
    this.#expectedSeq = options.firstSeq ?? 0;
    // Every chunk is copied into a frame buffer (or the header) before the next is asked
    // for, so the transport may reuse its memory (fewer allocations: issue #13's memory).
    this.#source = connection.read({ reuseChunks: true })[Symbol.asyncIterator]();
  }

  /** Bytes received from the connection so far (frames, headers and tags included): progress's wire bytes. */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** Sequence number the next frame must carry. */
  get expectedSeq(): number {
    return this.#expectedSeq;
  }

  /**
   * From the next frame on, every frame must carry a tag that `mac` authenticates (the
   * handshake calls this between two reads, once the direction's key is derived).
   */
  setMac(mac: FrameMac): void {
    if (this.#reading) throw new DrkitError('BUSY', 'FrameReader.setMac() called while a read is pending');
    this.#mac = mac;
  }

  /**
   * The next frame, or undefined when the peer closed the stream cleanly between frames.
   * @throws PROTOCOL_ERROR (malformed, truncated, replayed or reordered frame), FORMAT_VERSION,
   * AUTH_FAILED (keyed: a frame without a tag, or one its tag does not authenticate),
   * TIMEOUT (idle timeout), ABORTED, CONNECTION_LOST and other transport codes
   */
  async read(): Promise<Frame | undefined> {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#reading) throw new DrkitError('BUSY', 'FrameReader.read() called while another read is pending');
    this.#reading = true;
    try {
      return await this.#readFrame();
    } catch (err) {
      this.#failure = toDrkitError(err, 'CONNECTION_LOST', 'reading from the connection failed');
      throw this.#failure;
    } finally {
      this.#reading = false;
    }
  }

  /**
   * Hands back the buffer of `frame`, the last frame `read()` returned: the caller promises
   * that nothing references its payload any more (views included), and the reader may
   * overwrite it with a later frame. Any other frame is ignored (its buffer stays the
   * caller's), so a stale or foreign frame can never be recycled by mistake.
   * @returns whether the buffer was taken
   */
  recycle(frame: Frame): boolean {
    const buffer = this.#lastBuffer;
    if (buffer === undefined || frame.payload !== this.#lastPayload) return false;
    this.#lastBuffer = undefined;
    this.#lastPayload = undefined;
    if (this.#spare === undefined || this.#spare.byteLength < buffer.byteLength) this.#spare = buffer;
    return true;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Frame> {
    for (;;) {
      const frame = await this.read();
      if (frame === undefined) return;
      yield frame;
    }
  }

  async #readFrame(): Promise<Frame | undefined> {
    for (;;) {
      if (this.#chunkOffset < this.#chunk.length) {
        const frame = this.#consume();
        if (frame !== undefined) return frame;
        continue;
      }
      if (this.#ended) return this.#atEnd();
      const next = await this.#nextChunk();
      if (next === undefined) {
        this.#ended = true;
        return this.#atEnd();
      }
      this.#chunk = next;
      this.#chunkOffset = 0;
      this.#bytesRead += next.byteLength;
    }
  }

  #atEnd(): undefined {
    if (this.#headerFilled > 0) {
      throw new DrkitError('PROTOCOL_ERROR', 'connection ended inside a frame', {
        data: { headerBytes: this.#headerFilled, frameBytes: this.#frameFilled, expectedSeq: this.#expectedSeq },
      });
    }
    return undefined;
  }

  /** Moves bytes from the current chunk into the header or frame buffer; returns a frame when one completes. */
  #consume(): Frame | undefined {
    const chunk = this.#chunk;
    if (this.#frame === undefined) {
      const take = Math.min(FRAME_HEADER_BYTES - this.#headerFilled, chunk.length - this.#chunkOffset);
      this.#header.set(chunk.subarray(this.#chunkOffset, this.#chunkOffset + take), this.#headerFilled);
      this.#headerFilled += take;
      this.#chunkOffset += take;
      if (this.#headerFilled < FRAME_HEADER_BYTES) {
        checkHeaderPrefix(this.#header, this.#headerFilled);
        return undefined;
      }
      // The whole header is checked (length bound included) before the frame is allocated.
      const header = decodeFrameHeader(this.#header, this.#expectedSeq);
      this.#decoded = header;
      this.#frame = this.#allocate(FRAME_HEADER_BYTES + header.payloadByteLength + tagBytesOf(header.flags) + FRAME_CHECKSUM_BYTES);
      this.#frame.set(this.#header, 0);
      this.#frameFilled = FRAME_HEADER_BYTES;
    }
    const frame = this.#frame;
    const take = Math.min(frame.length - this.#frameFilled, chunk.length - this.#chunkOffset);
    frame.set(chunk.subarray(this.#chunkOffset, this.#chunkOffset + take), this.#frameFilled);
    this.#frameFilled += take;
    this.#chunkOffset += take;
    if (this.#chunkOffset === chunk.length) {
      this.#chunk = EMPTY; // do not pin a consumed transport chunk
      this.#chunkOffset = 0;
    }
    if (this.#frameFilled < frame.length) return undefined;
    const header = this.#decoded!;
    verifyFrameChecksum(this.#options.xxh64, frame, header);
    verifyFrameMac(this.#mac, frame, header);
    const payload = frame.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + header.payloadByteLength);
    this.#lastBuffer = frame.byteLength >= RECYCLE_MIN_FRAME_BYTES ? this.#frameBuffer : undefined;
    this.#lastPayload = this.#lastBuffer === undefined ? undefined : payload;
    this.#frame = undefined;
    this.#frameBuffer = undefined;
    this.#decoded = undefined;
    this.#headerFilled = 0;
    this.#frameFilled = 0;
    this.#expectedSeq = nextSeq(this.#expectedSeq);
    return { type: header.type, flags: header.flags, seq: header.seq, payload };
  }

  /** A buffer for a frame of `byteLength` bytes: the recycled spare when it fits a large frame, else a fresh one. */
  #allocate(byteLength: number): Uint8Array {
    const spare = this.#spare;
    if (byteLength >= RECYCLE_MIN_FRAME_BYTES && spare !== undefined && spare.byteLength >= byteLength) {
      this.#spare = undefined;
      this.#frameBuffer = spare;
      return spare.subarray(0, byteLength);
    }
    const fresh = new Uint8Array(byteLength);
    this.#frameBuffer = fresh;
    return fresh;
  }

  /** The next transport chunk (undefined at end of stream), raced against the idle timeout and the signal. */
  async #nextChunk(): Promise<Uint8Array | undefined> {
    const { clock, idleTimeoutMs, signal } = this.#options;
    if (signal?.aborted) throw new AbortError('frame read aborted', { cause: signal.reason });
    const pending = this.#source.next();
    if (idleTimeoutMs === undefined && signal === undefined) {
      const result = await pending;
      return result.done === true ? undefined : result.value;
    }
    // If the timeout or the abort wins, `pending` stays outstanding until the owner
    // destroys the connection; swallow its eventual rejection.
    pending.catch(() => undefined);
    let cleanup = (): void => undefined;
    const guard = new Promise<never>((_, reject) => {
      const timer =
        idleTimeoutMs === undefined
          ? undefined
          : clock.setTimer(idleTimeoutMs, () => reject(new DrkitError('TIMEOUT', `no bytes from the peer for ${idleTimeoutMs} ms`, { data: { idleTimeoutMs } })));
      const onAbort = (): void => reject(new AbortError('frame read aborted', { cause: signal?.reason }));
      signal?.addEventListener('abort', onAbort, { once: true });
      cleanup = () => {
        timer?.cancel();
        signal?.removeEventListener('abort', onAbort);
      };
    });
    try {
      const result = await Promise.race([pending, guard]);
      return result.done === true ? undefined : result.value;
    } finally {
      cleanup();
    }
  }
}
