/**
 * An export a connection has selected: the device it reads and writes (a Volume handle
 * or a SnapshotReader, each pinning what it serves until closed) and the transmission
 * flags that tell the client what it may send.
 */
import type { BlockDevice } from '../../adapters/index.js';
import type { SnapshotTree } from '../../snapshot/index.js';
import type { NbdExport } from '../export-catalog.js';
import {
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
} from './protocol.js';

/** A selected export and its open device. */
export interface OpenedExport {
  readonly entry: NbdExport;
  readonly device: BlockDevice;
  readonly transmissionFlags: number;
}

/**
 * The transmission flags of an export. Every export may be used over several connections
 * (CAN_MULTI_CONN): the server keeps no per-connection cache, and FLUSH commits the whole
 * tree. Writable exports take FUA, TRIM (Volume.discard) and WRITE_ZEROES (also discard:
 * zero blocks are holes, so it is cheaper than a write).
 */
export function transmissionFlagsOf(entry: NbdExport): number {
  const common = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_CAN_MULTI_CONN;
  return entry.readOnly ? common | NBD_FLAG_READ_ONLY : common | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES;
}

/**
 * Opens the device behind `entry`.
 * @throws NOT_FOUND when the volume or snapshot went away since the lookup, NOT_OPEN for a closed tree
 */
export async function openExport(tree: SnapshotTree, entry: NbdExport): Promise<OpenedExport> {
  const device: BlockDevice = entry.snapshotId === undefined ? await tree.openVolume(entry.volumeId) : tree.openSnapshot(entry.snapshotId);
  return { entry, device, transmissionFlags: transmissionFlagsOf(entry) };
}
