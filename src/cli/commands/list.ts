/** `drkit list [--remote ADDR]`: volumes and snapshots here, or the snapshots a remote holds of this site's volumes. */
import type { Command } from 'commander';
import { originOf, volumeKeyOf } from '../../replication/index.js';
import { CliContext } from '../internal/context.js';
import { mib } from '../internal/output.js';
import { loadCredentials, parseRemote, withCredentialOptions, type CredentialFlags } from '../internal/remote.js';

export function registerList(program: Command): void {
  withCredentialOptions(
    program
      .command('list')
      .description('list volumes and snapshots; with --remote, the snapshots a remote site holds of this site\'s volume lineages')
      .option('--remote <address>', 'a remote site, SITE_ID@HOST:PORT'),
  ).action(async (opts: CredentialFlags & { remote?: string }, command: Command) => {
    const ctx = new CliContext(command.optsWithGlobals());
    await ctx.withSite(async ({ site }) => {
      if (opts.remote === undefined) {
        for (const v of site.listVolumes()) {
          ctx.out.emit('volume', { ...v }, `volume   ${v.id.padEnd(10)} ${v.name.padEnd(24)} ${mib(v.byteLength).padStart(12)}  ${v.blockBytes / 1024} KiB blocks${v.parentSnapshotId === undefined ? '' : `  from ${v.parentSnapshotId}`}`);
        }
        for (const s of site.listSnapshots()) {
          ctx.out.emit('snapshot', { ...s }, `snapshot ${s.id.padEnd(10)} ${s.name.padEnd(24)} ${mib(s.byteLength).padStart(12)}  of ${s.volumeId}  ${new Date(s.createdMs).toISOString()}  ${s.consistency}`);
        }
        return;
      }
      const remote = parseRemote(opts.remote, await loadCredentials(opts));
      // The protocol lists by volume lineage: ask for every lineage this site knows.
      const lineages = new Set<string>([
        ...site.listVolumes().map((v) => `${site.siteId}/${v.id}`),
        ...site.listSnapshots().map((s) => volumeKeyOf(originOf(s, site.siteId))),
      ]);
      let count = 0;
      for (const lineage of [...lineages].sort()) {
        for (const h of await site.listRemote(remote, lineage)) {
          count++;
          ctx.out.emit(
            'remote-snapshot',
            { remoteSiteId: remote.siteId, lineage, ...h },
            `remote   ${h.snapshotId.padEnd(10)} at ${remote.siteId}: origin ${h.originSiteId}/${h.originSnapshotId} (lineage ${lineage})  ${new Date(h.createdMs).toISOString()}`,
          );
        }
      }
      ctx.out.note(`${count} snapshots held at ${remote.siteId} of ${lineages.size} lineages of site ${site.siteId}`);
    });
  });
}
