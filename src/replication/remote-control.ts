/**
 * What a Site answers to the recovery requests of an authenticated peer: STATUS_REQ (its
 * generation and role in a lineage, so peers check generations on the wire and
 * `detectSplitBrain` can ask remote sites) and PROMOTE_REQ (a migration hands lineages over
 * to this site without holding its Site object).
 *
 * Promotion promises:
 * - Only the lineage's last writer may hand it over: each member's final snapshot must be
 *   held here with the requester as its origin, stamped with the generation the request
 *   names, and no newer generation may be known here. Site option `allowRemotePromotion`
 *   can refuse more (AUTH_FAILED).
 * - All members or none: every member is validated before anything changes, the volumes
 *   are made, and then every member's lineage record is written in ONE synced batch. A
 *   crash before that batch promotes nothing (it may leave unused volumes, as `promote`
 *   does); after it, all members are promoted.
 * - Idempotent: a member this site already writes from that very snapshot at a newer
 *   generation is answered as done, so a resumed migration can send the request again.
 *
 * Demotion promises (DEMOTE_REQ, a migration rolled back after the promotion):
 * - Only the site that handed the lineage over may take it back: this site's promotion
 *   must have started from the requester's final snapshot named in the request (else
 *   AUTH_FAILED) at the generation after the one it names (else STALE_GENERATION).
 * - Nothing written here is dropped: a member whose volume was written since the promotion,
 *   or that has snapshots of the new generation, is refused (DIVERGED).
 * - All members or none, in one synced batch; each goes back to a replica at the
 *   requester's generation (its volume stays, unused). A member this site does not write
 *   and knows at no newer generation is answered as done (idempotent).
 */
import { DrkitError } from '../core/errors.js';
import type { SnapshotInfo, Volume } from '../snapshot/index.js';
import { writableVolumeFrom } from './failover.js';
import { readLineageRecord, readLineageStatus, writeLineageRecords, type LineageRecord } from './lineage-record.js';
import { generationOf, originOf, volumeKeyOf } from './origin.js';
import { writtenSince } from './internal/unchanged-since.js';
import type { Site } from './site.js';

/** A site's status of one lineage as the protocol carries it (no snapshot list). */
export interface RemoteLineageStatus {
  readonly siteId: string;
  readonly lineage: string;
  /** The highest generation the site knows for the lineage. */
  readonly generation: number;
  /** The volume through which the site writes the lineage, if it does. */
  readonly writableVolumeId: string | undefined;
  /** When asked by snapshot: the generation stamped on that snapshot. */
  readonly snapshotGeneration?: number;
}

/** One lineage handed over by {@link Site.promoteRemote}. */
export interface RemotePromotion {
  readonly lineage: string;
  /** The final snapshot's id at the requesting site (its origin id). */
  readonly originSnapshotId: string;
  /** The generation the requester wrote the lineage at. */
  readonly sourceGeneration: number;
  /** Exactly one: a new clone by name, or a volume reverted in place. */
  readonly volumeName?: string;
  readonly volumeId?: string;
}

/** What a promoted member became at the target. */
export interface RemotePromotionResult {
  readonly lineage: string;
  readonly generation: number;
  readonly volumeId: string;
}

/** One lineage taken back by {@link Site.demoteRemote}: the promotion it undoes. */
export interface RemoteDemotion {
  readonly lineage: string;
  /** The final snapshot's id at the requesting site, from which the target was promoted. */
  readonly originSnapshotId: string;
  /** The generation the requester wrote the lineage at before the hand-over. */
  readonly sourceGeneration: number;
}

/** A demoted member's generation at the target (the requester's again). */
export interface RemoteDemotionResult {
  readonly lineage: string;
  readonly generation: number;
}

/**
 * This site's status of a lineage, named directly or by one of its snapshots.
 * @throws NOT_FOUND (an unknown snapshot), and lineageStatus's codes
 */
export async function statusForPeer(site: Site, query: { lineage?: string; snapshotId?: string }): Promise<RemoteLineageStatus> {
  let lineage = query.lineage;
  let snapshotGeneration: number | undefined;
  if (query.snapshotId !== undefined) {
    const snapshot = site.tree.getSnapshot(query.snapshotId);
    lineage = volumeKeyOf(originOf(snapshot, site.siteId));
    snapshotGeneration = generationOf(snapshot);
  }
  const status = await readLineageStatus(site, lineage!);
  return { siteId: site.siteId, lineage: status.lineage, generation: status.generation, writableVolumeId: status.writableVolumeId, ...(snapshotGeneration === undefined ? {} : { snapshotGeneration }) };
}

