/**
 * The receiver's split-brain guard: runs in BEGIN before anything of a transfer is stored.
 *
 * - A snapshot of generation g is refused (STALE_GENERATION) by a site that already knows
 *   the lineage at a generation above g — a promotion happened after the sender's, so the
 *   sender is a stale side and must fail back, never overwrite the current one.
 * - A snapshot of a newer generation than this site's is refused (DIVERGED) while this
 *   site still holds the lineage writable: accepting it would leave two histories of one
 *   lineage with no decision about the local writes. `failback()` keeps them as a clone and
 *   demotes this site (with `force`), after which the newer generation is accepted.
 */
import { DrkitError } from '../core/errors.js';
import type { MetaStore } from '../adapters/meta-store.js';
import type { SnapshotTree } from '../snapshot/index.js';
import { GENERATION_KEY, parseGeneration } from './origin.js';
import { readLineageStatus } from './lineage-record.js';

/**
 * Refuses an incoming snapshot of `lineage` carrying `userMetadata` when it is stale or
 * would land on a lineage this site still writes.
 * @throws STALE_GENERATION, DIVERGED, INVALID_ARGUMENT (a malformed generation stamp)
 */
export async function checkIncomingGeneration(
  parts: { tree: SnapshotTree; meta: MetaStore; siteId: string },
  lineage: string,
  userMetadata: Readonly<Record<string, string>>,
): Promise<void> {
  const incoming = parseGeneration(userMetadata[GENERATION_KEY]);
  const status = await readLineageStatus(parts, lineage);
  if (incoming < status.generation) {
    throw new DrkitError('STALE_GENERATION', `lineage ${lineage}: generation ${incoming} is older than generation ${status.generation} known at ${parts.siteId}`, {
      data: { lineage, incomingGeneration: incoming, localGeneration: status.generation, siteId: parts.siteId },
    });
  }
  if (incoming > status.generation && status.writableVolumeId !== undefined) {
    throw new DrkitError('DIVERGED', `lineage ${lineage} is still writable at ${parts.siteId} (volume ${status.writableVolumeId}); fail back (force) before accepting generation ${incoming}`, {
      data: { lineage, incomingGeneration: incoming, localGeneration: status.generation, siteId: parts.siteId, volumeId: status.writableVolumeId },
    });
  }
}
