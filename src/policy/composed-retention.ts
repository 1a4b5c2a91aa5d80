/**
 * composedRetention: composed full snapshots at a NearSync target kept by the schedule's
 * retention. Returns the `pruneComposed` hook of `startLwsComposer` (drkit/replication)
 * for the target site `siteId`: each round, the session's composed snapshots are planned
 * by {@link planRemoteRetention} under the schedule's rule for that site (its own remote
 * rule, else the local rule), one restore point per consistency-group commit, with the
 * bases the kept LWS still need held — so those are never deleted. LWS retention
 * (`lwsRetentionMs`) is separate and unchanged.
 */
import { DrkitError } from '../core/errors.js';
import type { SnapshotInfo } from '../snapshot/index.js';
import { planRemoteRetention } from './plan-retention.js';
import type { Schedule } from './schedule.js';
import { nearSyncSessionId } from './internal/nearsync-session-id.js';

/** The hook's shape (the `pruneComposed` option of `startLwsComposer`). */
export type PruneComposed = (session: { readonly sourceSiteId: string; readonly sessionId: string }, composed: readonly SnapshotInfo[], baseIds: readonly string[], nowMs: number) => readonly string[];

/**
 * A `pruneComposed` hook applying `schedule`'s retention at `siteId` to the composed
 * snapshots of the NearSync sessions of `domainIds` (the Protector's session ids; other
 * sessions are left alone). @defaultValue domainIds: every session
 * @throws INVALID_ARGUMENT when the schedule does not replicate to `siteId`
 */
export function composedRetention(schedule: Schedule, siteId: string, domainIds?: readonly string[]): PruneComposed {
  if (!schedule.remoteSiteIds.includes(siteId)) throw new DrkitError('INVALID_ARGUMENT', `schedule ${schedule.id} does not replicate to site '${siteId}'`, { data: { field: 'siteId', siteId } });
  const sessions = domainIds === undefined ? undefined : new Set(domainIds.map(nearSyncSessionId));
  return (session, composed, baseIds, nowMs) => {
    if (sessions !== undefined && !sessions.has(session.sessionId)) return [];
    const holds = baseIds.map((snapshotId) => ({ snapshotId, reason: 'base of kept LWS' }));
    return planRemoteRetention(schedule.retention, siteId, composed, nowMs, { holds }).delete.map((d) => d.id);
  };
}
