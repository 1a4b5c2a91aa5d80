/**
 * SHA-256 of a whole device (a volume or a snapshot reader), read in bounded chunks: how
 * a restore or clone proves that what it produced reads back as its source.
 */
import { createHash } from 'node:crypto';
import { throwIfAborted } from '../../core/errors.js';
import type { BlockDevice } from '../../adapters/block-device.js';

/**
 * Bytes read per step: 1 MiB bounds the memory of a verification whatever the volume's
 * size, and is a whole number of blocks for every block size a tree accepts (<= 1 MiB).
 */
export const DIGEST_CHUNK_BYTES = 1 << 20;

/** Hex SHA-256 of every byte of `device`, read front to back. @throws the device's read codes, ABORTED */
export async function deviceDigest(device: Pick<BlockDevice, 'byteLength' | 'read'>, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for (let byteOffset = 0; byteOffset < device.byteLength; byteOffset += DIGEST_CHUNK_BYTES) {
    throwIfAborted(signal);
    const byteLength = Math.min(DIGEST_CHUNK_BYTES, device.byteLength - byteOffset);
    hash.update(await device.read(byteOffset, byteLength, signal === undefined ? {} : { signal }));
  }
  return hash.digest('hex');
}
