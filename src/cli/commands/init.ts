/** `drkit init DIR`: creates a site directory. */
import fs from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { DrkitError } from '../../core/index.js';
import { LocalSite, MARKER_FILE, MIN_WRITE_LOG_BYTES } from '../../local/index.js';
import { CliContext } from '../internal/context.js';
import { mib } from '../internal/output.js';
import { parseInteger } from '../internal/parse.js';

const MiB = 1024 * 1024;

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('create a site in DIR (empty or new): extents, metadata, write log')
    .argument('<dir>', 'the site directory')
    .option('--site-id <id>', 'the site id other sites name it by (default: site- and 8 random hex digits)')
    .option('--storage-only', 'a backup target: receives and serves snapshots, holds no volumes of its own')
    .option('--write-log-mib <mib>', 'write log size in MiB (sparse)', '256')
    .option('--no-write-log', 'no write log: every write goes redirect-on-write at once')
    .action(async (dir: string, opts: { siteId?: string; storageOnly?: boolean; writeLogMib: string; writeLog: boolean }, command: Command) => {
      const ctx = new CliContext(command.optsWithGlobals());
      if (fs.existsSync(join(dir, MARKER_FILE))) throw new DrkitError('ALREADY_EXISTS', `${dir} already holds a drkit site`, { data: { path: dir } });
      const logBytes = parseInteger(opts.writeLogMib, '--write-log-mib', MIN_WRITE_LOG_BYTES / MiB) * MiB;
      const site = await LocalSite.open({
        dir,
        create: true,
        ...(opts.siteId === undefined ? {} : { siteId: opts.siteId }),
        storageOnly: opts.storageOnly === true,
        writeLog: opts.writeLog ? { byteLength: logBytes } : false,
      });
      const { siteId, storageOnly, marker } = site;
      await site.close();
      ctx.out.emit(
        'result',
        { command: 'init', dir: site.dir, siteId, storageOnly, writeLogByteLength: marker.writeLogByteLength },
        `initialised ${storageOnly ? 'storage-only ' : ''}site ${siteId} in ${site.dir} (${marker.writeLogByteLength === null ? 'no write log' : `write log ${mib(marker.writeLogByteLength)}`})`,
      );
    });
}
