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
 * - Sites also check before a transfer, on their own (checkTransferGenerations), from both
 *   sides' statuses exchanged on the wire: a stale or diverged peer is refused before
 *   anything is sent, and two sides that both write a lineage never exchange it.
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
  refuseIncoming(await readLineageStatus(parts, lineage), parseGeneration(userMetadata[GENERATION_KEY]));
}

/** The facts of one site's lineage status a generation check compares (local, or from a STATUS_RES). */
export interface GenerationStatus {
  readonly siteId: string;
  readonly lineage: string;
  readonly generation: number;
  readonly writableVolumeId: string | undefined;
}

/** The receiver-side rules, on a status: STALE_GENERATION for an older incoming generation, DIVERGED for a newer one on a writable lineage. */
function refuseIncoming(receiver: GenerationStatus, incoming: number): void {
  const { lineage, siteId } = receiver;
  if (incoming < receiver.generation) {
    throw new DrkitError('STALE_GENERATION', `lineage ${lineage}: generation ${incoming} is older than generation ${receiver.generation} known at ${siteId}`, {
      data: { lineage, incomingGeneration: incoming, localGeneration: receiver.generation, siteId },
    });
  }
  if (incoming > receiver.generation && receiver.writableVolumeId !== undefined) {
    throw new DrkitError('DIVERGED', `lineage ${lineage} is still writable at ${siteId} (volume ${receiver.writableVolumeId}); fail back (force) before accepting generation ${incoming}`, {
      data: { lineage, incomingGeneration: incoming, localGeneration: receiver.generation, siteId, volumeId: receiver.writableVolumeId },
    });
  }
}

/**
 * The check a Site runs on its own before a replicate or a pull, from both sides' statuses
 * exchanged on the wire (STATUS_REQ): a snapshot of generation `incoming` is about to go
 * from `sender` to `receiver`. Refused: a stale generation (STALE_GENERATION), a newer one
 * onto a side that still writes the lineage (DIVERGED), and any transfer between two sides
 * that both write the lineage (DIVERGED: a split brain; fail one back first).
 * @throws STALE_GENERATION, DIVERGED
 */
export function checkTransferGenerations(receiver: GenerationStatus, sender: GenerationStatus, incoming: number): void {
  refuseIncoming(receiver, incoming);
  if (receiver.writableVolumeId !== undefined && sender.writableVolumeId !== undefined) {
    throw new DrkitError('DIVERGED', `lineage ${receiver.lineage} is writable at both ${sender.siteId} and ${receiver.siteId}: a split brain; fail one side back first`, {
      data: { lineage: receiver.lineage, siteIds: [sender.siteId, receiver.siteId], generations: [sender.generation, receiver.generation], reason: 'split-brain' },
    });
  }
}
