/**
 * Split-brain detection over the lineage statuses of several sites: pure data in, a
 * report out, so it runs wherever the statuses were gathered (`lineageStatus()` per site).
 */
import { DrkitError } from '../core/errors.js';
import type { LineageStatus } from './lineage-record.js';

/** What {@link detectSplitBrain} found for one lineage. */
export interface SplitBrainReport {
  readonly lineage: string;
  /** True when more than one site holds the lineage writable. */
  readonly splitBrain: boolean;
  /** Every site holding the lineage writable, highest generation first. */
  readonly writable: readonly { readonly siteId: string; readonly volumeId: string; readonly generation: number }[];
  /** The site to keep writing: the only writable site at the highest generation, if exactly one is. */
  readonly currentSiteId: string | undefined;
  /** Writable sites that are not current: they must fail back (their writes kept as clones). */
  readonly staleSiteIds: readonly string[];
  /** The highest generation any of the sites knows. */
  readonly generation: number;
}

/**
 * Compares the statuses of one lineage at several sites: two writable sides are a split
 * brain; the one at the highest generation is current, the others stale. When the
 * highest generation is writable at two sites (never produced by `promote`, which always
 * moves past every generation the site knows), none is current.
 * @throws INVALID_ARGUMENT when the statuses are empty, name different lineages, or repeat a site
 */
export function detectSplitBrain(statuses: readonly LineageStatus[]): SplitBrainReport {
  const first = statuses[0];
  if (first === undefined) throw new DrkitError('INVALID_ARGUMENT', 'detectSplitBrain needs at least one site status');
  const seen = new Set<string>();
  for (const s of statuses) {
    if (s.lineage !== first.lineage) throw new DrkitError('INVALID_ARGUMENT', 'statuses of different lineages', { data: { lineages: [first.lineage, s.lineage] } });
    if (seen.has(s.siteId)) throw new DrkitError('INVALID_ARGUMENT', `site ${s.siteId} appears twice`, { data: { siteId: s.siteId } });
    seen.add(s.siteId);
  }
  const writable = statuses
    .filter((s): s is LineageStatus & { writableVolumeId: string } => s.writableVolumeId !== undefined)
    .map((s) => ({ siteId: s.siteId, volumeId: s.writableVolumeId, generation: s.generation }))
    .sort((a, b) => b.generation - a.generation);
  const generation = Math.max(...statuses.map((s) => s.generation));
  const top = writable.filter((w) => w.generation === writable[0]?.generation);
  const currentSiteId = top.length === 1 && top[0]!.generation === generation ? top[0]!.siteId : undefined;
  return {
    lineage: first.lineage,
    splitBrain: writable.length > 1,
    writable,
    currentSiteId,
    staleSiteIds: writable.filter((w) => w.siteId !== currentSiteId).map((w) => w.siteId),
    generation,
  };
}
