/**
 * `drkit restore SNAP`: a volume reverted in place to a snapshot; `--to FILE` the snapshot
 * into a raw file or device; `--from ADDR` the snapshot pulled from a remote site first
 * (only what this site lacks crosses the wire). `--from ADDR --to FILE` streams the
 * remote snapshot straight into the file or device (Site.restoreToDevice: no local copy
 * first), resumable through FILE.drkit-restore; Ctrl-C stops it, and the same command
 * run again resumes where the last checkpoint was.
 */
import type { Command } from 'commander';
import type { SnapshotInfo } from '../../snapshot/index.js';
import { CliContext } from '../internal/context.js';
import { loadCredentials, parseRemote, withCredentialOptions, type CredentialFlags } from '../internal/remote.js';
import { resolveSnapshot, resolveVolume } from '../internal/resolve.js';
import { rate } from '../internal/transfer.js';
import { exportDevice } from './export.js';
import { restoreFromRemoteToFile } from '../internal/remote-restore.js';

interface RestoreFlags extends CredentialFlags {
  to?: string;
  from?: string;
  volume?: string;
}

export function registerRestore(program: Command): void {
  withCredentialOptions(
    program
      .command('restore')
      .description('revert a volume in place to a snapshot, or (--to) write the snapshot into a file or device; --from pulls it from a remote site first')
      .argument('<snapshot>', 'the snapshot (name or id; with --from, its id at the remote, as `list --remote` shows)')
      .option('--to <file>', 'write the snapshot into this raw file (recreated, sparse) or block device instead')
      .option('--from <address>', 'pull the snapshot from this remote site first, SITE_ID@HOST:PORT')
      .option('--volume <volume>', 'the volume to revert (default: the snapshot\'s own)'),
  ).action(async (ref: string, opts: RestoreFlags, command: Command) => {
    const ctx = new CliContext(command.optsWithGlobals());
    await ctx.withSite(async (local) => {
      const { tree, site } = local;
      let snapshot: SnapshotInfo;
      if (opts.from !== undefined && opts.to !== undefined) {
        const remote = parseRemote(opts.from, await loadCredentials(opts));
        const r = await restoreFromRemoteToFile(ctx.out, site, remote, ref, opts.to);
        ctx.out.emit(
          'result',
          { command: 'restore', remoteSiteId: remote.siteId, remoteSnapshotId: ref, file: opts.to, byteLength: r.progress.totalBytes, resumedFromBytes: r.progress.resumedFromBytes, extentBytes: r.progress.extentBytes, wireBytes: r.progress.wireBytes, seconds: r.seconds },
          `restored ${ref} from ${remote.siteId} straight into ${opts.to}: ${rate(r.progress.totalBytes, r.seconds)}, ${(r.progress.wireBytes / 1e6).toFixed(1)} MB on the wire`,
        );
        return;
      }
      if (opts.from !== undefined) {
        const remote = parseRemote(opts.from, await loadCredentials(opts));
        const progress = ctx.out.progress('pull', 0);
        try {
          snapshot = await site.pull(remote, ref, { onProgress: (p) => progress.update(p.completedBytes, p.phase) });
        } finally {
          progress.done();
        }
        ctx.out.emit('pulled', { remoteSiteId: remote.siteId, remoteSnapshotId: ref, snapshot }, `pulled ${ref} from ${remote.siteId} as ${snapshot.id} "${snapshot.name}"`);
      } else snapshot = resolveSnapshot(tree, ref);
      if (opts.to !== undefined) {
        const r = await exportDevice(ctx, local, { snapshot }, opts.to);
        ctx.out.emit('result', { command: 'restore', snapshotId: snapshot.id, file: opts.to, byteLength: r.byteLength, seconds: r.seconds }, `restored ${snapshot.id} "${snapshot.name}" to ${opts.to}: ${rate(r.byteLength, r.seconds)}`);
        return;
      }
      const volumeRef = opts.volume ?? (opts.from === undefined ? snapshot.volumeId : undefined);
      if (volumeRef === undefined) {
        ctx.out.emit('result', { command: 'restore', snapshotId: snapshot.id }, `${snapshot.id} is here now: clone it (\`drkit clone ${snapshot.id} --name N\`), export it, or restore it with --volume or --to`);
        return;
      }
      const volume = resolveVolume(tree, volumeRef);
      await tree.restore(volume.id, snapshot.id);
      ctx.out.emit('result', { command: 'restore', snapshotId: snapshot.id, volumeId: volume.id }, `volume ${volume.name} (${volume.id}) reverted in place to ${snapshot.id} "${snapshot.name}"`);
    });
  });
}
