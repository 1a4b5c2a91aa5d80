/**
 * Snapshot identity across sites. A snapshot is known everywhere by its ORIGIN: the site
 * that took it and its id there. A replica records its origin in reserved user
 * metadata keys, so a chain (A -> B -> C) or a mesh still recognises common snapshots,
 * and the record is committed atomically with the snapshot itself.
 */
import { DrkitError } from '../core/errors.js';
import type { SnapshotInfo } from '../snapshot/index.js';

/** Reserved user-metadata keys (the `drkit.` prefix is reserved). */
export const ORIGIN_SITE_KEY = 'drkit.originSite';
export const ORIGIN_SNAPSHOT_KEY = 'drkit.originSnapshot';
export const ORIGIN_VOLUME_KEY = 'drkit.originVolume';
/**
 * The volume lineage (a volumeKey) a snapshot continues when it differs from its origin
 * volume's own: set on snapshots of a promoted volume (see failover.ts) and carried by
 * their replicas, so replication back finds the common base by origin.
 */
export const LINEAGE_KEY = 'drkit.lineage';
/** Promotion generation of the lineage when the snapshot was taken (absent = 0). */
export const GENERATION_KEY = 'drkit.generation';

/** Where a snapshot was first taken. */
export interface SnapshotOrigin {
  readonly siteId: string;
  readonly snapshotId: string;
  readonly volumeId: string;
  /** The lineage it continues, when not `${siteId}/${volumeId}` (a promoted volume's). */
  readonly lineage?: string;
}

/** The origin of a snapshot held at `localSiteId` (itself, unless it is a replica). */
export function originOf(snapshot: SnapshotInfo, localSiteId: string): SnapshotOrigin {
  const m = snapshot.userMetadata;
  const siteId = m[ORIGIN_SITE_KEY];
  const snapshotId = m[ORIGIN_SNAPSHOT_KEY];
  const volumeId = m[ORIGIN_VOLUME_KEY];
  const lineage = m[LINEAGE_KEY];
  const extra = lineage === undefined ? {} : { lineage };
  if (siteId !== undefined && snapshotId !== undefined && volumeId !== undefined) return { siteId, snapshotId, volumeId, ...extra };
  return { siteId: localSiteId, snapshotId: snapshot.id, volumeId: snapshot.volumeId, ...extra };
}

/** One string naming an origin snapshot. */
export function originKey(o: SnapshotOrigin): string {
  return `${o.siteId}/${o.snapshotId}`;
}

/**
 * One string naming the volume lineage a snapshot belongs to: its `lineage` when set (a
 * promoted volume continues the lineage it was promoted from), else `${siteId}/${volumeId}`.
 */
export function volumeKeyOf(o: SnapshotOrigin): string {
  return o.lineage ?? `${o.siteId}/${o.volumeId}`;
}

/**
 * User metadata without the reserved keys, plus the origin keys. The generation is kept
 * (it is a fact of the snapshot, checked by the receiver before anything is stored), and
 * the lineage is stamped when it differs from the origin volume's own.
 */
export function stampOrigin(userMetadata: Readonly<Record<string, string>>, o: SnapshotOrigin): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(userMetadata)) if (!k.startsWith('drkit.') || k === GENERATION_KEY) out[k] = v;
  out[ORIGIN_SITE_KEY] = o.siteId;
  out[ORIGIN_SNAPSHOT_KEY] = o.snapshotId;
  out[ORIGIN_VOLUME_KEY] = o.volumeId;
  if (o.lineage !== undefined && o.lineage !== `${o.siteId}/${o.volumeId}`) out[LINEAGE_KEY] = o.lineage;
  return out;
}

/**
 * The promotion generation a snapshot was taken at (0 when unstamped).
 * @throws INVALID_ARGUMENT when the stamp is not a decimal integer
 */
export function generationOf(snapshot: { readonly userMetadata: Readonly<Record<string, string>> }): number {
  return parseGeneration(snapshot.userMetadata[GENERATION_KEY]);
}

/** Highest promotion generation: 2^31 - 1 promotions is beyond any real lineage. */
export const MAX_GENERATION = 2 ** 31 - 1;

/**
 * Parses a `drkit.generation` value (undefined = 0).
 * @throws INVALID_ARGUMENT when it is not a decimal integer below 2^31
 */
export function parseGeneration(value: string | undefined): number {
  if (value === undefined) return 0;
  const MAX_GENERATION_DIGITS = 10; // the digits of MAX_GENERATION
  if (!/^[0-9]+$/.test(value) || value.length > MAX_GENERATION_DIGITS || Number(value) > MAX_GENERATION) {
    throw new DrkitError('INVALID_ARGUMENT', `bad ${GENERATION_KEY} ${JSON.stringify(value.slice(0, 32))}`, { data: { field: GENERATION_KEY } });
  }
  return Number(value);
}
