/**
 * Promotion, unplanned failover and failback of a volume lineage between sites.
 *
 * Model: a lineage (a volumeKey, `${originSite}/${originVolume}`) is written at one site,
 * its primary, and replicated to others. Promoting a replica makes a writable volume that
 * CONTINUES the lineage: its snapshots (taken with {@link snapshotPromoted}) carry the
 * lineage and the new generation in reserved metadata (`drkit.lineage`,
 * `drkit.generation`), so replication back finds the common base by origin and ships
 * only the delta. Each promotion raises the generation by one and records it durably in
 * the site's MetaStore (see lineage-record.ts) before returning; receivers refuse older
 * generations (STALE_GENERATION) and newer ones while they still write the lineage
 * (DIVERGED), so a stale side can never be taken for the current one.
 */
import { DrkitError } from '../core/errors.js';
import { MAX_ID_BYTES, utf8ByteLength } from './internal/json-shape.js';
import type { SnapshotInfo, Volume } from '../snapshot/index.js';
import { GENERATION_KEY, LINEAGE_KEY, generationOf, originKey, originOf, volumeKeyOf } from './origin.js';
import { deleteLineageRecord, readLineageRecord, readLineageStatus, writeLineageRecord, type LineageRecord, type LineageStatus } from './lineage-record.js';
import type { RemoteSite, Site, SiteTransferOptions } from './site.js';

/** Options of {@link promote} and {@link failover}: exactly one of `name` and `volumeId`. */
export interface PromoteOptions {
  /** Name of a new writable volume cloned from the snapshot. */
  name?: string;
  /** An existing volume of this site reverted in place to the snapshot (e.g. the one a failback demoted). */
  volumeId?: string;
}

/** A promotion: the writable volume and the generation it writes at. */
export interface Promotion {
  readonly lineage: string;
  /** The new generation (previous highest known here + 1). */
  readonly generation: number;
  /** The snapshot the volume starts from. */
  readonly fromSnapshotId: string;
  /** The writable volume; the caller closes it. */
  readonly volume: Volume;
}

/** Options of {@link failback}. */
export interface FailbackOptions extends SiteTransferOptions {
  /** Name of the clone that keeps this side's writes made after the common snapshot. @defaultValue `${volumeName}-diverged-${createdMs}` */
  divergedName?: string;
}

/** What {@link failback} did. */
export interface FailbackResult {
  readonly lineage: string;
  /** The newest snapshot both sides held (local id); undefined when none (a full resync). */
  readonly commonSnapshotId: string | undefined;
  /** The clone keeping this side's writes made after the common snapshot, if there were any. */
  readonly divergedVolumeId: string | undefined;
  /** The snapshot that clone was made from (kept, under lineage `${lineage}~diverged`). */
  readonly divergedSnapshotId: string | undefined;
  /** The promoted side's newest snapshot, now held here (local id). */
  readonly resyncedSnapshotId: string;
  /** The volume this site wrote the lineage through, now demoted: pass it to `promote({ volumeId })` to migrate back. */
  readonly demotedVolumeId: string | undefined;
}

/** Lineage of the snapshot that keeps a failed-back side's writes: outside the lineage, so no failover or base choice ever picks it. */
const DIVERGED_SUFFIX = '~diverged';

/**
 * What `site` knows of `lineage`: highest generation, writable volume, snapshots held.
 * @throws INVALID_ARGUMENT for a bad lineage, FORMAT_VERSION / CORRUPTION for an unreadable record
 */
export async function lineageStatus(site: Site, lineage: string): Promise<LineageStatus> {
  assertLineage(lineage);
  return readLineageStatus(site, lineage);
}

/**
 * Promotes a complete snapshot held at `site` (a replica, or any snapshot of the lineage)
 * to a writable volume continuing its lineage, at generation (highest known here) + 1,
 * recorded durably before this resolves. Replicas exist only once complete (the receiver
 * commits atomically), so any listed snapshot is a valid starting point.
 * @throws NOT_FOUND (snapshot or volume), INVALID_ARGUMENT (a storage-only site, both or neither of
 *   name/volumeId, geometry), ALREADY_EXISTS (this site already writes the lineage)
 */
