/**
 * The marker file of a local site directory (`drkit-site.json`): it names the directory
 * as a drkit site, records the site's id and the layout of the files beside it, and is
 * written once, atomically (temporary file, fsync, rename, fsync of the directory), before
 * any store is created, so a directory either is a site or is refused.
 */
import fs from 'node:fs/promises';
import { join } from 'node:path';
import { DrkitError, toDrkitError } from '../../core/errors.js';

/** Name of the marker file inside a site directory. */
export const MARKER_FILE = 'drkit-site.json';
/** Value of the marker's `format` field: a JSON file of another program is not a site. */
export const MARKER_FORMAT = 'drkit-local-site';
/** Layout version this build writes and reads (file names and roles below). */
export const LAYOUT_VERSION = 1;
/** Files of layout 1, relative to the site directory. */
export const LAYOUT_FILES = { extents: 'extents.img', metadata: 'metadata', writeLog: 'writelog.img' } as const;
/** Largest marker file read: it holds a few short fields, so anything bigger is not ours. */
const MAX_MARKER_BYTES = 64 * 1024;

/** What the marker records. */
export interface SiteMarker {
  readonly format: typeof MARKER_FORMAT;
  readonly layoutVersion: typeof LAYOUT_VERSION;
  readonly siteId: string;
  readonly storageOnly: boolean;
  /** The write log's length when the site was created with one, else null. */
  readonly writeLogByteLength: number | null;
  readonly createdMs: number;
}

/**
 * The marker of `dir`, or undefined when `dir` is absent or empty.
 * @throws INVALID_ARGUMENT when `dir` holds files but no marker (not a drkit site) or a
 *   marker of another format; FORMAT_VERSION for an unknown layout; CORRUPTION for a
 *   marker that does not parse; IO_ERROR
 */
export async function readMarker(dir: string): Promise<SiteMarker | undefined> {
  let entries: string[];
  try {
    const stat = await fs.stat(dir);
    if (!stat.isDirectory()) throw new DrkitError('INVALID_ARGUMENT', `${dir} is not a directory`, { data: { path: dir } });
    entries = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw toDrkitError(err, 'IO_ERROR', `cannot read ${dir}`, { path: dir });
  }
  if (!entries.includes(MARKER_FILE)) {
    if (entries.length === 0) return undefined;
    throw new DrkitError('INVALID_ARGUMENT', `${dir} is not a drkit site (it holds files but no ${MARKER_FILE}); use an empty or new directory`, {
      data: { path: dir },
    });
  }
  const path = join(dir, MARKER_FILE);
  const bytes = await fs.readFile(path).catch((err: unknown) => {
    throw toDrkitError(err, 'IO_ERROR', `cannot read ${path}`, { path });
  });
  if (bytes.byteLength > MAX_MARKER_BYTES) throw new DrkitError('CORRUPTION', `${path} is too large to be a site marker`, { data: { path } });
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new DrkitError('CORRUPTION', `${path} does not parse as JSON`, { cause: err, data: { path } });
  }
  return checkMarker(value, path);
}

/** Writes the marker of a new site atomically. @throws ALREADY_EXISTS when one is there, IO_ERROR */
export async function writeMarker(dir: string, marker: SiteMarker): Promise<void> {
  const path = join(dir, MARKER_FILE);
  const temporary = `${path}.tmp-${process.pid}`;
  try {
    const file = await fs.open(temporary, 'w', 0o644);
    try {
      await file.writeFile(`${JSON.stringify(marker, null, 2)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    // link() fails if a marker appeared meanwhile (another process creating the same site).
    await fs.link(temporary, path);
    await fs.unlink(temporary);
    const handle = await fs.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    await fs.unlink(temporary).catch(() => undefined);
    throw toDrkitError(err, 'IO_ERROR', `cannot write ${path}`, { path });
  }
}

function checkMarker(value: unknown, path: string): SiteMarker {
  if (typeof value !== 'object' || value === null || (value as { format?: unknown }).format !== MARKER_FORMAT) {
    throw new DrkitError('INVALID_ARGUMENT', `${path} is not a drkit site marker`, { data: { path } });
  }
  const m = value as Record<string, unknown>;
  if (m.layoutVersion !== LAYOUT_VERSION) {
    throw new DrkitError('FORMAT_VERSION', `site layout version ${String(m.layoutVersion)} is not readable by this build (reads ${LAYOUT_VERSION})`, {
      data: { path, layoutVersion: String(m.layoutVersion), supported: [LAYOUT_VERSION] },
    });
  }
  const log = m.writeLogByteLength;
  if (
    typeof m.siteId !== 'string' ||
    typeof m.storageOnly !== 'boolean' ||
    typeof m.createdMs !== 'number' ||
    !(log === null || (typeof log === 'number' && Number.isSafeInteger(log) && log > 0))
  ) {
    throw new DrkitError('CORRUPTION', `${path} has missing or malformed fields`, { data: { path } });
  }
  return { format: MARKER_FORMAT, layoutVersion: LAYOUT_VERSION, siteId: m.siteId, storageOnly: m.storageOnly, writeLogByteLength: log, createdMs: m.createdMs };
}
