/**
 * The `drkit` command: a reference command line over the library, the way restic and
 * borg users expect one (one binary, progress bars, `--json` lines, clear coded errors,
 * exit codes by error kind, a long-running `serve`). docs/cli.md documents every command.
 */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { isDrkitError } from '../core/index.js';
import { registerClone } from './commands/clone.js';
import { registerDiff } from './commands/diff.js';
import { registerExport } from './commands/export.js';
import { registerImport } from './commands/import.js';
import { registerInit } from './commands/init.js';
import { registerList } from './commands/list.js';
import { registerNbd } from './commands/nbd.js';
import { registerProtect } from './commands/protect.js';
import { registerRelay } from './commands/relay.js';
import { registerWitness } from './commands/witness.js';
import { registerReplicate } from './commands/replicate.js';
import { registerRestore } from './commands/restore.js';
import { registerServe } from './commands/serve.js';
import { registerSnapshot } from './commands/snapshot.js';
import { registerVerify } from './commands/verify.js';
import { SITE_ENV } from './internal/context.js';
import { EXIT, exitCodeOf, hintOf } from './internal/exit-codes.js';
import { Output } from './internal/output.js';

/** The program with every command, ready to parse. */
export function buildProgram(): Command {
  const { version } = createRequire(import.meta.url)('../package.json') as { version: string };
  const program = new Command('drkit')
    .description('disaster-recovery primitives on a site directory: import, snapshot, clone, diff, restore, replicate, serve')
    .version(version)
    .option('--site <dir>', `the site directory (default: $${SITE_ENV})`)
    .option('--json', 'one JSON object per line on stdout (results, progress, errors) for scripts')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  for (const register of [registerInit, registerImport, registerSnapshot, registerList, registerDiff, registerClone, registerRestore, registerExport, registerVerify, registerServe, registerRelay, registerWitness, registerNbd, registerReplicate, registerProtect]) {
    register(program);
  }
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs the command line and resolves with the exit code. */
export async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    const out = new Output(argv.includes('--json'));
    if (err instanceof CommanderError) {
      // Help and version end with code 0; every other parse failure is a usage error
      // (commander printed it; a script reading --json lines gets it as one too).
      if (err.exitCode === 0) return EXIT.ok;
      if (out.json) out.error('INVALID_ARGUMENT', err.message.replace(/^error: /, ''), hintOf('INVALID_ARGUMENT'), EXIT.usage);
      return EXIT.usage;
    }
    if (isDrkitError(err)) {
      const exitCode = exitCodeOf(err.code, err.transient);
      out.error(err.code, err.message, hintOf(err.code), exitCode);
      return exitCode;
    }
    out.error('INTERNAL', err instanceof Error ? (err.stack ?? err.message) : String(err), hintOf('INTERNAL'), EXIT.failure);
    return EXIT.failure;
  }
}

// Exit at once: a finished command leaves nothing to wait for (pooled workers, idle sockets).
process.exit(await run(process.argv.slice(2)));
