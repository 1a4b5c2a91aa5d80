/** `drkit import IMAGE --volume NAME`: a raw image file or block device into a volume. */
import type { Command } from 'commander';
import { RawFileBlockDevice } from '../../adapters/node.js';
import { DrkitError } from '../../core/index.js';
import { DEFAULT_BLOCK_BYTES, MIN_BLOCK_BYTES, type Volume } from '../../snapshot/index.js';
import { CliContext } from '../internal/context.js';
import { copyWithProgress, rate } from '../internal/transfer.js';
import { parseInteger } from '../internal/parse.js';

export function registerImport(program: Command): void {
  program
    .command('import')
    .description('copy a raw image file or block device into a volume (created when absent; an existing one must have the image\'s length)')
    .argument('<image>', 'raw image file or block device')
    .requiredOption('--volume <name>', 'the volume (name or id)')
    .option('--block-bytes <n>', `block size of a new volume (default ${DEFAULT_BLOCK_BYTES}, or the largest power of two dividing the image length)`)
    .action(async (image: string, opts: { volume: string; blockBytes?: string }, command: Command) => {
      const ctx = new CliContext(command.optsWithGlobals());
      const source = await RawFileBlockDevice.open({ path: image, readOnly: true });
      try {
        await ctx.withSite(async (local) => {
          const { tree } = local;
          const existing = tree.listVolumes().find((v) => v.id === opts.volume || v.name === opts.volume);
          let volume: Volume;
          if (existing !== undefined) {
            tree.findVolume(existing.name); // refuses a shared name
            if (existing.byteLength !== source.byteLength) {
              throw new DrkitError('INVALID_ARGUMENT', `volume ${existing.name} holds ${existing.byteLength} bytes, the image ${source.byteLength}`, { data: { volumeId: existing.id } });
            }
            volume = await tree.openVolume(existing.id);
          } else {
            const blockBytes = opts.blockBytes === undefined ? blockBytesFor(source.byteLength) : parseInteger(opts.blockBytes, '--block-bytes', MIN_BLOCK_BYTES);
            if (blockBytes < DEFAULT_BLOCK_BYTES) {
              ctx.out.note(`note: the image length is not a multiple of ${DEFAULT_BLOCK_BYTES} B, so the volume gets ${blockBytes} B blocks (more metadata, slower); pad the image to a multiple of ${DEFAULT_BLOCK_BYTES} B to avoid it`);
            }
            volume = await tree.createVolume({ name: opts.volume, byteLength: source.byteLength, blockBytes });
          }
          try {
            const r = await copyWithProgress(ctx.out, 'import', source, volume, existing === undefined);
            ctx.out.emit(
              'result',
              { command: 'import', image, volumeId: volume.id, volumeName: tree.getVolume(volume.id).name, byteLength: r.byteLength, writtenBytes: r.writtenBytes, seconds: r.seconds },
              `imported ${image} into volume ${tree.getVolume(volume.id).name} (${volume.id}): ${rate(r.byteLength, r.seconds)}`,
            );
          } finally {
            await volume.close();
          }
        });
      } finally {
        await source.close();
      }
    });
}

/**
 * The default block size, or the largest power of two (>= 512) dividing `byteLength` so the
 * volume has exactly the image's length.
 * @throws INVALID_ARGUMENT for a length that is not a positive multiple of 512
 */
function blockBytesFor(byteLength: number): number {
  if (byteLength === 0 || byteLength % MIN_BLOCK_BYTES !== 0) {
    throw new DrkitError('INVALID_ARGUMENT', `an image must be a positive multiple of ${MIN_BLOCK_BYTES} bytes, not ${byteLength}`, { data: { byteLength } });
  }
  let blockBytes = DEFAULT_BLOCK_BYTES;
  while (byteLength % blockBytes !== 0) blockBytes /= 2;
  return blockBytes;
}
