/** `drkit diff SNAP_A SNAP_B`: the blocks that differ between two snapshots. */
import type { Command } from 'commander';
import { CliContext } from '../internal/context.js';
import { mib } from '../internal/output.js';
import { resolveSnapshot } from '../internal/resolve.js';

export function registerDiff(program: Command): void {
  program
    .command('diff')
    .description('list the byte ranges that differ between two snapshots (cost: the changed blocks, not the volume size)')
    .argument('<from>', 'the older snapshot (name or id)')
    .argument('<to>', 'the newer snapshot (name or id)')
    .option('--ranges', 'print every changed range (JSON mode always does)')
    .action(async (fromRef: string, toRef: string, opts: { ranges?: boolean }, command: Command) => {
      const ctx = new CliContext(command.optsWithGlobals());
      await ctx.withSite(async ({ tree }) => {
        const from = resolveSnapshot(tree, fromRef);
        const to = resolveSnapshot(tree, toRef);
        let rangeCount = 0;
        let changedBytes = 0;
        for await (const r of tree.diff(from.id, to.id)) {
          rangeCount++;
          changedBytes += r.byteLength;
          const zero = r.fingerprints.every((f) => f === undefined);
          ctx.out.emit('range', { byteOffset: r.byteOffset, byteLength: r.byteLength, zero }, opts.ranges === true ? `${r.byteOffset}+${r.byteLength}${zero ? ' (zero)' : ''}` : undefined);
        }
        ctx.out.emit(
          'result',
          { command: 'diff', from: from.id, to: to.id, rangeCount, changedBytes, byteLength: to.byteLength },
          `${from.id} "${from.name}" -> ${to.id} "${to.name}": ${changedBytes / to.blockBytes} changed blocks of ${to.byteLength / to.blockBytes} (${mib(changedBytes)} in ${rangeCount} ranges)`,
        );
      });
    });
}