/** The snapshot of `lineage` held here whose origin is (`originSiteId`, `originSnapshotId`). */
function heldFinalSnapshot(site: Site, lineage: string, originSiteId: string, originSnapshotId: string): SnapshotInfo | undefined {
  return site.tree.listSnapshots().find((s) => {
    const o = originOf(s, site.siteId);
    return o.siteId === originSiteId && o.snapshotId === originSnapshotId && volumeKeyOf(o) === lineage;
  });
}

type Plan = { done: RemotePromotionResult } | { member: RemotePromotion; snapshot: SnapshotInfo; generation: number };

/**
 * Promotes every member at this site for `requesterSiteId`, all or none (see the header).
 * @throws INVALID_ARGUMENT (storage-only site, a repeated lineage, a generation the snapshot
 *   does not carry), NOT_FOUND (the final snapshot is not here), ALREADY_EXISTS (this site
 *   writes the lineage from another snapshot), STALE_GENERATION (a newer generation is
 *   known here), AUTH_FAILED (refused by `allowRemotePromotion`)
 */
export async function promoteForPeer(
  site: Site,
  requesterSiteId: string,
  members: readonly RemotePromotion[],
  allow: ((peerSiteId: string, lineage: string) => boolean) | undefined,
): Promise<RemotePromotionResult[]> {
  if (site.storageOnly) throw new DrkitError('INVALID_ARGUMENT', `site ${site.siteId} is storage-only: it cannot hold a writable volume`, { data: { reason: 'storage-only' } });
  const seen = new Set<string>();
  const plans: Plan[] = [];
  for (const member of members) {
    const { lineage } = member;
    if (seen.has(lineage)) throw new DrkitError('INVALID_ARGUMENT', `lineage ${lineage} appears twice`, { data: { lineage } });
    seen.add(lineage);
    if (allow !== undefined && allow(requesterSiteId, lineage) !== true) {
      throw new DrkitError('AUTH_FAILED', `site ${requesterSiteId} may not hand lineage ${lineage} to ${site.siteId}`, { data: { lineage, peerSiteId: requesterSiteId } });
    }
    const snapshot = heldFinalSnapshot(site, lineage, requesterSiteId, member.originSnapshotId);
    if (snapshot === undefined) {
      throw new DrkitError('NOT_FOUND', `site ${site.siteId} holds no snapshot ${member.originSnapshotId} of ${requesterSiteId} in lineage ${lineage}: replicate it first`, { data: { lineage } });
    }
    if (generationOf(snapshot) !== member.sourceGeneration) {
      throw new DrkitError('INVALID_ARGUMENT', `snapshot ${member.originSnapshotId} is of generation ${generationOf(snapshot)}, not ${member.sourceGeneration}`, { data: { lineage, reason: 'generation' } });
    }
    const status = await readLineageStatus(site, lineage);
    if (status.writableVolumeId !== undefined) {
      const record = await readLineageRecord(site.meta, lineage);
      if (record?.promotedFromSnapshotId === snapshot.id && status.generation > member.sourceGeneration) {
        plans.push({ done: { lineage, generation: status.generation, volumeId: status.writableVolumeId } });
        continue;
      }
      throw new DrkitError('ALREADY_EXISTS', `site ${site.siteId} already writes lineage ${lineage} (volume ${status.writableVolumeId})`, { data: { lineage, volumeId: status.writableVolumeId } });
    }
    if (status.generation > member.sourceGeneration) {
      throw new DrkitError('STALE_GENERATION', `site ${site.siteId} knows lineage ${lineage} at generation ${status.generation}, newer than ${member.sourceGeneration}: ${requesterSiteId} is not its last writer`, {
        data: { lineage, localGeneration: status.generation, incomingGeneration: member.sourceGeneration },
      });
    }
    plans.push({ member, snapshot, generation: Math.max(status.generation, member.sourceGeneration) + 1 });
  }

  const made: Volume[] = [];
  const records: LineageRecord[] = [];
  try {
    for (const plan of plans) {
      if ('done' in plan) continue;
      const target = plan.member.volumeId !== undefined ? { volumeId: plan.member.volumeId } : { name: plan.member.volumeName! };
      const volume = await writableVolumeFrom(site, plan.snapshot.id, target);
      made.push(volume);
      records.push({ formatVersion: 1, lineage: plan.member.lineage, generation: plan.generation, role: 'primary', volumeId: volume.id, promotedFromSnapshotId: plan.snapshot.id });
    }
    // The one commit point of the group: every member's record, or none.
    if (records.length > 0) await writeLineageRecords(site.meta, records);
  } finally {
    for (const v of made) await v.close();
  }
  let next = 0;
  return plans.map((plan) => {
    if ('done' in plan) return plan.done;
    const record = records[next++]!;
    return { lineage: record.lineage, generation: record.generation, volumeId: record.volumeId! };
  });
}

