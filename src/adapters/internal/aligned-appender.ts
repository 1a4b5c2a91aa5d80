/**
 * Streams bytes to a BlockDevice as a few large aligned writes: used to write a whole
 * log generation (compaction), where the bytes far exceed one buffer.
 */
import type { BlockDevice } from '../block-device.js';

/**
 * Bytes buffered before a device write: each call costs ~40 us, so 4 MiB makes that
 * overhead negligible while bounding the buffer.
 */
const APPEND_BUFFER_BYTES = 4 * 1024 * 1024;

/** Appends bytes from an aligned start offset; `finish()` pads the last write to alignment. */
export class AlignedAppender {
  private readonly buffer: Uint8Array;
  private used = 0;
  private writeOffset: number;

  constructor(
    private readonly device: BlockDevice,
    startByteOffset: number,
    private readonly alignmentBytes: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.writeOffset = startByteOffset;
    this.buffer = new Uint8Array(Math.max(alignmentBytes, APPEND_BUFFER_BYTES - (APPEND_BUFFER_BYTES % alignmentBytes)));
  }

  /** Appends a copy of `bytes`. */
  async append(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      const n = Math.min(bytes.length - at, this.buffer.length - this.used);
      this.buffer.set(bytes.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
      if (this.used === this.buffer.length) {
        await this.device.write(this.writeOffset, this.buffer, { signal: this.signal });
        this.writeOffset += this.used;
        this.used = 0;
      }
    }
  }

  /**
   * Writes what is buffered, zero-padded to alignment. Returns the bytes between the
   * last aligned boundary and the end of the appended data (the log's tail prefix).
   */
  async finish(): Promise<Uint8Array> {
    const paddedBytes = Math.ceil(this.used / this.alignmentBytes) * this.alignmentBytes;
    this.buffer.fill(0, this.used, paddedBytes);
    if (paddedBytes > 0) await this.device.write(this.writeOffset, this.buffer.subarray(0, paddedBytes), { signal: this.signal });
    const prefixBytes = this.used % this.alignmentBytes;
    return this.buffer.slice(this.used - prefixBytes, this.used);
  }
}