export async function promote(site: Site, snapshotId: string, options: PromoteOptions): Promise<Promotion> {
  if (site.storageOnly) throw new DrkitError('INVALID_ARGUMENT', `site ${site.siteId} is storage-only: it cannot hold a writable volume`, { data: { reason: 'storage-only' } });
  if ((options.name === undefined) === (options.volumeId === undefined)) {
    throw new DrkitError('INVALID_ARGUMENT', 'promote needs exactly one of name (new clone) and volumeId (revert in place)', { data: { field: 'name' } });
  }
  const snapshot = site.tree.getSnapshot(snapshotId);
  const lineage = volumeKeyOf(originOf(snapshot, site.siteId));
  if (lineage.endsWith(DIVERGED_SUFFIX)) throw new DrkitError('INVALID_ARGUMENT', `snapshot ${snapshotId} keeps diverged writes; clone it instead`, { data: { snapshotId } });
  const status = await readLineageStatus(site, lineage);
  if (status.writableVolumeId !== undefined) {
    throw new DrkitError('ALREADY_EXISTS', `site ${site.siteId} already writes lineage ${lineage} (volume ${status.writableVolumeId})`, { data: { lineage, volumeId: status.writableVolumeId } });
  }
  const generation = status.generation + 1;
  const volume = await writableVolumeFrom(site, snapshotId, options);
  // The volume first, then the record: a crash in between leaves an unused volume, never
  // a recorded generation without one.
  try {
    await writeLineageRecord(site.meta, { formatVersion: 1, lineage, generation, role: 'primary', volumeId: volume.id, promotedFromSnapshotId: snapshotId });
  } catch (err) {
    await volume.close();
    throw err;
  }
  return { lineage, generation, fromSnapshotId: snapshotId, volume };
}

/**
 * The writable volume a promotion starts: a new clone (`name`) or an existing volume
 * reverted in place (`volumeId`). O(1) metadata work; records nothing.
 * @throws NOT_FOUND (snapshot or volume), INVALID_ARGUMENT (geometry)
 */
export async function writableVolumeFrom(site: Site, snapshotId: string, options: PromoteOptions): Promise<Volume> {
  if (options.volumeId !== undefined) {
    site.tree.getVolume(options.volumeId);
    await site.tree.restore(options.volumeId, snapshotId);
    return site.tree.openVolume(options.volumeId);
  }
  return site.tree.clone(snapshotId, { name: options.name! });
}

/**
 * Unplanned failover: promotes the newest complete snapshot of `lineage` held at `site`
 * (highest generation, then newest) — the source need not be reachable.
 * @throws NOT_FOUND when the site holds no snapshot of the lineage, and {@link promote}'s codes
 */
export async function failover(site: Site, lineage: string, options: PromoteOptions): Promise<Promotion> {
  assertLineage(lineage);
  const newest = newestOf(site, lineage);
  if (newest === undefined) throw new DrkitError('NOT_FOUND', `site ${site.siteId} holds no snapshot of lineage ${lineage}`, { data: { lineage } });
  return promote(site, newest.id, options);
}

/**
 * Snapshots the volume through which `site` writes `lineage`, stamped with the lineage
 * and its generation, so it replicates incrementally to every site of the lineage and
 * is refused by any that moved to a newer generation.
 * @throws NOT_FOUND when this site does not write the lineage, and SnapshotTree.snapshot's codes
 */
export async function snapshotPromoted(site: Site, lineage: string, options: { name: string; userMetadata?: Record<string, string> }): Promise<SnapshotInfo> {
  assertLineage(lineage);
  const status = await readLineageStatus(site, lineage);
  if (status.writableVolumeId === undefined) throw new DrkitError('NOT_FOUND', `site ${site.siteId} does not write lineage ${lineage}`, { data: { lineage } });
  const userMetadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.userMetadata ?? {})) if (!k.startsWith('drkit.')) userMetadata[k] = v;
  userMetadata[LINEAGE_KEY] = lineage;
  userMetadata[GENERATION_KEY] = String(status.generation);
  return site.tree.snapshot(status.writableVolumeId, { name: options.name, userMetadata });
}

