/** `drkit clone SNAP --name N`: a writable volume from a snapshot, O(1). */
import type { Command } from 'commander';
import { CliContext } from '../internal/context.js';
import { resolveSnapshot } from '../internal/resolve.js';

export function registerClone(program: Command): void {
  program
    .command('clone')
    .description('create a writable volume whose contents are a snapshot\'s (O(1))')
    .argument('<snapshot>', 'the snapshot (name or id)')
    .requiredOption('--name <name>', 'the new volume\'s name')
    .action(async (ref: string, opts: { name: string }, command: Command) => {
      const ctx = new CliContext(command.optsWithGlobals());
      await ctx.withSite(async ({ tree }) => {
        const s = resolveSnapshot(tree, ref);
        const volume = await tree.clone(s.id, { name: opts.name });
        await volume.close();
        ctx.out.emit('result', { command: 'clone', volume: tree.getVolume(volume.id) }, `volume ${volume.id} "${opts.name}" cloned from ${s.id} "${s.name}"`);
      });
    });
}
