/**
 * `drkit nbd (--listen HOST:PORT | --socket PATH)`: exports this site's volumes and clones
 * (read-write) and snapshots (read-only, `VOLUME@SNAPSHOT`) over NBD to real disk tools
 * (qemu-img, qemu-io, nbdcopy, nbdinfo, hypervisors) until SIGINT or SIGTERM; then stops
 * the server (in-flight requests finish, written volumes are flushed), closes the site and
 * exits 0.
 */
import type { Command } from 'commander';
import { DrkitError } from '../../core/index.js';
import { LocalSite } from '../../local/index.js';
import { NbdServer } from '../../nbd/index.js';
import { CliContext } from '../internal/context.js';
import { parseInteger } from '../internal/parse.js';
import { nextShutdownSignal } from '../internal/signals.js';

interface NbdFlags {
  listen?: string;
  socket?: string;
  readOnly?: boolean;
  export?: string[];
}

export function registerNbd(program: Command): void {
  program
    .command('nbd')
    .description('export volumes, clones and snapshots over NBD until SIGINT/SIGTERM')
    .option('--listen <host:port>', 'TCP address (port 0: any free port, printed); exports are unauthenticated, keep it on loopback')
    .option('--socket <path>', 'Unix socket path instead of TCP')
    .option('--read-only', 'export volumes and clones read-only too')
    .option('--export <name...>', 'export only these names (volumes, or VOLUME@SNAPSHOT)')
    .action(async (opts: NbdFlags, command: Command) => {
      const ctx = new CliContext(command.optsWithGlobals());
      if ((opts.listen === undefined) === (opts.socket === undefined)) throw new DrkitError('INVALID_ARGUMENT', 'give exactly one of --listen HOST:PORT and --socket PATH');
      const listen = opts.socket !== undefined ? { socketPath: opts.socket } : tcpAddress(opts.listen!);
      const only = opts.export === undefined ? undefined : new Set(opts.export);
      const shutdown = nextShutdownSignal(); // armed before listening: no window where a signal kills uncleanly
      const local = await LocalSite.open({ dir: ctx.siteDir() });
      let signal: NodeJS.Signals;
      try {
        const server = await NbdServer.start({
          tree: local.tree,
          listen,
          ...(opts.readOnly === true ? { readOnly: true } : {}),
          ...(only === undefined ? {} : { exports: (e) => only.has(e.name) || e.aliases.some((a) => only.has(a)) }),
        });
        try {
          const exports = server.listExports();
          for (const e of exports) ctx.out.emit('export', { name: e.name, kind: e.kind, readOnly: e.readOnly, byteLength: e.byteLength, uri: server.uri(e.name) }, `  ${server.uri(e.name)}  (${e.kind}${e.readOnly ? ', read-only' : ''}, ${e.byteLength} bytes)`);
          ctx.out.emit('listening', { address: server.address, exports: exports.length }, `NBD server for site ${local.siteId}: ${exports.length} exports`);
          signal = await shutdown;
          ctx.out.note(`${signal}: stopping`);
        } finally {
          await server.close();
        }
      } finally {
        await local.close();
      }
      ctx.out.emit('result', { command: 'nbd', stoppedBy: signal }, `stopped on ${signal}; site ${local.siteId} flushed and closed`);
    });
}

function tcpAddress(text: string): { host: string; port: number } {
  const at = text.lastIndexOf(':');
  if (at <= 0) throw new DrkitError('INVALID_ARGUMENT', `--listen wants HOST:PORT, got "${text}"`);
  return { host: text.slice(0, at), port: parseInteger(text.slice(at + 1), '--listen port', 0) };
}