/**
 * Gives up writing `lineage` here, so a newer generation replicated from elsewhere is
 * accepted. The volume stays (unchanged, for inspection or promotion back) but leaves the
 * lineage. Without `force` a site that still writes the lineage refuses, because its
 * writes after the common base would be left behind: {@link failback} keeps them as a
 * clone first. Idempotent.
 * @throws DIVERGED when the site writes the lineage and `force` is not set
 */
export async function demote(site: Site, lineage: string, options: { force?: boolean } = {}): Promise<LineageStatus> {
  assertLineage(lineage);
  const status = await readLineageStatus(site, lineage);
  if (status.writableVolumeId === undefined) return status;
  if (options.force !== true) {
    throw new DrkitError('DIVERGED', `site ${site.siteId} still writes lineage ${lineage} (volume ${status.writableVolumeId}); fail back, or demote with force`, {
      data: { lineage, volumeId: status.writableVolumeId },
    });
  }
  const previous = await readLineageRecord(site.meta, lineage);
  await writeLineageRecord(site.meta, {
    formatVersion: 1,
    lineage,
    generation: status.generation,
    role: 'replica',
    volumeId: status.writableVolumeId,
    promotedFromSnapshotId: previous?.promotedFromSnapshotId,
  });
  return readLineageStatus(site, lineage);
}

/**
 * Failback of a returning side: `site` (the old primary, or any stale side) rejoins
 * `lineage` now written at `promoted`.
 * 1. The newest snapshot both hold is found by origin (`listRemote`).
 * 2. If this site still writes the lineage, its volume is snapshotted; when it differs
 *    from the common snapshot it is kept as a clone (`divergedName`) — never discarded.
 * 3. This site is demoted (it stops writing the lineage).
 * 4. The promoted side's newest snapshot is pulled: incremental from the common
 *    snapshot, deduplicated, only the delta on the wire.
 * If the pulled snapshot is not of a newer generation than this site's (wrong direction,
 * or nothing was promoted there), the demotion is undone and the call fails; the clone,
 * if made, stays. Rerunning after a failure is safe.
 * @throws NOT_FOUND (the remote holds nothing of the lineage), STALE_GENERATION (the remote is the
 *   stale side), and Site.pull / listRemote codes
 */
