/** `drkit export VOLUME|SNAP FILE`: a volume's or a snapshot's bytes into a raw file or block device. */
import type { Command } from 'commander';
import type { BlockDevice } from '../../adapters/index.js';
import type { LocalSite } from '../../local/index.js';
import { CliContext } from '../internal/context.js';
import { resolveVolumeOrSnapshot } from '../internal/resolve.js';
import { copyWithProgress, openExportTarget, rate } from '../internal/transfer.js';

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('copy a volume or a snapshot into a raw file (recreated, sparse) or a block device')
    .argument('<source>', 'a volume or a snapshot (name or id)')
    .argument('<file>', 'target raw file or block device')
    .action(async (ref: string, file: string, _opts: unknown, command: Command) => {
      const ctx = new CliContext(command.optsWithGlobals());
      await ctx.withSite(async (local) => {
        const found = resolveVolumeOrSnapshot(local.tree, ref);
        const id = 'volume' in found ? found.volume.id : found.snapshot.id;
        const r = await exportDevice(ctx, local, found, file);
        ctx.out.emit('result', { command: 'export', source: id, file, byteLength: r.byteLength, writtenBytes: r.writtenBytes, seconds: r.seconds }, `exported ${id} to ${file}: ${rate(r.byteLength, r.seconds)}`);
      });
    });
}

/** Copies a volume or snapshot of `local` into `file` (also `restore --to`). */
export async function exportDevice(
  ctx: CliContext,
  local: LocalSite,
  found: { volume: { id: string } } | { snapshot: { id: string } },
  file: string,
): Promise<{ byteLength: number; writtenBytes: number; seconds: number }> {
  const source: BlockDevice & { close(): Promise<void> } = 'volume' in found ? await local.tree.openVolume(found.volume.id) : local.tree.openSnapshot(found.snapshot.id);
  try {
    const target = await openExportTarget(file, source.byteLength);
    try {
      return await copyWithProgress(ctx.out, 'export', source, target.device, target.isZero);
    } finally {
      await target.device.close();
    }
  } finally {
    await source.close();
  }
}
