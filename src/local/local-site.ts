/**
 * LocalSite: a whole drkit site on one directory, opened (or created) with one call.
 *
 * Layout (version 1, recorded in `drkit-site.json`): `extents.img` (a raw file holding
 * extent bytes, grown by the extent store as needed), `metadata/` (an LMDB environment:
 * block maps, snapshot records, the extent index, replication state), and, unless the site
 * was created without one, `writelog.img` (the tree's write log, a fixed-size raw file).
 *
 * Durability promise: `flush()` and `close()` make every acknowledged write durable (the
 * tree's flush: write log, extent device, then one durable metadata batch). A crash at any
 * moment leaves what the last flush committed, as each store promises. The marker is
 * written before any store exists, so a directory holding files but no marker is never
 * taken for a site (and never written into).
 */
import fs from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { DrkitError } from '../core/errors.js';
import { assertPositiveInteger } from '../core/validate.js';
import { DeviceExtentStore } from '../adapters/device-extent-store.js';
import { LmdbMetaStore } from '../adapters/lmdb-meta-store.js';
import { RawFileBlockDevice } from '../adapters/raw-file-block-device.js';
import type { Clock } from '../adapters/clock.js';
import { SnapshotTree } from '../snapshot/index.js';
import { ExtentCodec } from '../dedup/index.js';
import { Site, type SiteOptions } from '../replication/index.js';
import { LAYOUT_FILES, LAYOUT_VERSION, MARKER_FORMAT, readMarker, writeMarker, type SiteMarker } from './internal/site-marker.js';

/**
 * Default write log length: 256 MiB holds ~500 k small writes between drains (the tree
 * drains at half full) and costs no space until written (the file is sparse).
 */
export const DEFAULT_WRITE_LOG_BYTES = 256 * 1024 * 1024;
/** Smallest write log accepted: 1 MiB still holds a few hundred records between drains. */
export const MIN_WRITE_LOG_BYTES = 1024 * 1024;

/** Options of {@link LocalSite.open}. */
export interface LocalSiteOptions {
  /** The site directory. */
  dir: string;
  /**
   * Create the site when `dir` is absent or empty; an existing site is opened as it is.
   * Without it, a missing site fails with NOT_FOUND. @defaultValue false
   */
  create?: boolean;
  /**
   * The site's id. When creating: the id recorded (default `site-` and 8 random hex
   * digits). When opening: if given, it must equal the recorded one (INVALID_ARGUMENT otherwise).
   */
  siteId?: string;
  /** When creating: a storage-only site (a backup target holding no volumes of its own). @defaultValue false */
  storageOnly?: boolean;
  /**
   * When creating: the write log (`true`: {@link DEFAULT_WRITE_LOG_BYTES}; an object: that
   * length; `false`: none). It is fixed at creation: reopening uses what the marker records,
   * and a contradicting value (false for a site with a log, or a log for one without) fails
   * with INVALID_ARGUMENT. @defaultValue true
   */
  writeLog?: boolean | { byteLength: number };
  /** Clock of the tree and the site. @defaultValue new SystemClock() */
  clock?: Clock;
  /** Byte budget of the tree's block-map caches. @defaultValue DEFAULT_TREE_CACHE_BYTES (24 MiB) */
  treeCacheBytes?: number;
  /** Byte budget of the extent index caches. @defaultValue DEFAULT_EXTENT_CACHE_BYTES (16 MiB) */
  extentCacheBytes?: number;
  /** Replication options of the {@link Site} (peer keys, TLS identity, timeouts, workers). */
  replication?: Omit<SiteOptions, 'siteId' | 'tree' | 'meta' | 'storageOnly' | 'clock'>;
}

