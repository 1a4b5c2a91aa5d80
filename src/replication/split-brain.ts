/**
 * Split-brain detection over the lineage statuses of several sites: pure data in, a
 * report out, so it runs wherever the statuses were gathered (`lineageStatus()` per site)
 * — or, given a local Site and how to reach the others, it asks them itself over the
 * protocol (STATUS_REQ) and reports the sites it could not reach.
 */
import { DrkitError, isDrkitError } from '../core/errors.js';
import type { GenerationStatus } from './generation-guard.js';
import { readLineageStatus } from './lineage-record.js';
import type { RemoteSite, Site, SiteTransferOptions } from './site.js';

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
  /** Sites that were asked but could not answer (survey form only), with the error code; the report covers the others. */
  readonly unreachable: readonly { readonly siteId: string; readonly code: string }[];
}

/** What {@link detectSplitBrain} asks by itself: the local site's status, and every remote's over the wire. */
export interface SplitBrainSurvey extends SiteTransferOptions {
  readonly site: Site;
  readonly lineage: string;
  readonly remotes: readonly RemoteSite[];
}

/**
 * Compares the statuses of one lineage at several sites: two writable sides are a split
 * brain; the one at the highest generation is current, the others stale. When the
 * highest generation is writable at two sites (never produced by `promote`, which always
 * moves past every generation the site knows), none is current.
 *
 * Given a {@link SplitBrainSurvey} instead of statuses, it gathers them itself: the local
 * site's, and each remote's by STATUS_REQ (concurrently; a remote that fails, after the
 * Site's retries, is listed in `unreachable` and left out of the comparison).
 * @throws INVALID_ARGUMENT when the statuses are empty, name different lineages, or repeat a site
 */
export function detectSplitBrain(statuses: readonly GenerationStatus[]): SplitBrainReport;
export function detectSplitBrain(survey: SplitBrainSurvey): Promise<SplitBrainReport>;
export function detectSplitBrain(input: readonly GenerationStatus[] | SplitBrainSurvey): SplitBrainReport | Promise<SplitBrainReport> {
  if (!Array.isArray(input)) return survey(input as SplitBrainSurvey);
  return compare(input as readonly GenerationStatus[], []);
}

async function survey(options: SplitBrainSurvey): Promise<SplitBrainReport> {
  const { site, lineage, remotes, ...transfer } = options;
  const local = await readLineageStatus(site, lineage);
  const answers = await Promise.all(
    remotes.map(async (remote) => {
      try {
        return { status: await site.remoteStatus(remote, { lineage }, transfer) };
      } catch (err) {
        if (!isDrkitError(err) || err.code === 'ABORTED') throw err;
        return { unreachable: { siteId: remote.siteId, code: err.code } };
      }
    }),
  );
  const statuses: GenerationStatus[] = [local];
  const unreachable: { siteId: string; code: string }[] = [];
  for (const a of answers) {
    if (a.status !== undefined) statuses.push(a.status);
    else unreachable.push(a.unreachable!);
  }
  return compare(statuses, unreachable);
}

function compare(statuses: readonly GenerationStatus[], unreachable: readonly { siteId: string; code: string }[]): SplitBrainReport {
  const first = statuses[0];
  if (first === undefined) throw new DrkitError('INVALID_ARGUMENT', 'detectSplitBrain needs at least one site status');
  const seen = new Set<string>();
  for (const s of statuses) {
    if (s.lineage !== first.lineage) throw new DrkitError('INVALID_ARGUMENT', 'statuses of different lineages', { data: { lineages: [first.lineage, s.lineage] } });
    if (seen.has(s.siteId)) throw new DrkitError('INVALID_ARGUMENT', `site ${s.siteId} appears twice`, { data: { siteId: s.siteId } });
    seen.add(s.siteId);
  }
  const writable = statuses
    .filter((s): s is GenerationStatus & { writableVolumeId: string } => s.writableVolumeId !== undefined)
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
    unreachable,
  };
}
