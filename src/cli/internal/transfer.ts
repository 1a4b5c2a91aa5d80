/**
 * Device copies of the commands (import, export, restore --to): `copyDevice` with a
 * progress bar, and opening a raw file or block device as the target of an export.
 */
import fs from 'node:fs/promises';
import type { BlockDevice } from '../../adapters/index.js';
import { RawFileBlockDevice, type RawFileBlockDeviceOptions } from '../../adapters/node.js';
import { DrkitError, isDrkitError } from '../../core/index.js';
import { copyDevice } from '../../local/index.js';
import { mib, type Output } from './output.js';

/** Copies all of `from` to `to` with a progress bar; returns the summary line's facts. */
export async function copyWithProgress(out: Output, label: string, from: BlockDevice, to: BlockDevice, targetIsZero: boolean): Promise<{ byteLength: number; writtenBytes: number; seconds: number }> {
  const progress = out.progress(label, from.byteLength);
  const startMs = performance.now();
  try {
    const r = await copyDevice(from, to, { targetIsZero, onProgress: (p) => progress.update(p.completedBytes, p.phase) });
    return { byteLength: r.copiedBytes, writtenBytes: r.writtenBytes, seconds: (performance.now() - startMs) / 1000 };
  } finally {
    progress.done();
  }
}

/**
 * Opens `path` to receive `byteLength` bytes: a block device as it is (it must be large
 * enough), a regular file recreated sparse at that length (so it reads as zeros).
 * @returns the device and whether it reads as zeros
 * @throws OUT_OF_RANGE for a block device too small
 */
export async function openExportTarget(path: string, byteLength: number): Promise<{ device: RawFileBlockDevice; isZero: boolean }> {
  const stat = await fs.stat(path).catch(() => undefined);
  if (stat?.isBlockDevice() === true) {
    const device = await openStreamingTarget({ path });
    if (device.byteLength < byteLength) {
      await device.close();
      throw new DrkitError('OUT_OF_RANGE', `${path} holds ${mib(device.byteLength)}, the copy needs ${mib(byteLength)}`, { data: { path } });
    }
    return { device, isZero: false };
  }
  return { device: await openStreamingTarget({ path, create: { byteLength, overwrite: true } }), isZero: true };
}

/**
 * Opens the file or device a snapshot is streamed into (export, restore --to) with
 * O_DIRECT writes where its file system takes them: a restore writes GiBs once, and
 * page-cache copies plus writeback cost more CPU than the writes (1 GiB here: 0.11 s of
 * system CPU direct against 0.73-1.27 s buffered, docs/benchmarks.md). Where O_DIRECT is
 * refused (tmpfs before Linux 6.6), buffered writes.
 * @throws as RawFileBlockDevice.open
 */
export async function openStreamingTarget(options: RawFileBlockDeviceOptions): Promise<RawFileBlockDevice> {
  try {
    return await RawFileBlockDevice.open({ ...options, direct: true });
  } catch (err) {
    if (isDrkitError(err) && err.code === 'NOT_SUPPORTED') return RawFileBlockDevice.open(options);
    throw err;
  }
}

/** "12.3 MiB in 0.4 s (30 MB/s)". */
export function rate(byteLength: number, seconds: number): string {
  return `${mib(byteLength)} in ${seconds.toFixed(1)} s (${(byteLength / 1e6 / Math.max(seconds, 0.001)).toFixed(0)} MB/s)`;
}