/**
 * Gives lineages promoted here from `requesterSiteId`'s final snapshots back to it, all
 * or none (see the header).
 * @throws INVALID_ARGUMENT (a repeated lineage), AUTH_FAILED (this site was not promoted
 *   from the requester's snapshot), STALE_GENERATION (another generation moved on here),
 *   DIVERGED (written here since the promotion)
 */
export async function demoteForPeer(site: Site, requesterSiteId: string, members: readonly RemoteDemotion[]): Promise<RemoteDemotionResult[]> {
  const seen = new Set<string>();
  const results: RemoteDemotionResult[] = [];
  const records: LineageRecord[] = [];
  for (const member of members) {
    const { lineage, sourceGeneration } = member;
    if (seen.has(lineage)) throw new DrkitError('INVALID_ARGUMENT', `lineage ${lineage} appears twice`, { data: { lineage } });
    seen.add(lineage);
    const status = await readLineageStatus(site, lineage);
    if (status.writableVolumeId === undefined) {
      if (status.generation > sourceGeneration) {
        throw new DrkitError('STALE_GENERATION', `site ${site.siteId} knows lineage ${lineage} at generation ${status.generation}: it moved on since ${requesterSiteId} handed it over`, {
          data: { lineage, localGeneration: status.generation, incomingGeneration: sourceGeneration },
        });
      }
      results.push({ lineage, generation: status.generation }); // never promoted, or demoted already
      continue;
    }
    const record = await readLineageRecord(site.meta, lineage);
    const from = record?.promotedFromSnapshotId === undefined ? undefined : site.tree.listSnapshots().find((s) => s.id === record.promotedFromSnapshotId);
    const origin = from === undefined ? undefined : originOf(from, site.siteId);
    if (origin === undefined || origin.siteId !== requesterSiteId || origin.snapshotId !== member.originSnapshotId) {
      throw new DrkitError('AUTH_FAILED', `site ${site.siteId} was not promoted to lineage ${lineage} from snapshot ${member.originSnapshotId} of ${requesterSiteId}: only the site that handed it over may take it back`, {
        data: { lineage, peerSiteId: requesterSiteId },
      });
    }
    if (status.generation !== sourceGeneration + 1) {
      throw new DrkitError('STALE_GENERATION', `site ${site.siteId} writes lineage ${lineage} at generation ${status.generation}, not ${sourceGeneration + 1}`, {
        data: { lineage, localGeneration: status.generation, incomingGeneration: sourceGeneration },
      });
    }
    const newer = site.tree.listSnapshots().some((s) => s.id !== from!.id && volumeKeyOf(originOf(s, site.siteId)) === lineage && generationOf(s) > sourceGeneration);
    if (newer || (await writtenSince(site.tree, status.writableVolumeId, from!.id, lineage, status.generation))) {
      throw new DrkitError('DIVERGED', `site ${site.siteId} wrote lineage ${lineage} since its promotion: giving it back would drop those writes`, { data: { lineage, volumeId: status.writableVolumeId } });
    }
    records.push({ formatVersion: 1, lineage, generation: sourceGeneration, role: 'replica', volumeId: status.writableVolumeId, promotedFromSnapshotId: record!.promotedFromSnapshotId });
    results.push({ lineage, generation: sourceGeneration });
  }
  // The one commit point of the group, as in the promotion.
  if (records.length > 0) await writeLineageRecords(site.meta, records);
  return results;
}
