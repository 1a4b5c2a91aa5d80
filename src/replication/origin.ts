/**
 * Snapshot identity across sites. A snapshot is known everywhere by its ORIGIN: the site
 * that took it and its id there. A replica records its origin in reserved user
 * metadata keys, so a chain (A -> B -> C) or a mesh still recognises common snapshots,
 * and the record is committed atomically with the snapshot itself.
 */
import type { SnapshotInfo } from '../snapshot/index.js';

/** Reserved user-metadata keys (the `drkit.` prefix is reserved). */
export const ORIGIN_SITE_KEY = 'drkit.originSite';
export const ORIGIN_SNAPSHOT_KEY = 'drkit.originSnapshot';
export const ORIGIN_VOLUME_KEY = 'drkit.originVolume';

/** Where a snapshot was first taken. */
export interface SnapshotOrigin {
  readonly siteId: string;
  readonly snapshotId: string;
  readonly volumeId: string;
}

/** The origin of a snapshot held at `localSiteId` (itself, unless it is a replica). */
export function originOf(snapshot: SnapshotInfo, localSiteId: string): SnapshotOrigin {
  const m = snapshot.userMetadata;
  const siteId = m[ORIGIN_SITE_KEY];
  const snapshotId = m[ORIGIN_SNAPSHOT_KEY];
  const volumeId = m[ORIGIN_VOLUME_KEY];
  if (siteId !== undefined && snapshotId !== undefined && volumeId !== undefined) return { siteId, snapshotId, volumeId };
  return { siteId: localSiteId, snapshotId: snapshot.id, volumeId: snapshot.volumeId };
}

/** One string naming an origin snapshot. */
export function originKey(o: SnapshotOrigin): string {
  return `${o.siteId}/${o.snapshotId}`;
}

/** One string naming the volume lineage a snapshot belongs to. */
export function volumeKeyOf(o: SnapshotOrigin): string {
  return `${o.siteId}/${o.volumeId}`;
}

/** User metadata without the reserved keys, plus the origin keys. */
export function stampOrigin(userMetadata: Readonly<Record<string, string>>, o: SnapshotOrigin): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(userMetadata)) if (!k.startsWith('drkit.')) out[k] = v;
  out[ORIGIN_SITE_KEY] = o.siteId;
  out[ORIGIN_SNAPSHOT_KEY] = o.snapshotId;
  out[ORIGIN_VOLUME_KEY] = o.volumeId;
  return out;
}