/** One open site directory: its tree, its replication endpoint and the stores under them. */
export class LocalSite {
  /** The site directory, resolved to an absolute path. */
  readonly dir: string;
  readonly siteId: string;
  readonly storageOnly: boolean;
  /** Volumes, snapshots, clones (with the write log when the site has one). */
  readonly tree: SnapshotTree;
  /** Replication endpoint over {@link tree}. */
  readonly site: Site;
  /** The metadata store (shared by the tree, the extent index and replication state). */
  readonly meta: LmdbMetaStore;
  readonly extents: DeviceExtentStore;
  /** What the marker records. */
  readonly marker: SiteMarker;
  readonly #devices: readonly RawFileBlockDevice[];
  #closing: Promise<void> | undefined;

  private constructor(dir: string, marker: SiteMarker, stores: OpenStores) {
    this.dir = dir;
    this.marker = marker;
    this.siteId = marker.siteId;
    this.storageOnly = marker.storageOnly;
    this.tree = stores.tree;
    this.site = stores.site;
    this.meta = stores.meta;
    this.extents = stores.extents;
    this.#devices = stores.devices;
  }

  /**
   * Opens the site in `options.dir`, creating it with `create: true`.
   * @throws NOT_FOUND (no site and no `create`); INVALID_ARGUMENT (bad options, a directory
   *   that is not a drkit site, a site id or write-log choice contradicting the marker);
   *   FORMAT_VERSION (unknown layout); CORRUPTION (malformed marker or stores); BUSY (the
   *   site is open elsewhere in this process or another); IO_ERROR
   */
  static async open(options: LocalSiteOptions): Promise<LocalSite> {
    if (typeof options !== 'object' || options === null || typeof options.dir !== 'string' || options.dir === '') {
      throw new DrkitError('INVALID_ARGUMENT', 'LocalSite.open: options.dir must be a non-empty string');
    }
    const dir = resolve(options.dir);
    const requestedLog = checkWriteLogOption(options.writeLog);
    let marker = await readMarker(dir);
    if (marker === undefined) {
      if (options.create !== true) {
        throw new DrkitError('NOT_FOUND', `no drkit site at ${dir} (create one with create: true, or \`drkit init ${options.dir}\`)`, { data: { path: dir } });
      }
      marker = {
        format: MARKER_FORMAT,
        layoutVersion: LAYOUT_VERSION,
        siteId: options.siteId ?? `site-${randomBytes(4).toString('hex')}`,
        storageOnly: options.storageOnly === true,
        writeLogByteLength: requestedLog === undefined ? DEFAULT_WRITE_LOG_BYTES : requestedLog,
        createdMs: Date.now(),
      };
      checkSiteId(marker.siteId);
      await fs.mkdir(dir, { recursive: true });
      await writeMarker(dir, marker);
    } else {
      checkAgainstMarker(options, requestedLog, marker, dir);
    }
    const stores = await openStores(dir, marker, options, options.create === true);
    return new LocalSite(dir, marker, stores);
  }

  /** Makes every acknowledged write of every volume durable. @throws the tree's flush failure */
  async flush(): Promise<void> {
    await this.tree.flush();
  }

  /**
   * Stops replication endpoints, flushes, and closes the tree, the extent store, the
   * metadata store and the files, in that order. Idempotent. Every store is closed even
   * when an earlier one fails; the first failure is thrown.
   */
  close(): Promise<void> {
    this.#closing ??= closeInOrder([
      () => this.site.close(),
      () => this.tree.close(),
      () => this.extents.close(),
      () => this.meta.close(),
      ...this.#devices.map((d) => () => d.close()),
    ]);
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

interface OpenStores {
  readonly tree: SnapshotTree;
  readonly site: Site;
  readonly meta: LmdbMetaStore;
  readonly extents: DeviceExtentStore;
  readonly devices: readonly RawFileBlockDevice[];
}

