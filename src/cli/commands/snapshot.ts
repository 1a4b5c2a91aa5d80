/** `drkit snapshot VOLUME --name N`: an O(1) crash-consistent snapshot of a volume. */
import type { Command } from 'commander';
import { CliContext } from '../internal/context.js';
import { resolveVolume } from '../internal/resolve.js';

export function registerSnapshot(program: Command): void {
  program
    .command('snapshot')
    .description('snapshot a volume (O(1): no data is copied)')
    .argument('<volume>', 'the volume (name or id)')
    .requiredOption('--name <name>', 'the snapshot\'s name')
    .action(async (ref: string, opts: { name: string }, command: Command) => {
      const ctx = new CliContext(command.optsWithGlobals());
      await ctx.withSite(async ({ tree }) => {
        const volume = resolveVolume(tree, ref);
        const s = await tree.snapshot(volume.id, { name: opts.name });
        ctx.out.emit('result', { command: 'snapshot', snapshot: s }, `snapshot ${s.id} "${s.name}" of volume ${volume.name} (${volume.id})`);
      });
    });
}
