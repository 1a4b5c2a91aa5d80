/**
 * `drkit witness --listen HOST:PORT --state FILE`: the Metro witness of a third host. It
 * leases each Metro pair to at most one site (src/metro/witness.ts) and keeps holder,
 * term and outdated site durably in FILE (written, fsynced, renamed before it answers);
 * every request is authenticated under the sites' pre-shared key (`--psk-file`). Runs
 * until SIGINT or SIGTERM.
 */
import type { Command } from 'commander';
import { SystemClock } from '../../adapters/index.js';
import { TcpTransport } from '../../adapters/node.js';
import { DrkitError } from '../../core/index.js';
import { DEFAULT_LEASE_MS, FileWitnessStore, Witness, startWitnessServer } from '../../metro/index.js';
import { CliContext } from '../internal/context.js';
import { parseInteger } from '../internal/parse.js';
import { loadCredentials, PSK_FILE_ENV } from '../internal/remote.js';
import { nextShutdownSignal } from '../internal/signals.js';

export function registerWitness(program: Command): void {
  program
      .command('witness')
      .description('run the Metro witness: lease each Metro pair to at most one writable site (run it on a third host) until SIGINT/SIGTERM')
      .requiredOption('--listen <host:port>', 'address to listen on (port 0: any free port, printed)')
      .requiredOption('--state <file>', 'the durable lease state (created when missing)')
      .option('--lease-ms <ms>', 'lease length: a survivor takes over this long after the active site failed', String(DEFAULT_LEASE_MS))
      .option('--psk-file <file>', `the pre-shared key of the Metro sites, in hex (default: $${PSK_FILE_ENV})`)
      .action(async (opts: { listen: string; state: string; leaseMs: string; pskFile?: string }, command: Command) => {
    const ctx = new CliContext(command.optsWithGlobals());
    const leaseMs = parseInteger(opts.leaseMs, '--lease-ms', 1);
    const credentials = await loadCredentials(opts.pskFile === undefined ? {} : { pskFile: opts.pskFile });
    if (credentials.psk === undefined) throw new DrkitError('INVALID_ARGUMENT', 'the witness authenticates sites by their pre-shared key: give --psk-file');
    const clock = new SystemClock();
    const shutdown = nextShutdownSignal();
    const witness = await Witness.open({ store: new FileWitnessStore(opts.state), clock, leaseMs });
    const server = await startWitnessServer({ witness, transport: TcpTransport.create(), address: opts.listen, psk: credentials.psk, clock });
    let signal: NodeJS.Signals;
    try {
      ctx.out.emit('listening', { address: server.address, state: opts.state, leaseMs }, `witness listening on ${server.address} (lease ${leaseMs} ms, state ${opts.state})`);
      signal = await shutdown;
      ctx.out.note(`${signal}: stopping`);
    } finally {
      await server.close();
    }
    ctx.out.emit('result', { command: 'witness', stoppedBy: signal }, `stopped on ${signal}`);
  });
}