/** Opens the five parts; on a failure closes what was opened, last first. */
async function openStores(dir: string, marker: SiteMarker, options: LocalSiteOptions, create: boolean): Promise<OpenStores> {
  const undo: (() => Promise<void>)[] = [];
  try {
    const data = await RawFileBlockDevice.open({ path: join(dir, LAYOUT_FILES.extents), ...(create ? { create: true } : {}) });
    undo.push(() => data.close());
    const devices = [data];
    let log: RawFileBlockDevice | undefined;
    if (marker.writeLogByteLength !== null) {
      const byteLength = marker.writeLogByteLength;
      log = await RawFileBlockDevice.open({ path: join(dir, LAYOUT_FILES.writeLog), ...(create ? { create: { byteLength, openExisting: true } } : {}) });
      const opened = log;
      undo.push(() => opened.close());
      devices.push(log);
    }
    const meta = await LmdbMetaStore.open({ path: join(dir, LAYOUT_FILES.metadata), create });
    undo.push(() => meta.close());
    // With a decoder the store keeps extents that arrive compressed in that form (compression at rest).
    const extents = await DeviceExtentStore.open({ device: data, meta, decoder: await ExtentCodec.open(), ...(options.extentCacheBytes === undefined ? {} : { cacheBytes: options.extentCacheBytes }) });
    undo.push(() => extents.close());
    const tree = await SnapshotTree.open({
      meta,
      extents,
      ...(log === undefined ? {} : { writeLog: log }),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.treeCacheBytes === undefined ? {} : { cacheBytes: options.treeCacheBytes }),
    });
    undo.push(() => tree.close());
    const site = await Site.open({
      ...options.replication,
      siteId: marker.siteId,
      tree,
      meta,
      storageOnly: marker.storageOnly,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    });
    return { tree, site, meta, extents, devices };
  } catch (err) {
    await closeInOrder(undo.reverse()).catch(() => undefined);
    throw err;
  }
}

/** Runs every close step in order; rejects with the first failure after all have run. */
async function closeInOrder(steps: readonly (() => Promise<void>)[]): Promise<void> {
  let first: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

/** The requested log length, null for none, undefined when not said. */
function checkWriteLogOption(option: LocalSiteOptions['writeLog']): number | null | undefined {
  if (option === undefined) return undefined;
  if (option === false) return null;
  if (option === true) return DEFAULT_WRITE_LOG_BYTES;
  if (typeof option !== 'object' || option === null) throw new DrkitError('INVALID_ARGUMENT', 'writeLog must be a boolean or { byteLength }');
  assertPositiveInteger(option.byteLength, 'writeLog.byteLength');
  if (option.byteLength < MIN_WRITE_LOG_BYTES) {
    throw new DrkitError('INVALID_ARGUMENT', `writeLog.byteLength must be at least ${MIN_WRITE_LOG_BYTES}`, { data: { byteLength: option.byteLength } });
  }
  return option.byteLength;
}

function checkSiteId(siteId: unknown): void {
  if (typeof siteId !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(siteId)) {
    throw new DrkitError('INVALID_ARGUMENT', 'siteId must be 1-64 characters of [A-Za-z0-9._-]', { data: { siteId: String(siteId) } });
  }
}

function checkAgainstMarker(options: LocalSiteOptions, requestedLog: number | null | undefined, marker: SiteMarker, dir: string): void {
  if (options.siteId !== undefined && options.siteId !== marker.siteId) {
    throw new DrkitError('INVALID_ARGUMENT', `${dir} holds site ${marker.siteId}, not ${options.siteId}`, { data: { path: dir, siteId: marker.siteId } });
  }
  if (options.storageOnly !== undefined && options.storageOnly !== marker.storageOnly) {
    throw new DrkitError('INVALID_ARGUMENT', `site ${marker.siteId} is ${marker.storageOnly ? '' : 'not '}storage-only`, { data: { path: dir } });
  }
  if (requestedLog !== undefined && (requestedLog === null) !== (marker.writeLogByteLength === null)) {
    throw new DrkitError('INVALID_ARGUMENT', `site ${marker.siteId} was created ${marker.writeLogByteLength === null ? 'without' : 'with'} a write log; it keeps that layout`, {
      data: { path: dir },
    });
  }
}
