/**
 * Restore from a remote site straight into a BlockDevice (a raw file or a block special
 * file): `Site.restoreToDevice`. The remote serves a pull as it would to a site, and this
 * side's DeviceReceiver (internal/device-receiver.ts) writes each verified block at its
 * offset, in order, with no local extent store in between.
 *
 * Promises (see the receiver for the details): nothing unverified is written; resumable
 * through a {@link RestoreCheckpointStore} (a file beside the device by default), so a
 * retry — after a lost connection, a crash or a cancellation — fetches only what was not
 * yet written, flushed and checkpointed; when it resolves the device has been flushed and
 * holds the snapshot's bytes. `signal` cancels at any point (connect, handshake,
 * transfer, flush): the call rejects with ABORTED and the checkpoint stays for a resume.
 */
import { rename, rm, readFile, writeFile, open as openFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AbortError, DrkitError, throwIfAborted } from '../core/errors.js';
import type { BlockDevice } from '../adapters/block-device.js';
import type { ExtentCodec } from '../dedup/codec.js';
import { sha256Fingerprinter } from '../dedup/fingerprint.js';
import { CodecPool } from '../dedup/codec-pool.js';
import { DEFAULT_CHECKPOINT_BYTES } from './receiver-state.js';
import { DeviceReceiver, MAX_UNVERIFIED_CHUNKS, type RestoreCheckpoint, type RestoreCheckpointStore } from './internal/device-receiver.js';
import type { Peer } from './internal/peer.js';

export type { RestoreCheckpoint, RestoreCheckpointStore };

/** Progress of a restore or pull, as a user would show it. */
export interface RestoreProgress {
  readonly phase: 'connect' | 'transfer' | 'flush' | 'done';
  /** Logical bytes of the snapshot restored so far (this attempt and earlier ones). */
  readonly logicalBytes: number;
  readonly totalBytes: number;
  /** Logical bytes an earlier attempt had restored (not fetched again). */
  readonly resumedFromBytes: number;
  /** Decoded bytes of the extents received (duplicates and zeros are not sent). */
  readonly extentBytes: number;
  /** Bytes received on the connection, frames, headers and tags included. */
  readonly wireBytes: number;
}

/** Options of `Site.restoreToDevice`. */
export interface DeviceRestoreOptions {
  signal?: AbortSignal;
  onProgress?: (progress: RestoreProgress) => void;
  /**
   * Where the cursor is kept between attempts.
   * @defaultValue none: no resume across processes (use {@link fileRestoreCheckpoints})
   */
  checkpoints?: RestoreCheckpointStore;
  /** Logical bytes between durable checkpoints (device flush, then cursor). @defaultValue 64 MiB */
  checkpointBytes?: number;
  /**
   * The device reads as zeros where it was never written (a new sparse file): blocks the
   * snapshot does not map are skipped instead of written. @defaultValue false
   */
  deviceZeroed?: boolean;
  /** Attempts after the first on transient failures. @defaultValue 5 */
  retries?: number;
  /** First backoff; doubles per attempt up to 30 s. @defaultValue 500 */
  retryDelayMs?: number;
  /**
   * Worker threads that compute the SHA-256 of every extent received (a CodecPool opened
   * for the call, reading the decoded slabs in place), beside this thread's reads,
   * decoding and device writes; 0 hashes in this thread. @defaultValue {@link DEFAULT_RESTORE_VERIFY_WORKERS} (0)
   */
  verifyWorkers?: number;
}

/**
 * Default {@link DeviceRestoreOptions.verifyWorkers}: none. Measured (docs/benchmarks.md,
 * issue #13): on this project's machine SHA-256 runs at ~1.5 GB/s, ~5% of the restoring
 * thread's time, while a worker costs 10-20 MiB of RSS and a postMessage per slab; with a
 * slower hash (no SHA extensions) one worker takes it off the thread that reads the socket.
 */
export const DEFAULT_RESTORE_VERIFY_WORKERS = 0;

/** What a restore did. */
export interface DeviceRestoreResult {
  /** The snapshot's id at its origin site. */
  readonly originSnapshotId: string;
  readonly progress: RestoreProgress;
}

/** The Site's parts a restore uses. */
export interface DeviceRestoreContext {
  readonly codec: ExtentCodec;
  /** Connects to the remote with `receiver` serving its requests. */
  connect(receiver: DeviceReceiver, signal: AbortSignal | undefined): Promise<Peer>;
  /** Runs `attempt`, retrying transient failures. */
  withRetries<T>(attempt: () => Promise<T>): Promise<T>;
}

/** Progress reports at most this often during the transfer (a bar redraw, not a log line per batch). */
const PROGRESS_INTERVAL_MS = 100;

/**
 * Restores `remoteSnapshotId` into `device` (see the module header).
 * @throws NOT_FOUND (no such snapshot there), INVALID_ARGUMENT (device too small), CORRUPTION, ABORTED, AUTH_FAILED, and transient codes once retries are spent
 */
