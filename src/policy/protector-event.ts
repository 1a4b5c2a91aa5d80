/**
 * What the Protector engine reports: events as they happen (through `onEvent`), the RPO
 * report, and the replications it still owes.
 */
import type { DrkitError } from '../core/errors.js';
import type { NearSyncEngineEvent } from './nearsync-engine.js';
import type { ConsistencyLevel } from '../snapshot/index.js';

/** Fields every event has. */
interface EventBase {
  /** Engine clock time of the event. */
  readonly atMs: number;
  readonly domainId: string;
}

/** One event of the engine. Branch on `kind`. */
export type ProtectorEvent =
  /** What a domain's NearSync engine towards `siteId` reported (transitions with reasons, LWS shipped and valid). */
  | (EventBase & { readonly kind: 'nearsync'; readonly siteId: string; readonly event: NearSyncEngineEvent })
  | (EventBase & {
    readonly kind: 'snapshot-taken';
    /** Undefined for an ad-hoc snapshot. */
    readonly scheduleId: string | undefined;
    /** The fire instant the snapshot answers (the request time for an ad-hoc one). */
    readonly fireMs: number;
    /** The atomic unit: `cg:<group id>` or an entity key such as `volume:vol-1`. */
    readonly unitKey: string;
    readonly snapshotIds: readonly string[];
    readonly consistency: ConsistencyLevel;
    /** Why an application-consistent unit fell back to crash consistency. */
    readonly fallbackReason: string | undefined;
  })
  | (EventBase & { readonly kind: 'snapshot-failed'; readonly scheduleId: string | undefined; readonly fireMs: number; readonly unitKey: string; readonly error: DrkitError })
  | (EventBase & {
    readonly kind: 'replicated';
    readonly siteId: string;
    readonly unitKey: string;
    readonly snapshotIds: readonly string[];
    readonly remoteSnapshotIds: readonly string[];
    readonly createdMs: number;
    /** Engine attempts it took (1 = first try). */
    readonly attempts: number;
    /** Raw extent bytes shipped (after dedup against the target). */
    readonly sentExtentBytes: number;
  })
  | (EventBase & {
    readonly kind: 'replication-failed';
    readonly siteId: string;
    readonly unitKey: string;
    readonly snapshotIds: readonly string[];
    readonly attempts: number;
    /** When the engine tries again. */
    readonly nextAttemptMs: number;
    readonly error: DrkitError;
  })
  | (EventBase & {
    readonly kind: 'replication-dropped';
    readonly siteId: string;
    readonly unitKey: string;
    readonly snapshotIds: readonly string[];
    readonly reason: 'queue-full' | 'snapshot-gone' | 'site-removed';
  })
  | (EventBase & {
    readonly kind: 'retention-applied';
    readonly scheduleId: string;
    /** `local`, or the remote site whose replicas were pruned. */
    readonly side: 'local' | 'remote';
    readonly siteId: string | undefined;
    /** Local snapshot ids deleted (remote side: the local ids whose replicas were pruned). */
    readonly deletedIds: readonly string[];
    readonly keptCount: number;
  })
  | (EventBase & { readonly kind: 'retention-failed'; readonly scheduleId: string; readonly side: 'local' | 'remote'; readonly siteId: string | undefined; readonly error: DrkitError })
  | (EventBase & { readonly kind: 'rpo-breached'; readonly siteId: string; readonly ageMs: number; readonly targetMs: number; readonly thresholdMs: number })
  | (EventBase & { readonly kind: 'rpo-recovered'; readonly siteId: string; readonly ageMs: number; readonly targetMs: number; readonly breachedForMs: number })
  | (EventBase & {
    readonly kind: 'engine-failed';
    /** The engine stopped: its state could not be persisted, so it cannot promise not to lose or repeat work. Reopen it. */
    readonly error: DrkitError;
  });

/** The kinds of {@link ProtectorEvent}. */
export type ProtectorEventKind = ProtectorEvent['kind'];

/** RPO of one protection domain at one remote site. */
export interface RpoStatus {
  readonly domainId: string;
  readonly siteId: string;
  /** now - creation time of the newest restore point complete at the site (the oldest unit's, for a domain of several units). */
  readonly ageMs: number;
  /** The promise: the shortest nominal interval of the schedules replicating there. */
  readonly targetMs: number;
  /** Age above which the RPO counts as breached: target + grace. */
  readonly thresholdMs: number;
  readonly breached: boolean;
  /** Creation time of that restore point; undefined when nothing is complete there yet (the age then counts from when protection began). */
  readonly newestCompleteMs: number | undefined;
}

/** A replication the engine still owes. */
export interface PendingReplication {
  readonly domainId: string;
  readonly siteId: string;
  readonly scheduleId: string | undefined;
  readonly unitKey: string;
  readonly snapshotIds: readonly string[];
  readonly createdMs: number;
  /** Failed attempts so far. */
  readonly attempts: number;
  readonly nextAttemptMs: number;
  /** True while a transfer is running. */
  readonly inFlight: boolean;
}
