/**
 * `drkit serve --listen HOST:PORT`: serves this site to its peers (receive, list, pull)
 * on TCP, or TLS with --tls-*, until SIGINT or SIGTERM; then stops listening, closes the
 * connections, flushes and closes the site, and exits 0.
 */
import type { Command } from 'commander';
import { LocalSite } from '../../local/index.js';
import { CliContext } from '../internal/context.js';
import { loadCredentials, serverOptions, withCredentialOptions, type CredentialFlags } from '../internal/remote.js';
import { nextShutdownSignal } from '../internal/signals.js';
import { processSettingsInEffect } from '../internal/process-settings.js';

export function registerServe(program: Command): void {
  withCredentialOptions(
    program
      .command('serve')
      .description('serve this site to peer sites until SIGINT/SIGTERM (replication target, source of pulls and remote listings)')
      .requiredOption('--listen <host:port>', 'address to listen on (port 0: any free port, printed)'),
  ).action(async (opts: CredentialFlags & { listen: string }, command: Command) => {
    const ctx = new CliContext(command.optsWithGlobals());
    const credentials = await loadCredentials(opts);
    const shutdown = nextShutdownSignal(); // armed before listening: no window where a signal kills uncleanly
    const local = await LocalSite.open({ dir: ctx.siteDir(), replication: serverOptions(credentials) });
    let signal: NodeJS.Signals;
    try {
      const listener = await local.site.listen(credentials.transport, opts.listen);
      ctx.out.emit(
        'listening',
        { siteId: local.siteId, address: listener.address, remote: `${local.siteId}@${listener.address}`, tls: credentials.tls, storageOnly: local.storageOnly, processSettings: processSettingsInEffect() },
        `site ${local.siteId} listening on ${listener.address}${credentials.tls ? ' (TLS)' : ''}: peers reach it as ${local.siteId}@${listener.address}`,
      );
      signal = await shutdown;
      ctx.out.note(`${signal}: stopping`);
    } finally {
      await local.close();
    }
    ctx.out.emit('result', { command: 'serve', stoppedBy: signal }, `stopped on ${signal}; site ${local.siteId} flushed and closed`);
  });
}
