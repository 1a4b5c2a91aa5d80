/**
 * `drkit restore --from ADDR --to FILE`: a remote snapshot streamed straight into a raw
 * file or block device, with a progress bar, Ctrl-C to stop, and resume on the next run
 * (the checkpoint file FILE.drkit-restore; a new file is only recreated when there is none).
 */
import fs from 'node:fs/promises';
import { openStreamingTarget } from './transfer.js';
import { fileRestoreCheckpoints, type DeviceRestoreResult, type RemoteSite, type Site } from '../../replication/index.js';
import type { Output, Progress } from './output.js';

/** Suffix of the checkpoint file kept beside the target while a restore is unfinished. */
export const RESTORE_CHECKPOINT_SUFFIX = '.drkit-restore';

/**
 * Restores `remoteSnapshotId` of `remote` into `path`.
 * @throws ABORTED on SIGINT (the checkpoint stays), and Site.restoreToDevice's codes
 */
export async function restoreFromRemoteToFile(out: Output, site: Site, remote: RemoteSite, remoteSnapshotId: string, path: string): Promise<DeviceRestoreResult & { seconds: number }> {
  const checkpointPath = `${path}${RESTORE_CHECKPOINT_SUFFIX}`;
  const resuming = await fs.stat(checkpointPath).then(
    () => true,
    () => false,
  );
  const stat = await fs.stat(path).catch(() => undefined);
  const isBlockDevice = stat?.isBlockDevice() === true;
  // A new file grows to the snapshot's length at BEGIN (sparse); a resumed one is kept.
  const device = isBlockDevice || resuming ? await openStreamingTarget({ path }) : await openStreamingTarget({ path, create: { byteLength: 4096, overwrite: true } });
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  let bar: Progress | undefined;
  const started = Date.now();
  try {
    const result = await site.restoreToDevice(remote, remoteSnapshotId, device, {
      deviceZeroed: !isBlockDevice && !resuming,
      checkpoints: fileRestoreCheckpoints(checkpointPath),
      signal: controller.signal,
      onProgress: (p) => {
        if (p.totalBytes === 0) return;
        bar ??= out.progress('restore', p.totalBytes);
        bar.update(p.logicalBytes, p.phase);
      },
    });
    return { ...result, seconds: (Date.now() - started) / 1000 };
  } finally {
    process.off('SIGINT', onSigint);
    bar?.done();
    await device.close();
  }
}
