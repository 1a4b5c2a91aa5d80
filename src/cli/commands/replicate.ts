/** `drkit replicate SNAP --to ADDR`: a snapshot to a remote site, incremental and deduplicated. */
import type { Command } from 'commander';
import { CliContext } from '../internal/context.js';
import { mib } from '../internal/output.js';
import { loadCredentials, parseRemote, withCredentialOptions, type CredentialFlags } from '../internal/remote.js';
import { resolveSnapshot } from '../internal/resolve.js';

export function registerReplicate(program: Command): void {
  withCredentialOptions(
    program
      .command('replicate')
      .description('send a snapshot to a remote site: incremental against the newest snapshot both hold, deduplicated, compressed, resumable')
      .argument('<snapshot>', 'the snapshot (name or id)')
      .requiredOption('--to <address>', 'the remote site, SITE_ID@HOST:PORT'),
  ).action(async (ref: string, opts: CredentialFlags & { to: string }, command: Command) => {
    const ctx = new CliContext(command.optsWithGlobals());
    const credentials = await loadCredentials(opts);
    const remote = parseRemote(opts.to, credentials);
    await ctx.withSite(async ({ tree, site }) => {
      const s = resolveSnapshot(tree, ref);
      const progress = ctx.out.progress('replicate', s.byteLength);
      let r;
      try {
        r = await site.replicate(s.id, remote, { onProgress: (p) => progress.update(p.completedBytes, p.phase) });
      } finally {
        progress.done();
      }
      const p = r.progress;
      ctx.out.emit(
        'result',
        { command: 'replicate', snapshotId: s.id, remoteSiteId: remote.siteId, remoteSnapshotId: r.remoteSnapshotIds[0], baseSnapshotId: r.baseSnapshotIds[0] ?? null, progress: p },
        `${s.id} "${s.name}" -> ${remote.siteId} as ${r.remoteSnapshotIds[0]} (${r.baseSnapshotIds[0] === undefined ? 'full' : `incremental against ${r.baseSnapshotIds[0]}`}): ` +
          `${mib(p.totalBytes)} changed, ${mib(p.sentExtentBytes)} of extents sent as ${mib(p.compressedExtentBytes)}, ${mib(p.dedupedBytes)} deduped`,
      );
    });
  });
}
