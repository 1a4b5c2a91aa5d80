/**
 * copyDevice: every byte of one BlockDevice onto another (a disk image into a volume, a
 * snapshot into a raw file or a block device), reading ahead while it writes, with
 * progress and cancellation. The `drkit import`, `export` and `restore --to` commands are
 * this call.
 *
 * Durability promise: when it resolves, the target has been flushed (`flush()`), so the
 * copy is as durable as the target's flush makes it.
 */
import type { BlockDevice } from '../adapters/block-device.js';
import { DrkitError, throwIfAborted } from '../core/errors.js';
import { assertPositiveInteger } from '../core/validate.js';
// The snapshot layer's memcmp zero test (one copy of it; see the report to move it to core/).
import { isAllZero } from '../snapshot/internal/zero.js';

/**
 * Default copy chunk: 1 MiB, a whole number of blocks of every block size (<= 1 MiB), large
 * enough that per-call costs vanish (measured by bench `volume.import`, which writes 1 MiB).
 */
export const DEFAULT_COPY_CHUNK_BYTES = 1024 * 1024;
/** Reads in flight ahead of the write: 4 keeps the source busy while the target writes, and pins at most 4 chunks. */
const READ_AHEAD_CHUNKS = 4;

/** Progress of a {@link copyDevice} call. */
export interface CopyProgress {
  readonly phase: 'copy' | 'flush';
  readonly completedBytes: number;
  readonly totalBytes: number;
}

/** Options of {@link copyDevice}. */
export interface CopyDeviceOptions {
  /** Bytes to copy from offset 0. @defaultValue from.byteLength */
  byteLength?: number;
  /** Bytes per read and write; a multiple of 512. @defaultValue 1 MiB ({@link DEFAULT_COPY_CHUNK_BYTES}) */
  chunkBytes?: number;
  /**
   * The target already reads as zeros (a new volume, a new sparse file): all-zero chunks
   * are skipped, which keeps a file sparse and costs nothing for holes. @defaultValue false
   */
  targetIsZero?: boolean;
  signal?: AbortSignal;
  /** Called after each chunk and after the flush. */
  onProgress?: (progress: CopyProgress) => void;
}

/**
 * Copies `byteLength` bytes (default: all of `from`) from offset 0 of `from` to offset 0
 * of `to`, then flushes `to`.
 * @returns the bytes copied and the bytes actually written (zero chunks skipped)
 * @throws INVALID_ARGUMENT for bad options; OUT_OF_RANGE when `to` is shorter than the copy;
 *   ABORTED; the devices' errors
 */
export async function copyDevice(from: BlockDevice, to: BlockDevice, options: CopyDeviceOptions = {}): Promise<{ copiedBytes: number; writtenBytes: number }> {
  const totalBytes = options.byteLength ?? from.byteLength;
  const chunkBytes = options.chunkBytes ?? DEFAULT_COPY_CHUNK_BYTES;
  assertPositiveInteger(chunkBytes, 'chunkBytes');
  if (chunkBytes % 512 !== 0) throw new DrkitError('INVALID_ARGUMENT', 'chunkBytes must be a multiple of 512', { data: { chunkBytes } });
  if (!Number.isSafeInteger(totalBytes) || totalBytes < 0 || totalBytes > from.byteLength) {
    throw new DrkitError('INVALID_ARGUMENT', `byteLength must be an integer in [0, ${from.byteLength}]`, { data: { byteLength: totalBytes } });
  }
  if (totalBytes > to.byteLength) {
    throw new DrkitError('OUT_OF_RANGE', `the target holds ${to.byteLength} bytes, the copy needs ${totalBytes}`, { data: { byteLength: totalBytes, targetByteLength: to.byteLength } });
  }
  const signal = options.signal;
  const io = signal === undefined ? undefined : { signal };
  const reads: Promise<Uint8Array>[] = [];
  // Chunks are read into a ring of reused buffers (READ_AHEAD_CHUNKS in flight, one being
  // written): a buffer is read into again only after the write of its bytes resolved
  // (BlockDevice.write lets the caller reuse `data` then). A fresh 1 MiB buffer per chunk
  // was garbage V8 frees late, out of order, from glibc's heap: the import's process kept
  // ~45 MiB more of it (issue #13, measured 2026-12-03).
  const ring = Array.from({ length: READ_AHEAD_CHUNKS + 1 }, () => new Uint8Array(Math.min(chunkBytes, totalBytes)));
  let ringNext = 0;
  let nextRead = 0;
  const readAhead = (): void => {
    while (reads.length < READ_AHEAD_CHUNKS && nextRead < totalBytes) {
      const at = nextRead;
      const byteLength = Math.min(chunkBytes, totalBytes - at);
      const into = (ring[ringNext] as Uint8Array).subarray(0, byteLength);
      ringNext = (ringNext + 1) % ring.length;
      const read = from.readv([{ byteOffset: at, byteLength, into }], io).then((parts) => parts[0] as Uint8Array);
      read.catch(() => undefined); // awaited in order below; an early rejection is not unhandled
      reads.push(read);
      nextRead += chunkBytes;
    }
  };
  let completedBytes = 0;
  let writtenBytes = 0;
  readAhead();
  while (reads.length > 0) {
    throwIfAborted(signal);
    const data = await reads.shift()!;
    readAhead();
    if (!(options.targetIsZero === true && isAllZero(data))) {
      await to.write(completedBytes, data, io);
      writtenBytes += data.byteLength;
    }
    completedBytes += data.byteLength;
    options.onProgress?.({ phase: 'copy', completedBytes, totalBytes });
  }
  await to.flush(io);
  options.onProgress?.({ phase: 'flush', completedBytes, totalBytes });
  return { copiedBytes: completedBytes, writtenBytes };
}