export async function restoreToDevice(ctx: DeviceRestoreContext, remoteSnapshotId: string, device: BlockDevice, options: DeviceRestoreOptions = {}): Promise<DeviceRestoreResult> {
  if (typeof remoteSnapshotId !== 'string' || remoteSnapshotId.length === 0) throw new DrkitError('INVALID_ARGUMENT', 'restoreToDevice: remoteSnapshotId must be a non-empty string');
  const checkpointBytes = options.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES;
  if (!Number.isSafeInteger(checkpointBytes) || checkpointBytes <= 0) throw new DrkitError('INVALID_ARGUMENT', 'checkpointBytes must be a positive integer');
  const checkpoints = options.checkpoints ?? memoryRestoreCheckpoints();
  const verifyWorkers = options.verifyWorkers ?? DEFAULT_RESTORE_VERIFY_WORKERS;
  if (!Number.isSafeInteger(verifyWorkers) || verifyWorkers < 0) throw new DrkitError('INVALID_ARGUMENT', 'verifyWorkers must be a non-negative integer');
  throwIfAborted(options.signal);
  const pool = verifyWorkers === 0 ? undefined : await CodecPool.open({ workerCount: verifyWorkers, maxPendingBatches: MAX_UNVERIFIED_CHUNKS });
  try {
    return await attemptAll(ctx, remoteSnapshotId, device, options, checkpoints, checkpointBytes, pool);
  } finally {
    await pool?.close();
  }
}

async function attemptAll(
  ctx: DeviceRestoreContext,
  remoteSnapshotId: string,
  device: BlockDevice,
  options: DeviceRestoreOptions,
  checkpoints: RestoreCheckpointStore,
  checkpointBytes: number,
  pool: CodecPool | undefined,
): Promise<DeviceRestoreResult> {
  let wireBytesBefore = 0;
  return ctx.withRetries(async () => {
    throwIfAborted(options.signal);
    let peer: Peer | undefined;
    let lastReportMs = 0;
    const progress = (phase: RestoreProgress['phase']): RestoreProgress => ({ phase, ...receiver.counters, wireBytes: wireBytesBefore + (peer?.wireBytesRead ?? 0) });
    const receiver: DeviceReceiver = new DeviceReceiver({
      device,
      codec: ctx.codec,
      fingerprinter: sha256Fingerprinter,
      checkpoints,
      checkpointBytes,
      deviceZeroed: options.deviceZeroed ?? false,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(pool === undefined ? {} : { fingerprintShared: (buffer: SharedArrayBuffer, lengths: Uint32Array) => pool.fingerprintShared(buffer, lengths, options.signal === undefined ? {} : { signal: options.signal }) }),
      onBlocks: () => {
        const now = Date.now();
        if (now - lastReportMs < PROGRESS_INTERVAL_MS) return;
        lastReportMs = now;
        options.onProgress?.(progress('transfer'));
      },
    });
    options.onProgress?.(progress('connect'));
    peer = await ctx.connect(receiver, options.signal);
    const connected = peer;
    const onAbort = () => void connected.fail(new AbortError('restore aborted', { cause: options.signal?.reason }));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await connected.pull(remoteSnapshotId);
      options.onProgress?.(progress('flush'));
      const done = progress('done');
      options.onProgress?.(done);
      return { originSnapshotId: receiver.committedSnapshotId ?? remoteSnapshotId, progress: done };
    } catch (err) {
      throwIfAborted(options.signal);
      throw err;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      wireBytesBefore += connected.wireBytesRead;
      await connected.close();
      // A checkpoint still under way finishes before a retry loads the cursor.
      await receiver.settled();
    }
  });
}

/** Checkpoints held in memory: resume across retries of one call, not across processes. */
export function memoryRestoreCheckpoints(): RestoreCheckpointStore {
  let saved: RestoreCheckpoint | undefined;
  return {
    load: async () => saved,
    save: async (c) => {
      saved = c;
    },
    clear: async () => {
      saved = undefined;
    },
  };
}

/**
 * Checkpoints in a small JSON file (e.g. `<device>.drkit-restore`), replaced atomically
 * (write a temporary file, fsync it, rename, fsync the directory): a crash leaves the old
 * checkpoint or the new one, never a torn one.
 * @throws (load) CORRUPTION for a file that is not a checkpoint
 */
export function fileRestoreCheckpoints(path: string): RestoreCheckpointStore {
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new DrkitError('IO_ERROR', `cannot read restore checkpoint ${path}`, { cause: err });
      }
      const c = parseCheckpoint(text);
      if (c === undefined) throw new DrkitError('CORRUPTION', `${path} is not a drkit restore checkpoint`, { data: { path } });
      return c;
    },
    async save(c) {
      const tmp = `${path}.tmp`;
      await writeFile(tmp, JSON.stringify(c));
      const fh = await openFile(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
      const dir = await openFile(dirname(path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    },
    async clear() {
      await rm(path, { force: true });
    },
  };
}

function parseCheckpoint(text: string): RestoreCheckpoint | undefined {
  let c: Partial<RestoreCheckpoint>;
  try {
    c = JSON.parse(text) as Partial<RestoreCheckpoint>;
  } catch {
    return undefined;
  }
  const ints = [c.byteLength, c.blockBytes, c.cursorBlock].every((n) => Number.isSafeInteger(n) && n! >= 0);
  if (c.formatVersion !== 1 || typeof c.originSiteId !== 'string' || typeof c.originSnapshotId !== 'string' || !ints) return undefined;
  return c as RestoreCheckpoint;
}
