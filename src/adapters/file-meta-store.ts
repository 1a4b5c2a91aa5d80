/**
 * FileMetaStore: a {@link LogMetaStore} on a {@link RawFileBlockDevice} (Node only). It
 * makes the LogMetaStore's durability and fault-model promise for a regular file (or
 * a block special file): `flush()` / `{ sync: true }` end in `fdatasync`.
 */
import { DrkitError, isDrkitError } from '../core/errors.js';
import { LogMetaStore, type LogMetaStoreOptions } from './log-meta-store.js';
import { RawFileBlockDevice } from './raw-file-block-device.js';

/**
 * Length of a newly created file: the log region starts at 8 KiB and the file grows by
 * at least 1 MiB at a time, so 1 MiB avoids an immediate resize.
 */
const INITIAL_FILE_BYTES = 1024 * 1024;

/** Options of {@link FileMetaStore.open}. */
export interface FileMetaStoreOptions extends Omit<LogMetaStoreOptions, 'device' | 'closeDevice' | 'create'> {
  /** Path of the store's file. */
  path: string;
  /** Create the file (and format it) when it does not exist. @defaultValue false */
  create?: boolean;
}

/** Opens a {@link LogMetaStore} persisted in one file. */
export const FileMetaStore = {
  /**
   * Opens the store in `path` (creating it with `create: true`). The store owns the file
   * and closes it on `close()`.
   * @throws INVALID_ARGUMENT, NOT_FOUND (no file and no `create`), and everything
   * {@link LogMetaStore.open} throws (CORRUPTION, FORMAT_VERSION, IO_ERROR, ...)
   */
  async open(options: FileMetaStoreOptions): Promise<LogMetaStore> {
    if (typeof options !== 'object' || options === null || typeof options.path !== 'string' || options.path === '') {
      throw new DrkitError('INVALID_ARGUMENT', 'FileMetaStore.open: options.path must be a non-empty string');
    }
    const { path, create, ...rest } = options;
    let device: RawFileBlockDevice;
    try {
      device = await RawFileBlockDevice.open({ path });
    } catch (err) {
      if (!(create === true && isDrkitError(err, 'NOT_FOUND'))) throw err;
      device = await RawFileBlockDevice.open({ path, create: { byteLength: INITIAL_FILE_BYTES } });
    }
    try {
      return await LogMetaStore.open({ ...rest, device, closeDevice: true, create: create === true });
    } catch (err) {
      await device.close().catch(() => undefined);
      throw err;
    }
  },
};
