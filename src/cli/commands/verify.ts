/** `drkit verify`: reference counts, dangling and leaked data, and (with --data) every extent's checksum. */
import type { Command } from 'commander';
import { DrkitError } from '../../core/index.js';
import { CliContext } from '../internal/context.js';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check the site\'s metadata (and with --data re-read and re-fingerprint every extent); exits 4 on a problem')
    .option('--data', 're-read every extent and check its checksum and fingerprint')
    .action(async (opts: { data?: boolean }, command: Command) => {
      const ctx = new CliContext(command.optsWithGlobals());
      await ctx.withSite(async ({ tree }) => {
        const report = await tree.verify({ readData: opts.data === true });
        for (const p of report.problems) ctx.out.emit('problem', { ...p }, `problem: ${JSON.stringify(p)}`);
        ctx.out.emit(
          'result',
          { command: 'verify', ok: report.ok, nodesChecked: report.nodesChecked, extentsChecked: report.extentsChecked, problemCount: report.problems.length },
          `${report.nodesChecked} map nodes and ${report.extentsChecked} extents checked${opts.data === true ? ' (data re-read)' : ''}: ${report.ok ? 'no problems' : `${report.problems.length} problems`}`,
        );
        if (!report.ok) throw new DrkitError('CORRUPTION', `verify found ${report.problems.length} problems`, { data: { problemCount: report.problems.length } });
      });
    });
}
