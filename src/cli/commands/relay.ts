/**
 * `drkit relay --listen HOST:PORT --to HOST:PORT`: the bridgehead of a remote site "with a
 * proxy". Forwards every TCP connection it accepts to the one fixed `--to` address (the
 * remote site's `drkit serve`), byte for byte, until SIGINT or SIGTERM. It takes no
 * credentials and holds no key: sites reach it through a remote site's `proxyAddress`,
 * and the handshake and authenticated frames run end to end through it (docs/protocol.md).
 */
import type { Command } from 'commander';
import { TcpTransport } from '../../adapters/node.js';
import { startRelay } from '../../replication/index.js';
import { CliContext } from '../internal/context.js';
import { parseInteger } from '../internal/parse.js';
import { nextShutdownSignal } from '../internal/signals.js';

export function registerRelay(program: Command): void {
  program
    .command('relay')
    .description('forward connections to one remote site without holding its keys (a bridgehead: a remote site\'s proxyAddress) until SIGINT/SIGTERM')
    .requiredOption('--listen <host:port>', 'address to listen on (port 0: any free port, printed)')
    .requiredOption('--to <host:port>', 'the remote site every connection is forwarded to (its `drkit serve --listen` address)')
    .option('--max-connections <n>', 'connections relayed at once; more are closed', '256')
    .action(async (opts: { listen: string; to: string; maxConnections: string }, command: Command) => {
      const ctx = new CliContext(command.optsWithGlobals());
      const maxConnections = parseInteger(opts.maxConnections, '--max-connections', 1);
      const shutdown = nextShutdownSignal(); // armed before listening: no window where a signal kills uncleanly
      const relay = await startRelay({
        listen: opts.listen,
        to: opts.to,
        transport: TcpTransport.create(),
        maxConnections,
        onError: (e) => ctx.out.note(`relayed connection: ${e.code} ${e.message}`),
      });
      let signal: NodeJS.Signals;
      try {
        ctx.out.emit('listening', { address: relay.address, to: opts.to }, `relay listening on ${relay.address}, forwarding to ${opts.to}`);
        signal = await shutdown;
        ctx.out.note(`${signal}: stopping`);
      } finally {
        await relay.close();
      }
      ctx.out.emit('result', { command: 'relay', stoppedBy: signal, ...relay.stats() }, `stopped on ${signal}; relayed ${relay.stats().connections} connections`);
    });
}
