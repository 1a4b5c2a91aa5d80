/**
 * The BlockDevice contract: a fixed-length, byte-addressed device (a raw file, a block
 * special file, a memory buffer, or a drkit Volume).
 *
 * Durability promise: bytes written are durable only once a later `flush()` has
 * resolved. Before that a crash may drop or tear any unflushed write; it never
 * changes bytes that were durable before.
 */

/** Options accepted last by every I/O call. */
export interface IoOptions {
  /** Cancels the call; it then rejects with `AbortError` (code `ABORTED`). */
  signal?: AbortSignal;
}

/** What a device can do, declared as read-only data. Unsupported calls fail with `NOT_SUPPORTED`. */
export interface BlockDeviceCapabilities {
  /** `flush()` makes writes survive power loss (false for memory devices). */
  readonly durableFlush: boolean;
  /** `discard()` is supported (it zeroes the range and may free space). */
  readonly discard: boolean;
  /** `resize()` is supported. */
  readonly resizable: boolean;
  /** Offsets and lengths must be multiples of this many bytes (1 = byte-addressable). */
  readonly alignmentBytes: number;
  /** A write of at most this many aligned bytes is never torn by a crash. */
  readonly atomicWriteBytes: number;
  /** Concurrent calls the device serves in parallel; more are queued by the caller. */
  readonly maxConcurrency: number;
}

/** One write of a vectored {@link BlockDevice.writev}. */
export interface BlockWrite {
  readonly byteOffset: number;
  readonly data: Uint8Array;
}

/** One read of a vectored {@link BlockDevice.readv}. */
export interface BlockRead {
  readonly byteOffset: number;
  readonly byteLength: number;
  /**
   * Optional: where to put the bytes, exactly `byteLength` long (e.g. a view of a buffer
   * the caller reuses). A device that honours it returns this very view; one that does
   * not returns a buffer of its own, which is equally correct. Nothing else may be
   * written into it while the read is in flight.
   */
  readonly into?: Uint8Array;
}

/**
 * A byte-addressed block device. Every method validates its arguments and rejects with
 * a `DrkitError`: `OUT_OF_RANGE` past `byteLength`, `INVALID_ARGUMENT` for misaligned
 * or malformed arguments, `NOT_OPEN` after `close()`, `IO_ERROR`/`SHORT_IO` on device
 * failure. Reads never return fewer bytes than asked.
 */
export interface BlockDevice {
  /** Current length in bytes. */
  readonly byteLength: number;
  /** Declared capabilities. */
  readonly capabilities: BlockDeviceCapabilities;
  /** Reads exactly `byteLength` bytes at `byteOffset`; never-written bytes read as zero. */
  read(byteOffset: number, byteLength: number, options?: IoOptions): Promise<Uint8Array>;
  /** Several reads in one call; results in request order. Implementations batch them. */
  readv(reads: readonly BlockRead[], options?: IoOptions): Promise<Uint8Array[]>;
  /** Writes all of `data` at `byteOffset`. The caller may reuse `data` once this resolves. */
  write(byteOffset: number, data: Uint8Array, options?: IoOptions): Promise<void>;
  /** Several writes in one call, applied in order (a later one wins on overlap). */
  writev(writes: readonly BlockWrite[], options?: IoOptions): Promise<void>;
  /** Zeroes the range and lets the device free it. @throws NOT_SUPPORTED without the capability */
  discard(byteOffset: number, byteLength: number, options?: IoOptions): Promise<void>;
  /** Durability barrier: resolves once every write that resolved before the call is durable. */
  flush(options?: IoOptions): Promise<void>;
  /** Changes the length; growth reads as zero. @throws NOT_SUPPORTED without the capability */
  resize(byteLength: number, options?: IoOptions): Promise<void>;
  /** Flushes nothing implicitly; releases resources. Idempotent. */
  close(): Promise<void>;
}