export async function failback(site: Site, promoted: RemoteSite, lineage: string, options: FailbackOptions = {}): Promise<FailbackResult> {
  assertLineage(lineage);
  const held = await site.listRemote(promoted, lineage, options);
  const newestRemote = held.reduce<(typeof held)[number] | undefined>((best, h) => (best === undefined || h.createdMs >= best.createdMs ? h : best), undefined);
  if (newestRemote === undefined) throw new DrkitError('NOT_FOUND', `site ${promoted.siteId} holds no snapshot of lineage ${lineage}`, { data: { lineage } });
  const heldKeys = new Set(held.map((h) => `${h.originSiteId}/${h.originSnapshotId}`));
  const common = lineageSnapshots(site, lineage)
    .filter((s) => heldKeys.has(originKey(originOf(s, site.siteId))))
    .reduce<SnapshotInfo | undefined>((best, s) => (best === undefined || newer(s, best) ? s : best), undefined);

  const before = await readLineageStatus(site, lineage);
  const previousRecord = await readLineageRecord(site.meta, lineage);
  let divergedVolumeId: string | undefined;
  let divergedSnapshotId: string | undefined;
  if (before.writableVolumeId !== undefined) {
    const volumeInfo = site.tree.getVolume(before.writableVolumeId);
    const check = await site.tree.snapshot(before.writableVolumeId, {
      name: `${volumeInfo.name}-failback`,
      userMetadata: { [LINEAGE_KEY]: `${lineage}${DIVERGED_SUFFIX}`, [GENERATION_KEY]: String(before.generation) },
    });
    if (await differs(site, common?.id, check.id, options.signal)) {
      const clone = await site.tree.clone(check.id, { name: options.divergedName ?? `${volumeInfo.name}-diverged-${check.createdMs}` });
      await clone.close();
      divergedVolumeId = clone.id;
      divergedSnapshotId = check.id;
    } else {
      await site.tree.deleteSnapshot(check.id);
    }
    await demote(site, lineage, { force: true });
  }

  let resynced: SnapshotInfo;
  try {
    // Already held (a rerun): nothing to pull. (A pull of a held snapshot would also work —
    // every transfer ends in a commit — but costs a connection and a round of LIST/BEGIN.)
    const heldHere = lineageSnapshots(site, lineage).find((s) => originKey(originOf(s, site.siteId)) === `${newestRemote.originSiteId}/${newestRemote.originSnapshotId}`);
    resynced = heldHere ?? (await site.pull(promoted, newestRemote.snapshotId, options));
    // A demoted writer must have handed over to a newer generation; a site that was not
    // writing only resyncs (its receiver already refused anything older).
    if (before.writableVolumeId !== undefined && generationOf(resynced) <= before.generation) {
      throw new DrkitError('STALE_GENERATION', `site ${promoted.siteId} holds lineage ${lineage} at generation ${generationOf(resynced)}, not newer than ${before.generation} here: nothing to fail back to`, {
        data: { lineage, remoteGeneration: generationOf(resynced), localGeneration: before.generation },
      });
    }
  } catch (err) {
    if (before.writableVolumeId !== undefined) await restoreRecord(site, lineage, previousRecord);
    throw err;
  }
  return { lineage, commonSnapshotId: common?.id, divergedVolumeId, divergedSnapshotId, resyncedSnapshotId: resynced.id, demotedVolumeId: before.writableVolumeId ?? previousRecord?.volumeId };
}

/** Puts back the record a failed failback replaced (no record = the site's own lineage, writable again). */
async function restoreRecord(site: Site, lineage: string, previous: LineageRecord | undefined): Promise<void> {
  if (previous !== undefined) {
    await writeLineageRecord(site.meta, previous);
    return;
  }
  await deleteLineageRecord(site.meta, lineage);
}

/** True when snapshot `toId` differs from `fromId` (undefined = all zeros) in any block. */
async function differs(site: Site, fromId: string | undefined, toId: string, signal: AbortSignal | undefined): Promise<boolean> {
  for await (const _range of site.tree.diff(fromId, toId, signal === undefined ? {} : { signal })) return true;
  return false;
}

function lineageSnapshots(site: Site, lineage: string): SnapshotInfo[] {
  return site.tree.listSnapshots().filter((s) => volumeKeyOf(originOf(s, site.siteId)) === lineage);
}

/** Newest of a lineage: the highest generation wins over time, so a stale side's later snapshots never do. */
function newer(a: SnapshotInfo, b: SnapshotInfo): boolean {
  const ga = generationOf(a);
  const gb = generationOf(b);
  return ga !== gb ? ga > gb : a.createdMs > b.createdMs;
}

function newestOf(site: Site, lineage: string): SnapshotInfo | undefined {
  return lineageSnapshots(site, lineage).reduce<SnapshotInfo | undefined>((best, s) => (best === undefined || newer(s, best) ? s : best), undefined);
}

function assertLineage(lineage: string): void {
  // A lineage travels as a protocol id (STATUS_REQ, PROMOTE_REQ): the protocol's bound, from its one source.
  if (typeof lineage !== 'string' || lineage.length === 0 || utf8ByteLength(lineage) > MAX_ID_BYTES) {
    throw new DrkitError('INVALID_ARGUMENT', 'lineage must be a non-empty volumeKey string', { data: { field: 'lineage' } });
  }
}
