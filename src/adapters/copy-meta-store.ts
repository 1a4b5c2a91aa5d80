/**
 * Copies every record of one MetaStore into another: the way to move metadata between
 * store kinds, e.g. from a `FileMetaStore` log (format v1 sites) onto the default
 * `LmdbMetaStore`. The source is read as one consistent view; the target receives
 * bounded batches and is made durable before the call resolves.
 *
 * Not atomic on the target: a crash part-way leaves a partial copy, so copy into a new,
 * empty store and switch to it only once the call resolved.
 */
import { DrkitError, throwIfAborted } from '../core/errors.js';
import type { MetaOp, MetaStore } from './meta-store.js';

/**
 * Bytes of keys and values per target batch: 4 MiB keeps one batch far below every
 * store's bound (64 MiB) and its memory small, while amortising the per-batch cost.
 */
const COPY_BATCH_BYTES = 4 * 1024 * 1024;

/** Options of {@link copyMetaStore}. */
export interface CopyMetaStoreOptions {
  signal?: AbortSignal;
  /** Called after each batch with the records and bytes copied so far. */
  onProgress?: (progress: { phase: 'copy'; completedBytes: number; completedRecords: number }) => void;
}

/**
 * Copies all records of `from` into `to` (which should be empty; existing keys are
 * overwritten, others kept) and flushes `to`.
 * @returns the number of records and bytes copied
 * @throws INVALID_ARGUMENT for non-stores, ABORTED, and whatever either store throws
 */
export async function copyMetaStore(from: MetaStore, to: MetaStore, options: CopyMetaStoreOptions = {}): Promise<{ records: number; bytes: number }> {
  for (const [name, s] of [['from', from], ['to', to]] as const) {
    if (s === null || typeof s !== 'object' || typeof s.iterate !== 'function' || typeof s.batch !== 'function') {
      throw new DrkitError('INVALID_ARGUMENT', `copyMetaStore: ${name} must be a MetaStore`);
    }
  }
  let ops: MetaOp[] = [];
  let pendingBytes = 0;
  let records = 0;
  let bytes = 0;
  const write = async (): Promise<void> => {
    if (ops.length === 0) return;
    await to.batch(ops, { signal: options.signal });
    records += ops.length;
    bytes += pendingBytes;
    ops = [];
    pendingBytes = 0;
    options.onProgress?.({ phase: 'copy', completedBytes: bytes, completedRecords: records });
  };
  for await (const [key, value] of from.iterate({}, { signal: options.signal })) {
    throwIfAborted(options.signal);
    ops.push({ kind: 'put', key, value });
    pendingBytes += key.byteLength + value.byteLength;
    if (pendingBytes >= COPY_BATCH_BYTES) await write();
  }
  await write();
  await to.flush({ signal: options.signal });
  return { records, bytes };
}
